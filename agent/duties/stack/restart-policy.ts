// When to bring a service back, as pure functions of the restarts deckhand
// already made: the first restart is immediate, then the delay doubles from
// `backoff` up to `maxBackoff`; `crashloop.restarts` restarts within
// `crashloop.within` and the next death is a crash loop: stop, and alert.
import type { ServiceView } from './services.js';

export interface RestartPolicy {
  backoffMs: number;
  maxBackoffMs: number;
  crashloopRestarts: number;
  crashloopWithinMs: number;
}

export type Decision = { action: 'restart'; delayMs: number } | { action: 'crashloop'; restarts: number };

/** Restarts within the crash-loop window, oldest dropped. */
export function recentRestarts(times: readonly number[], now: number, policy: RestartPolicy): number[] {
  return times.filter((t) => now - t < policy.crashloopWithinMs);
}

export function restartDelay(previousRestarts: number, policy: RestartPolicy): number {
  if (previousRestarts <= 0) return 0;
  return Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** (previousRestarts - 1));
}

export function decideRestart(times: readonly number[], now: number, policy: RestartPolicy): Decision {
  const recent = recentRestarts(times, now, policy);
  if (recent.length >= policy.crashloopRestarts) return { action: 'crashloop', restarts: recent.length };
  return { action: 'restart', delayMs: restartDelay(recent.length, policy) };
}

export type Remedy = 'start' | 'recreate' | 'restart' | 'none';

/**
 * What bringing the service back means: start its stopped container, create
 * one when there is none, restart it when it runs but fails its healthcheck.
 * A container Docker is restarting itself, or one paused, is left alone.
 */
export function remedyFor(view: ServiceView): Remedy {
  switch (view.state) {
    case 'exited':
    case 'dead':
    case 'created':
      return 'start';
    case 'missing':
      return 'recreate';
    case 'running':
      return view.health === 'unhealthy' ? 'restart' : 'none';
    default:
      return 'none';
  }
}
