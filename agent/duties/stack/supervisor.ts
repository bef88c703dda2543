// Brings services back: reviews each observation of the stack, and for a
// service that died or turned unhealthy schedules its remedy after the delay
// the restart policy gives, or declares a crash loop and leaves it down.
import type { DutyContext } from '../../duty.js';
import { decideRestart, recentRestarts, remedyFor, type Remedy, type RestartPolicy } from './restart-policy.js';
import type { ServiceView } from './services.js';

export interface Remedies {
  apply(remedy: Exclude<Remedy, 'none'>, view: ServiceView): Promise<void>;
  /** The service as last observed (a delayed restart re-checks before acting). */
  current(service: string): ServiceView | undefined;
}

export class Supervisor {
  private readonly restartTimes = new Map<string, number[]>();
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private readonly crashloops = new Set<string>();
  private stopped = false;

  constructor(
    private readonly policy: RestartPolicy,
    private readonly remedies: Remedies,
    private readonly ctx: Pick<DutyContext, 'conditions' | 'events' | 'log' | 'reportError'>,
  ) {}

  isCrashloop(service: string): boolean {
    return this.crashloops.has(service);
  }

  restartsInWindow(service: string, now = Date.now()): number {
    return recentRestarts(this.restartTimes.get(service) ?? [], now, this.policy).length;
  }

  /** An operator acted on the service (restart, start, stop, deploy): start its record afresh. */
  forget(service: string): void {
    this.cancel(service);
    this.restartTimes.delete(service);
    if (this.crashloops.delete(service)) {
      this.ctx.conditions.clear('service.crashloop', service, `service ${service}: crash loop cleared by an operator`);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const service of [...this.pending.keys()]) this.cancel(service);
  }

  /** Called after every observation. `hold` names services not to touch (stopped by an operator, being deployed). */
  review(views: readonly ServiceView[], hold: (service: string) => boolean, now = Date.now()): void {
    if (this.stopped) return;
    for (const view of views) {
      const { service } = view;
      if (hold(service)) {
        this.cancel(service);
        continue;
      }
      const remedy = remedyFor(view);
      if (remedy === 'none') {
        if (view.state === 'running' && view.health !== 'starting' && this.crashloops.delete(service)) {
          this.ctx.conditions.clear('service.crashloop', service, `service ${service} is running again`);
        }
        continue;
      }
      if (this.crashloops.has(service) || this.pending.has(service)) continue;
      const times = recentRestarts(this.restartTimes.get(service) ?? [], now, this.policy);
      this.restartTimes.set(service, times);
      const decision = decideRestart(times, now, this.policy);
      if (decision.action === 'crashloop') {
        this.crashloops.add(service);
        this.ctx.log.error({ service, restarts: decision.restarts }, 'crash loop: not restarting any more');
        this.ctx.conditions.raise(
          'service.crashloop',
          service,
          'critical',
          `service ${service} is crash-looping: ${decision.restarts} restarts within ${Math.round(this.policy.crashloopWithinMs / 60_000)} min; deckhand stopped restarting it (deckhand restart ${service} to try again)`,
          { restarts: decision.restarts, state: view.state, health: view.health },
        );
        continue;
      }
      this.pending.set(
        service,
        setTimeout(() => void this.act(service), decision.delayMs),
      );
    }
  }

  private async act(service: string): Promise<void> {
    // Still pending while the remedy runs: an observation meanwhile must not start it twice.
    try {
      const view = this.remedies.current(service);
      if (this.stopped || !view) return;
      const remedy = remedyFor(view);
      if (remedy === 'none') return; // it came back by itself
      try {
        await this.remedies.apply(remedy, view);
      } catch (err) {
        // Not counted as a restart: the next observation tries again.
        this.ctx.reportError('stack', new Error(`cannot ${remedy} service ${service}: ${(err as Error).message}`));
        return;
      }
      this.record(service, remedy, view);
    } finally {
      this.pending.delete(service);
    }
  }

  private record(service: string, remedy: Remedy, view: ServiceView): void {
    const times = this.restartTimes.get(service) ?? [];
    times.push(Date.now());
    this.restartTimes.set(service, times);
    this.ctx.log.warn({ service, remedy, was: view.state, health: view.health, restartsInWindow: times.length }, 'service brought back');
    this.ctx.events.record({
      type: 'service.restarted',
      severity: 'warning',
      subject: service,
      message: `service ${service} was ${view.state === 'running' ? view.health : view.state}; deckhand did ${remedy} (${times.length} in the last ${Math.round(this.policy.crashloopWithinMs / 60_000)} min)`,
      data: { remedy, state: view.state, health: view.health },
    });
  }

  private cancel(service: string): void {
    const t = this.pending.get(service);
    if (t) clearTimeout(t);
    this.pending.delete(service);
  }
}
