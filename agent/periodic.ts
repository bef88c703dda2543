// Runs an async task every `intervalMs`, never two at once: a slow tick
// delays the next one instead of piling up. Errors are reported, not thrown,
// so one bad tick never stops the loop.
export class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(
    private readonly intervalMs: number,
    private readonly task: () => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Starts the loop; the first run happens now (or after `firstDelayMs`). */
  start(firstDelayMs = 0): void {
    this.stopped = false;
    this.schedule(firstDelayMs);
  }

  /** Runs the task now unless a run is under way; resolves when it is done. */
  async runNow(): Promise<void> {
    if (this.running) return this.running;
    this.running = (async () => {
      try {
        await this.task();
      } catch (err) {
        this.onError(err);
      }
    })();
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const started = Date.now();
      void this.runNow().then(() => {
        // Keep the cadence: the next run starts one interval after this one began.
        this.schedule(Math.max(0, this.intervalMs - (Date.now() - started)));
      });
    }, delay);
  }
}
