// What a compose project's services look like right now, derived purely
// from the engine's container list, and how each one rates for /health.
import type { CheckResult } from '../../duty.js';
import type { ContainerSummary } from '../../docker/engine.js';

export type ServiceHealth = 'healthy' | 'unhealthy' | 'starting' | 'none';

export interface ServiceView {
  service: string;
  /** running, exited, restarting, created, paused, dead, or missing (no container). */
  state: string;
  health: ServiceHealth;
  containerId?: string;
  image?: string;
  imageId?: string;
  /** Restarts the supervisor made since the agent started (it died or turned unhealthy); never a deploy or an operator. */
  restarts: number;
}

export function healthFromStatus(status: string): ServiceHealth {
  if (status.includes('(unhealthy)')) return 'unhealthy';
  if (status.includes('(healthy)')) return 'healthy';
  if (status.includes('(health: starting)')) return 'starting';
  return 'none';
}

/** Picks the container that speaks for each service: a running one, else the newest. */
export function currentContainers(containers: readonly ContainerSummary[]): Map<string, ContainerSummary> {
  const byService = new Map<string, ContainerSummary>();
  for (const c of containers) {
    if (c.oneoff || c.service === '') continue; // `compose run` containers are not the service
    const prev = byService.get(c.service);
    if (!prev || rank(c) > rank(prev) || (rank(c) === rank(prev) && c.created > prev.created)) byService.set(c.service, c);
  }
  return byService;
}

const rank = (c: ContainerSummary) => (c.state === 'running' ? 2 : c.state === 'restarting' ? 1 : 0);

export function serviceCheck(view: ServiceView): CheckResult {
  const base = { restarts: view.restarts };
  if (view.state !== 'running') {
    return { status: 'fail', observedValue: view.state, output: view.state === 'missing' ? 'no container' : `container is ${view.state}`, ...base };
  }
  switch (view.health) {
    case 'unhealthy':
      return { status: 'fail', observedValue: 'unhealthy', output: 'healthcheck failing', ...base };
    case 'starting':
      return { status: 'warn', observedValue: 'starting', output: 'healthcheck has not passed yet', ...base };
    case 'healthy':
      return { status: 'pass', observedValue: 'healthy', ...base };
    default:
      return { status: 'pass', observedValue: 'running', ...base };
  }
}
