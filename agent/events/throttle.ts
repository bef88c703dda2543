// "At most once per window per key", in bounded memory: keys are kept in the
// order they were last let through, so expired ones are dropped from the
// front as new ones come, and past `maxKeys` the oldest go first. Error
// messages can carry ids or paths, so the set of keys is open-ended.
export class OncePerWindow {
  private readonly lastAt = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly maxKeys = 1000,
  ) {}

  /** True (and remembered) if `key` was not let through within the window. */
  allow(key: string, now: number): boolean {
    this.dropExpired(now);
    const last = this.lastAt.get(key);
    if (last !== undefined && now - last < this.windowMs) return false;
    this.lastAt.delete(key); // re-insert at the end: the map stays oldest-first
    this.lastAt.set(key, now);
    if (this.lastAt.size > this.maxKeys) this.lastAt.delete(this.lastAt.keys().next().value!);
    return true;
  }

  get size(): number {
    return this.lastAt.size;
  }

  private dropExpired(now: number): void {
    for (const [key, at] of this.lastAt) {
      if (now - at < this.windowMs) return;
      this.lastAt.delete(key);
    }
  }
}
