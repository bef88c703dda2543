// Keeps the events table bounded: events past 90 days and audit entries past
// 400 days are pruned every few minutes, in batches (see store/prune.ts), off
// any request's path. It is a duty so that it starts and stops with the rest.
import type { Duty } from '../duty.js';
import { Periodic } from '../periodic.js';
import { DEFAULT_PRUNE_BUDGET, pruneInBatches, type PruneBudget } from '../store/prune.js';
import { AuditLog } from './audit.js';
import type { EventLog } from './log.js';

export const PRUNE_EVERY_MS = 10 * 60_000;
/** The first run waits for start-up to settle: it is never urgent. */
const FIRST_PRUNE_AFTER_MS = 60_000;

export interface PruneCounts {
  events: number;
  audit: number;
}

export class EventRetention implements Duty {
  readonly name = 'retention';
  private readonly loop: Periodic;
  private readonly audit: AuditLog;
  /** Set by stop(): a run under way ends after its current batch. */
  private stopping = false;

  constructor(
    private readonly events: EventLog,
    onError: (err: unknown) => void,
    private readonly budget: PruneBudget = DEFAULT_PRUNE_BUDGET,
  ) {
    this.audit = new AuditLog(events);
    this.loop = new Periodic(PRUNE_EVERY_MS, async () => void (await this.runOnce()), onError);
  }

  async start(): Promise<void> {
    this.stopping = false;
    this.loop.start(FIRST_PRUNE_AFTER_MS);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop.stop();
  }

  /** One run: events, then audit entries, each within its budget. */
  async runOnce(nowMs = this.events.now()): Promise<PruneCounts> {
    const isStopping = () => this.stopping;
    const events = await pruneInBatches((limit) => this.events.pruneBatch(nowMs, limit), this.budget, isStopping);
    const audit = await pruneInBatches((limit) => this.audit.pruneBatch(nowMs, limit), this.budget, isStopping);
    return { events, audit };
  }
}
