// Failed authentications per address: 10 within a minute, and that address
// gets 429 for a minute. Bounded, so a flood of addresses cannot grow it.
export const AUTH_FAILURE_LIMIT = 10;
export const AUTH_WINDOW_MS = 60_000;
const MAX_ADDRESSES = 10_000;

export class FailedAuthLimiter {
  private readonly failures = new Map<string, number[]>();
  private readonly blockedUntil = new Map<string, number>();

  constructor(
    private readonly limit = AUTH_FAILURE_LIMIT,
    private readonly windowMs = AUTH_WINDOW_MS,
  ) {}

  isBlocked(address: string, now = Date.now()): boolean {
    const until = this.blockedUntil.get(address);
    if (until === undefined) return false;
    if (now < until) return true;
    this.blockedUntil.delete(address);
    return false;
  }

  /** Records a failure; true when this one makes the address blocked. */
  fail(address: string, now = Date.now()): boolean {
    const recent = (this.failures.get(address) ?? []).filter((t) => now - t < this.windowMs);
    recent.push(now);
    this.failures.delete(address); // re-insert: Map order is then oldest-first for eviction
    this.failures.set(address, recent);
    if (this.failures.size > MAX_ADDRESSES) this.failures.delete(this.failures.keys().next().value!);
    if (recent.length >= this.limit) {
      this.blockedUntil.set(address, now + this.windowMs);
      if (this.blockedUntil.size > MAX_ADDRESSES) this.blockedUntil.delete(this.blockedUntil.keys().next().value!);
      this.failures.delete(address);
      return true;
    }
    return false;
  }
}
