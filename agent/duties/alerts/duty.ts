// The alerts duty: delivers events to webhooks. Deliveries are rows in the
// database (so a restart resumes them and an event is never sent twice to
// the same hook), and each webhook has its own worker, so a slow or dead
// hook delays nothing but itself.
import { createHash } from 'node:crypto';
import type { Duty, DutyContext } from '../../duty.js';
import type { EventRow, StoredEvent } from '../../events/log.js';
import { migrate } from '../../store/db.js';
import type { AlertsConfig, WebhookConfig } from './config.js';
import { postJson } from './post.js';

const MIGRATIONS = [
  {
    version: 1,
    sql: `CREATE TABLE alert_deliveries (
      event_id INTEGER NOT NULL,
      webhook TEXT NOT NULL,
      status TEXT NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      next_at INTEGER NOT NULL,
      last_error TEXT,
      PRIMARY KEY (webhook, event_id)
    ) WITHOUT ROWID;
    CREATE INDEX alert_deliveries_due ON alert_deliveries (webhook, status, next_at);`,
  },
];

export const DELIVERY = {
  timeoutMs: 10_000,
  firstRetryMs: 1000,
  maxRetryMs: 5 * 60_000,
  /** After this long an undelivered event is marked failed and left. */
  giveUpAfterMs: 24 * 3600_000,
};

export function retryDelay(attempts: number): number {
  const base = Math.min(DELIVERY.maxRetryMs, DELIVERY.firstRetryMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4)); // jitter: many agents, one hook
}

export function webhookWants(hook: WebhookConfig, type: string): boolean {
  return !hook.events || hook.events.includes(type);
}

/** Hooks are named by a hash of their URL: a URL often carries a secret. */
export function webhookId(url: string): string {
  return createHash('sha256').update(url).digest('hex').slice(0, 16);
}

type DeliveryRow = Pick<EventRow, 'ts' | 'type' | 'severity' | 'subject' | 'message' | 'data'> & { event_id: number; attempts: number };

export class AlertsDuty implements Duty {
  readonly name = 'alerts';
  private readonly workers: WebhookWorker[];
  private unsubscribe: (() => void) | undefined;

  constructor(config: AlertsConfig, private readonly ctx: DutyContext, version: string) {
    migrate(ctx.db, 'alerts', MIGRATIONS);
    this.workers = config.webhooks.map((hook, index) => new WebhookWorker(hook, index, ctx, version));
  }

  async start(): Promise<void> {
    this.unsubscribe = this.ctx.events.subscribe((e) => this.enqueue(e));
    for (const w of this.workers) w.start();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await Promise.all(this.workers.map((w) => w.stop()));
  }

  private enqueue(event: StoredEvent): void {
    for (const w of this.workers) w.offer(event);
  }
}

class WebhookWorker {
  private readonly id: string;
  private readonly label: string;
  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<void> | undefined;
  private stopped = true;
  /** Aborts a request in flight when the agent stops; that delivery stays pending. */
  private inFlight = new AbortController();

  constructor(
    private readonly hook: WebhookConfig,
    index: number,
    private readonly ctx: DutyContext,
    private readonly version: string,
  ) {
    this.id = webhookId(hook.url);
    // Logs name the hook by position and host, never by its full URL.
    this.label = `alerts.webhooks[${index}] (${new URL(hook.url).host})`;
  }

  start(): void {
    this.stopped = false;
    this.inFlight = new AbortController();
    this.wake(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.inFlight.abort();
    await this.busy;
  }

  offer(event: StoredEvent): void {
    if (!webhookWants(this.hook, event.type)) return;
    // Primary key (webhook, event): offering the same event twice sends it once.
    this.ctx.db
      .prepare("INSERT OR IGNORE INTO alert_deliveries (event_id, webhook, status, next_at) VALUES (?, ?, 'pending', ?)")
      .run(event.id, this.id, Date.now());
    this.wake(0);
  }

  private wake(delay: number): void {
    if (this.stopped || this.busy) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.busy = this.drain().finally(() => {
        this.busy = undefined;
        this.scheduleNext();
      });
    }, delay);
  }

  private scheduleNext(): void {
    const next = this.ctx.db
      .prepare("SELECT min(next_at) FROM alert_deliveries WHERE webhook = ? AND status = 'pending'")
      .pluck()
      .get(this.id) as number | null;
    if (next !== null) this.wake(Math.max(0, next - Date.now()));
  }

  /** Sends every due delivery, oldest first; a failing one is pushed back, not blocking the rest. */
  private async drain(): Promise<void> {
    const db = this.ctx.db;
    const due = db.prepare(
      `SELECT d.event_id, d.attempts, e.ts, e.type, e.severity, e.subject, e.message, e.data
       FROM alert_deliveries d JOIN events e ON e.id = d.event_id
       WHERE d.webhook = ? AND d.status = 'pending' AND d.next_at <= ? ORDER BY d.next_at, d.event_id LIMIT 1`,
    );
    while (!this.stopped) {
      const row = due.get(this.id, Date.now()) as DeliveryRow | undefined;
      if (!row) return;
      const result = await postJson(this.hook.url, this.payload(row), DELIVERY.timeoutMs, `deckhand/${this.version}`, this.inFlight.signal);
      if (this.stopped) return; // cut short by stop(): not an attempt, still pending
      const attempts = row.attempts + 1;
      if (result.ok) {
        db.prepare("UPDATE alert_deliveries SET status = 'sent', attempts = ?, last_error = NULL WHERE webhook = ? AND event_id = ?").run(attempts, this.id, row.event_id);
        continue;
      }
      const giveUp = Date.now() - row.ts > DELIVERY.giveUpAfterMs;
      db.prepare('UPDATE alert_deliveries SET status = ?, attempts = ?, next_at = ?, last_error = ? WHERE webhook = ? AND event_id = ?').run(
        giveUp ? 'failed' : 'pending',
        attempts,
        Date.now() + retryDelay(attempts),
        result.error ?? 'unknown error',
        this.id,
        row.event_id,
      );
      this.ctx.log.warn({ webhook: this.label, event: row.type, attempts, error: result.error, gaveUp: giveUp }, giveUp ? 'webhook delivery abandoned' : 'webhook delivery failed; will retry');
    }
  }

  private payload(row: DeliveryRow) {
    return {
      id: row.event_id,
      type: row.type,
      severity: row.severity,
      host: this.ctx.config.host.name,
      time: new Date(row.ts).toISOString(),
      ...(row.subject === null ? {} : { subject: row.subject }),
      message: row.message,
      ...(row.data === null ? {} : { data: JSON.parse(row.data) as unknown }),
    };
  }
}
