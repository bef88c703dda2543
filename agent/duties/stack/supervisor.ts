// Brings services back: reviews each observation of the stack, and for a
// service that died or turned unhealthy schedules its remedy after the delay
// the restart policy gives, or declares a crash loop and leaves it down.
// Its count of remedies applied is what deckhand calls restarts (ps, /health,
// /metrics, service.restarted): an operator's or a deploy's work never adds to it.
import type { DutyContext } from '../../duty.js';
import { classify, decideRestart, NO_OTHER_HANDS, recentRestarts, type OtherHands, type Remedy, type RestartPolicy } from './restart-policy.js';
import type { ServiceView } from './services.js';

export interface Remedies {
  apply(remedy: Exclude<Remedy, 'none'>, view: ServiceView): Promise<void>;
  /** The service as last observed (a delayed restart re-checks before acting). */
  current(service: string): ServiceView | undefined;
}

export class Supervisor {
  private readonly restartTimes = new Map<string, number[]>();
  /** Remedies applied per service since the agent started; forget() leaves it (it is history, not policy). */
  private readonly counts = new Map<string, number>();
  private hands: (service: string) => OtherHands = () => NO_OTHER_HANDS;
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

  /** Restarts the supervisor made of the service since the agent started. */
  restarts(service: string): number {
    return this.counts.get(service) ?? 0;
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

  /** Called after every observation. `hands` says who else is working on a service (an operator, a deploy): those are left alone. */
  review(views: readonly ServiceView[], hands: (service: string) => OtherHands, now = Date.now()): void {
    if (this.stopped) return;
    this.hands = hands;
    for (const view of views) {
      const { service } = view;
      const { cause, remedy } = classify(view, hands(service));
      if (cause !== 'crash' && cause !== 'fine') {
        this.cancel(service);
        continue;
      }
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
      // Looked at again: an operator or a deploy may have taken the service since the review.
      const { cause, remedy } = classify(view, this.hands(service));
      if (cause !== 'crash') return; // it came back by itself, or it is someone else's now
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
    const total = (this.counts.get(service) ?? 0) + 1;
    this.counts.set(service, total);
    this.ctx.log.warn({ service, remedy, was: view.state, health: view.health, restartsInWindow: times.length, restarts: total }, 'service brought back');
    this.ctx.events.record({
      type: 'service.restarted',
      severity: 'warning',
      subject: service,
      message: `service ${service} was ${view.state === 'running' ? view.health : view.state}; deckhand did ${remedy} (${times.length} in the last ${Math.round(this.policy.crashloopWithinMs / 60_000)} min)`,
      data: { remedy, state: view.state, health: view.health, restarts: total },
    });
  }

  private cancel(service: string): void {
    const t = this.pending.get(service);
    if (t) clearTimeout(t);
    this.pending.delete(service);
  }
}
