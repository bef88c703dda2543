// Failed authentications, written to the audit log as one entry per address
// and minute with a count, and at most MAX_ADDRESS_ENTRIES such entries a
// minute; failures from further addresses go into one summary entry. A
// flood from many addresses then costs a bounded number of writes (and
// fsyncs) a minute, not one per attempt.
import type { AuditEntry } from '../events/audit.js';

export const AUTH_AUDIT = {
  windowMs: Number(process.env.DECKHAND_AUTH_AUDIT_WINDOW_MS) || 60_000,
  maxAddressEntries: 100,
  /** Addresses tracked within one window; past this they are only counted. */
  maxTracked: 10_000,
};

interface Tally {
  count: number;
  reasons: Map<string, number>;
}

export class FailedAuthAudit {
  private windowStart: number;
  private tallies = new Map<string, Tally>();
  /** Failures from addresses past maxTracked: counted, not told apart. */
  private untracked = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly write: (entry: AuditEntry) => void,
    private readonly limits = AUTH_AUDIT,
    private readonly now: () => number = Date.now,
  ) {
    this.windowStart = now();
    // Closes each window on time even when no more failures come.
    this.timer = setInterval(() => this.rollIfDue(), Math.min(this.limits.windowMs, 10_000));
    this.timer.unref();
  }

  /** Counts one failure; nothing is written until its window closes. */
  record(address: string, reason: string): void {
    this.rollIfDue();
    let tally = this.tallies.get(address);
    if (!tally) {
      if (this.tallies.size >= this.limits.maxTracked) {
        this.untracked++;
        return;
      }
      tally = { count: 0, reasons: new Map() };
      this.tallies.set(address, tally);
    }
    tally.count++;
    tally.reasons.set(reason, (tally.reasons.get(reason) ?? 0) + 1);
  }

  /** Writes what is counted so far (the agent is stopping). */
  flush(): void {
    clearInterval(this.timer);
    this.writeWindow(this.now());
  }

  private rollIfDue(): void {
    const now = this.now();
    if (now - this.windowStart >= this.limits.windowMs) this.writeWindow(now);
  }

  private writeWindow(now: number): void {
    const tallies = this.tallies;
    const overflow = { count: 0, addresses: 0, untracked: this.untracked };
    const since = new Date(this.windowStart).toISOString();
    this.tallies = new Map();
    this.untracked = 0;
    this.windowStart = now;
    let written = 0;
    for (const [address, t] of tallies) {
      if (written >= this.limits.maxAddressEntries) {
        overflow.count += t.count;
        overflow.addresses++;
        continue;
      }
      written++;
      const reasons = Object.fromEntries(t.reasons);
      this.write({
        actor: '-',
        address,
        action: 'auth',
        ok: false,
        message: `authentication failed ${t.count === 1 ? 'once' : `${t.count} times`} (${[...t.reasons.keys()].join(', ')})`,
        data: { count: t.count, reasons, since },
      });
    }
    if (overflow.count + overflow.untracked > 0) {
      const parts = [
        ...(overflow.count > 0 ? [`${overflow.count} from ${overflow.addresses} more addresses`] : []),
        ...(overflow.untracked > 0 ? [`${overflow.untracked} from addresses past the ${this.limits.maxTracked} tracked`] : []),
      ];
      this.write({
        actor: '-',
        address: '-',
        action: 'auth',
        ok: false,
        message: `authentication failed ${overflow.count + overflow.untracked} more times: ${parts.join(', ')}`,
        data: { count: overflow.count + overflow.untracked, addresses: overflow.addresses, untracked: overflow.untracked, since },
      });
    }
  }
}
