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

/** Who else has a hand on the service right now; the supervisor keeps out of their way. */
export interface OtherHands {
  /** An operator stopped it through deckhand (stack.stop) and has not started it since. */
  operatorStopped: boolean;
  /** An operator's restart, stop or start is running. */
  operating: boolean;
  /** A deploy or rollback is working on it (it may recreate the container). */
  deploying: boolean;
}

/**
 * Why the service looks the way it does, for what counts as a restart:
 * `crash` is the only cause the supervisor acts on, and each remedy it then
 * applies is one restart. A down or replaced container that an operator or a
 * deploy is behind is theirs (an audit entry, or a deploy record), never a
 * restart; `fine` is a service that needs nothing, Docker restarting it
 * itself included.
 */
export type Cause = 'fine' | 'crash' | 'operator-stop' | 'operator' | 'deploy';

export type Classified = { cause: 'crash'; remedy: Exclude<Remedy, 'none'> } | { cause: Exclude<Cause, 'crash'>; remedy: 'none' };

export function classify(view: ServiceView, hands: OtherHands): Classified {
  if (hands.operatorStopped) return { cause: 'operator-stop', remedy: 'none' };
  if (hands.operating) return { cause: 'operator', remedy: 'none' };
  if (hands.deploying) return { cause: 'deploy', remedy: 'none' };
  const remedy = remedyFor(view);
  return remedy === 'none' ? { cause: 'fine', remedy } : { cause: 'crash', remedy };
}

export const NO_OTHER_HANDS: OtherHands = { operatorStopped: false, operating: false, deploying: false };
