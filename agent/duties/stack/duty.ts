// The stack duty: knows the compose project's services and what their
// containers are doing, and reports it to /health, /metrics and the API.
// (Restarting them, deploys and logs build on this view.)
import { ERROR, type ServiceInfo } from '../../api/protocol.js';
import { RpcFailure, type MethodTable } from '../../api/rpc.js';
import type { Duty, DutyContext, GaugeSpec, HealthChecks, StatusContribution } from '../../duty.js';
import { DockerEngine, type ContainerStats, type ContainerSummary } from '../../docker/engine.js';
import { run } from '../../exec/runner.js';
import { Periodic } from '../../periodic.js';
import type { ContainerSource } from '../metrics/duty.js';
import type { StackConfig } from './config.js';
import { composeServicesCommand, detectCompose, type ComposeCli } from './compose.js';
import { streamLogs } from './logs.js';
import { currentContainers, healthFromStatus, serviceCheck, type ServiceView } from './services.js';

const OBSERVE_EVERY_MS = 5000;
/** A service down this long (and not yet back) raises service.down. */
const DOWN_ALERT_AFTER_MS = 30_000;

export interface RunningContainer {
  service: string;
  id: string;
}

export class StackDuty implements Duty, ContainerSource {
  readonly name = 'stack';
  private readonly loop: Periodic;
  private cli: ComposeCli | undefined;
  /** Services from the compose file as last applied. */
  private declared: string[] = [];
  private views = new Map<string, ServiceView>();
  private engineUp: boolean | undefined;
  private engineError = '';
  private lastContainer = new Map<string, string>();
  private downSince = new Map<string, number>();
  /** StartedAt per container, re-read (inspect) only when its state changes, not every tick. */
  private startedAt = new Map<string, { state: string; startedAt: string }>();

  constructor(
    private readonly config: StackConfig,
    private readonly ctx: DutyContext,
    readonly engine = new DockerEngine(),
  ) {
    this.loop = new Periodic(OBSERVE_EVERY_MS, () => this.observe(), (err) => ctx.reportError(this.name, err));
  }

  async start(): Promise<void> {
    await this.readDeclaredServices();
    await this.loop.runNow();
    this.loop.start(OBSERVE_EVERY_MS);
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }

  /** Services and their containers as last observed (never calls Docker). */
  services(): ServiceView[] {
    return [...this.views.values()];
  }

  runningContainers(): RunningContainer[] {
    return this.services()
      .filter((v) => v.state === 'running' && v.containerId)
      .map((v) => ({ service: v.service, id: v.containerId! }));
  }

  restarts(service: string): number {
    return this.views.get(service)?.restarts ?? 0;
  }

  stats(id: string): Promise<ContainerStats> {
    return this.engine.stats(id);
  }

  engineReachable(): boolean {
    return this.engineUp === true;
  }

  checks(): HealthChecks {
    const checks: HealthChecks = {
      'docker:engine': [
        this.engineUp === undefined
          ? { status: 'warn', output: 'not checked yet' }
          : this.engineUp
            ? { status: 'pass' }
            : { status: 'fail', output: `Docker engine unreachable: ${this.engineError}` },
      ],
    };
    for (const view of this.views.values()) {
      // With the engine down, the last view is stale: say so rather than guess.
      checks[`service:${view.service}`] = [this.engineUp === false ? { status: 'fail', observedValue: 'unknown', output: 'Docker engine unreachable', restarts: view.restarts } : serviceCheck(view)];
    }
    return checks;
  }

  serviceInfo(): ServiceInfo[] {
    return this.services().map((v) => ({
      service: v.service,
      state: v.state,
      health: v.health,
      restarts: v.restarts,
      ...(v.image ? { image: v.image } : {}),
      ...(v.imageId ? { imageId: v.imageId } : {}),
      ...(v.containerId ? { containerId: v.containerId } : {}),
      ...(v.containerId && this.startedAt.has(v.containerId) ? { startedAt: this.startedAt.get(v.containerId)!.startedAt } : {}),
    }));
  }

  status(): StatusContribution {
    return { services: this.serviceInfo() };
  }

  methods(): MethodTable {
    return {
      'stack.ps': () => ({ services: this.serviceInfo() }),
      'stack.logs': ({ service, tail, follow }, call) => {
        const known = this.services().map((v) => v.service);
        if (service !== undefined && !known.includes(service)) {
          throw new RpcFailure(ERROR.notFound, `no service "${service}" in stack ${this.config.project} (services: ${known.join(', ') || 'none'})`);
        }
        const stream = call.openStream();
        const req = { services: service ? [service] : known, tail: tail ?? 100, follow: follow ?? false };
        void streamLogs(this.engine, () => this.services(), req, stream).catch((err: Error) => stream.end({ ok: false, error: `cannot read logs: ${err.message}` }));
        return { stream: stream.id };
      },
    };
  }

  gauges(): GaugeSpec[] {
    const perService = (pick: (v: ServiceView) => number) => () => this.services().map((v) => ({ labels: { service: v.service }, value: pick(v) }));
    return [
      { name: 'deckhand_docker_engine_up', help: '1 when the Docker engine answers', samples: () => [{ value: this.engineReachable() ? 1 : 0 }] },
      {
        name: 'deckhand_service_up',
        help: '1 when the service has a running container that is not unhealthy',
        labelNames: ['service'],
        samples: perService((v) => (serviceCheck(v).status === 'fail' ? 0 : 1)),
      },
      { name: 'deckhand_service_restarts', help: 'Restarts of the service seen since the agent started', labelNames: ['service'], samples: perService((v) => v.restarts) },
    ];
  }

  private async readDeclaredServices(): Promise<void> {
    try {
      this.cli ??= await detectCompose(this.config.compose);
      const result = await run(composeServicesCommand({ cli: this.cli, project: this.config.project, dir: this.config.dir, ...(this.config.files ? { files: this.config.files } : {}) }));
      if (result.code !== 0) throw new Error(`compose config failed in ${this.config.dir}: ${result.stderr.trim().split('\n').slice(-2).join(' ')}`);
      this.declared = result.stdout.split('\n').map((s) => s.trim()).filter(Boolean).sort();
    } catch (err) {
      // Still supervise what runs: services are then known from container labels.
      this.ctx.log.error({ err: (err as Error).message, dir: this.config.dir }, 'cannot read the compose project; watching its containers by label only');
    }
  }

  private async observe(): Promise<void> {
    let containers: ContainerSummary[];
    try {
      containers = await this.engine.listProjectContainers(this.config.project);
    } catch (err) {
      this.setEngine(false, (err as Error).message);
      // Keep a view of every declared service so /health names each one as unknown.
      for (const service of this.declared) {
        if (!this.views.has(service)) this.views.set(service, { service, state: 'missing', health: 'none', restarts: 0 });
      }
      return;
    }
    this.setEngine(true);
    const current = currentContainers(containers);
    const names = new Set([...this.declared, ...current.keys()]);
    const next = new Map<string, ServiceView>();
    const now = Date.now();
    for (const service of [...names].sort()) {
      const c = current.get(service);
      const prev = this.views.get(service);
      let restarts = prev?.restarts ?? 0;
      const seenBefore = this.lastContainer.get(service);
      if (c && c.state === 'running' && seenBefore !== undefined && seenBefore !== `${c.id}/running`) restarts++;
      if (c) this.lastContainer.set(service, `${c.id}/${c.state}`);
      const view: ServiceView = c
        ? { service, state: c.state, health: healthFromStatus(c.status), containerId: c.id, image: c.image, imageId: c.imageId, restarts }
        : { service, state: 'missing', health: 'none', restarts };
      next.set(service, view);
      this.trackDown(view, now);
    }
    this.views = next;
    await this.readStartTimes();
  }

  private async readStartTimes(): Promise<void> {
    const live = new Set<string>();
    for (const v of this.views.values()) {
      if (!v.containerId) continue;
      live.add(v.containerId);
      if (this.startedAt.get(v.containerId)?.state === v.state) continue;
      try {
        this.startedAt.set(v.containerId, { state: v.state, startedAt: (await this.engine.inspect(v.containerId)).startedAt });
      } catch {
        /* gone since the list: the next tick sees its successor */
      }
    }
    for (const id of this.startedAt.keys()) if (!live.has(id)) this.startedAt.delete(id);
  }

  private trackDown(view: ServiceView, now: number): void {
    const down = serviceCheck(view).status === 'fail';
    if (!down) {
      this.downSince.delete(view.service);
      this.ctx.conditions.clear('service.down', view.service, `service ${view.service} is back (${view.state})`);
      return;
    }
    const since = this.downSince.get(view.service) ?? now;
    this.downSince.set(view.service, since);
    if (now - since >= DOWN_ALERT_AFTER_MS) {
      this.ctx.conditions.raise('service.down', view.service, 'critical', `service ${view.service} is down: ${serviceCheck(view).output ?? view.state}`, { state: view.state, health: view.health });
    }
  }

  private setEngine(up: boolean, error = ''): void {
    if (this.engineUp !== up) this.ctx.log[up ? 'info' : 'error']({ error }, up ? 'Docker engine reachable' : 'Docker engine unreachable');
    this.engineUp = up;
    this.engineError = error;
    this.ctx.conditions.set(!up, 'docker.unreachable', 'engine', 'critical', up ? 'Docker engine reachable again' : `Docker engine unreachable: ${error}`);
  }
}
