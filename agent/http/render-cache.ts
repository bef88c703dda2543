// /metrics renders every gauge through prom-client, a few hundred
// microseconds or more: done per request, a pipelined flood of scrapes holds
// the event loop for seconds and /livez stops answering. So a render is
// served to every scrape for a second, per content type, and scrapes that
// arrive while one is in progress wait for that same render.
export const METRICS_MAX_AGE_MS = 1000;

interface Entry {
  body?: Buffer;
  /** When the render that produced `body` began: the figures are at most this old. */
  renderedAt: number;
  pending?: Promise<Buffer>;
}

export class RenderCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly maxAgeMs = METRICS_MAX_AGE_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The last render of `key` if it is fresh enough to serve as is. */
  fresh(key: string): Buffer | undefined {
    const e = this.entries.get(key);
    return e?.body !== undefined && this.now() - e.renderedAt < this.maxAgeMs ? e.body : undefined;
  }

  /** A fresh render of `key`, or the one already under way. A failed render is not kept: the next scrape tries again. */
  render(key: string, render: () => Promise<string>): Promise<Buffer> {
    const entry = this.entries.get(key) ?? { renderedAt: 0 };
    this.entries.set(key, entry);
    if (entry.pending) return entry.pending;
    const startedAt = this.now();
    const pending = render().then(
      (text) => {
        entry.body = Buffer.from(text);
        entry.renderedAt = startedAt;
        entry.pending = undefined;
        return entry.body;
      },
      (err: unknown) => {
        entry.pending = undefined;
        throw err;
      },
    );
    entry.pending = pending;
    return pending;
  }

  /** fresh() or else render(): what a scrape is answered with. */
  get(key: string, render: () => Promise<string>): Buffer | Promise<Buffer> {
    return this.fresh(key) ?? this.render(key, render);
  }
}
