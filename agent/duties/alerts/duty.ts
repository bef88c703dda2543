// The alerts duty: delivers events to webhooks. A delivery is a row in the
// database while it is pending (so a restart resumes it and an event is never
// sent twice to the same hook), deleted once delivered or given up; each
// webhook has its own worker, so a slow or dead hook delays nothing but itself.
import { createHash } from 'node:crypto';
import type { Duty, DutyContext } from '../../duty.js';
import type { EventRow, StoredEvent } from '../../events/log.js';
import { Periodic } from '../../periodic.js';
import { migrate, type Db } from '../../store/db.js';
import { pruneInBatches } from '../../store/prune.js';
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

const RESOLVED = '.resolved';

/** A hook that lists a condition also hears when it clears (SPEC: "also receives its .resolved"). */
export function webhookWants(hook: WebhookConfig, type: string): boolean {
  if (!hook.events) return true;
  if (hook.events.includes(type)) return true;
  return type.endsWith(RESOLVED) && hook.events.includes(type.slice(0, -RESOLVED.length));
}

/** How often rows that no worker will send are cleared away. */
export const CLEANUP_EVERY_MS = 10 * 60_000;

/**
 * Deletes up to `limit` delivery rows that no worker will send: finished rows
 * (older versions kept them), rows whose event was pruned, and rows of a hook
 * no longer configured once their event is past the retry window.
 */
export function deleteDeadDeliveries(db: Db, configuredHooks: readonly string[], nowMs: number, limit: number): number {
  return db
    .prepare(
      `DELETE FROM alert_deliveries WHERE (webhook, event_id) IN (
         SELECT d.webhook, d.event_id FROM alert_deliveries d LEFT JOIN events e ON e.id = d.event_id
         WHERE d.status <> 'pending' OR e.id IS NULL
            OR (d.webhook NOT IN (SELECT value FROM json_each(?)) AND e.ts < ?)
         LIMIT ?)`,
    )
    .run(JSON.stringify(configuredHooks), nowMs - DELIVERY.giveUpAfterMs, limit).changes;
}

/** Hooks are named by a hash of their URL: a URL often carries a secret. */
export function webhookId(url: string): string {
  return createHash('sha256').update(url).digest('hex').slice(0, 16);
}

type DeliveryRow = Pick<EventRow, 'ts' | 'type' | 'severity' | 'subject' | 'message' | 'data'> & { event_id: number; attempts: number };

export class AlertsDuty implements Duty {
  readonly name = 'alerts';
  private readonly workers: WebhookWorker[];
  private readonly cleanup: Periodic;
  private unsubscribe: (() => void) | undefined;
  private stopping = false;

  constructor(config: AlertsConfig, private readonly ctx: DutyContext, version: string) {
    migrate(ctx.db, 'alerts', MIGRATIONS);
    this.workers = config.webhooks.map((hook, index) => new WebhookWorker(hook, index, ctx, version));
    const hooks = config.webhooks.map((h) => webhookId(h.url));
    this.cleanup = new Periodic(
      CLEANUP_EVERY_MS,
      async () => void (await pruneInBatches((limit) => deleteDeadDeliveries(ctx.db, hooks, Date.now(), limit), undefined, () => this.stopping)),
      (err) => ctx.reportError(this.name, err),
    );
  }

  async start(): Promise<void> {
    this.stopping = false;
    this.unsubscribe = this.ctx.events.subscribe((e) => this.enqueue(e));
    for (const w of this.workers) w.start();
    this.cleanup.start(CLEANUP_EVERY_MS);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    await Promise.all([this.cleanup.stop(), ...this.workers.map((w) => w.stop())]);
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
    // Primary key (webhook, event): offering an event again while it is pending sends it once.
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
      const giveUp = !result.ok && Date.now() - row.ts > DELIVERY.giveUpAfterMs;
      if (result.ok || giveUp) {
        // Done either way: the row goes; the log line below keeps what a given-up delivery last saw.
        db.prepare('DELETE FROM alert_deliveries WHERE webhook = ? AND event_id = ?').run(this.id, row.event_id);
        if (result.ok) continue;
      } else {
        db.prepare('UPDATE alert_deliveries SET attempts = ?, next_at = ?, last_error = ? WHERE webhook = ? AND event_id = ?').run(
          attempts,
          Date.now() + retryDelay(attempts),
          result.error ?? 'unknown error',
          this.id,
          row.event_id,
        );
      }
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
