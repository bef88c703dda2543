// The stack duty: knows the compose project's services and what their
// containers are doing (the engine's event stream, with a timer as a safety
// net), brings back what dies or turns unhealthy (supervisor.ts), and reports
// it all to /health, /metrics and the API.
import type { LogLine, ServiceInfo } from '../../api/protocol.js';
import type { CheckResult, Duty, DutyContext, GaugeSpec, HealthChecks, StatusContribution } from '../../duty.js';
import { DockerEngine, type ContainerStats, type ContainerSummary } from '../../docker/engine.js';
import { failed, notFound, type Progress } from '../../errors.js';
import { run, runChecked } from '../../exec/runner.js';
import { Periodic } from '../../periodic.js';
import type { ContainerSource, StackControl } from '../faces.js';
import type { StackConfig } from './config.js';
import { composeRestartCommand, composeServicesCommand, composeStartServiceCommand, composeStopCommand, composeUpServiceCommand, detectCompose, type ComposeCli, type ComposeProject } from './compose.js';
import { OperatorStops } from './operator-stops.js';
import type { OtherHands } from './restart-policy.js';
import { Supervisor } from './supervisor.js';
import { streamLogs } from './logs.js';
import { currentContainers, healthFromStatus, serviceCheck, type ServiceView } from './services.js';

/** The safety net: the event stream normally tells us first. */
const OBSERVE_EVERY_MS = 5000;
const EVENTS_RETRY_MS = { first: 1000, max: 30_000 };
/** A service down this long (and not yet back) raises service.down. */
const DOWN_ALERT_AFTER_MS = 30_000;

/** HTTP 304 from the engine: someone (compose, an operator) started it first; that is what we wanted. */
function ignoreAlreadyStarted(err: { statusCode?: number }): void {
  if (err.statusCode !== 304) throw err;
}

export interface RunningContainer {
  service: string;
  id: string;
}

export class StackDuty implements Duty, ContainerSource, StackControl {
  readonly name = 'stack';
  private readonly loop: Periodic;
  private cli: ComposeCli | undefined;
  /** Services from the compose file as last applied. */
  private declared: string[] = [];
  private views = new Map<string, ServiceView>();
  private engineUp: boolean | undefined;
  private engineError = '';
  private downSince = new Map<string, number>();
  /** StartedAt per container, re-read (inspect) only when its state changes, not every tick. */
  private startedAt = new Map<string, { state: string; startedAt: string }>();
  private readonly supervisor: Supervisor;
  private readonly operatorStops: OperatorStops;
  private eventStream: (NodeJS.ReadableStream & { destroy?: () => void }) | undefined;
  private stopping = false;
  private pokeTimer: NodeJS.Timeout | undefined;
  private pokeAgain = false;
  /** Services a deploy is working on: the supervisor keeps its hands off them. */
  private readonly holds = new Map<string, number>();
  /** Services an operator's restart, stop or start is working on: likewise, and none of it is a restart. */
  private readonly operating = new Map<string, number>();
  /** Observations completed (engine reachable or not): lets anyone see that the duty looked again. */
  private observations = 0;

  constructor(
    private readonly config: StackConfig,
    private readonly ctx: DutyContext,
    readonly engine = new DockerEngine(),
  ) {
    this.loop = new Periodic(OBSERVE_EVERY_MS, () => this.observe(), (err) => ctx.reportError(this.name, err));
    this.operatorStops = new OperatorStops(ctx.db, config.project);
    const r = config.restart;
    this.supervisor = new Supervisor(
      { backoffMs: r.backoff, maxBackoffMs: r.maxBackoff, crashloopRestarts: r.crashloop.restarts, crashloopWithinMs: r.crashloop.within },
      {
        current: (service) => this.views.get(service),
        apply: async (remedy, view) => {
          if (remedy === 'start') await this.engine.startContainer(view.containerId!).catch(ignoreAlreadyStarted);
          else if (remedy === 'restart') await this.engine.restartContainer(view.containerId!);
          else await runChecked(composeUpServiceCommand(await this.project(), view.service));
          this.poke();
        },
      },
      ctx,
    );
  }

  async start(): Promise<void> {
    this.stopping = false;
    await this.readDeclaredServices();
    await this.loop.runNow();
    this.loop.start(OBSERVE_EVERY_MS);
    void this.followEvents();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.supervisor.stop();
    if (this.pokeTimer) clearTimeout(this.pokeTimer);
    this.eventStream?.destroy?.();
    await this.loop.stop();
  }

  /** Observe again soon: something happened to a container. Coalesces bursts of events. */
  private poke(): void {
    if (this.stopping) return;
    if (this.pokeTimer) {
      this.pokeAgain = true;
      return;
    }
    this.pokeTimer = setTimeout(() => {
      void this.loop.runNow().then(() => {
        this.pokeTimer = undefined;
        if (this.pokeAgain) {
          this.pokeAgain = false;
          this.poke();
        }
      });
    }, 20);
  }

  /** Follows the engine's events for our project; reconnects with backoff when the engine goes away. */
  private async followEvents(): Promise<void> {
    let delay = EVENTS_RETRY_MS.first;
    while (!this.stopping) {
      const opened = Date.now();
      try {
        const stream = await this.engine.events(this.config.project);
        this.eventStream = stream as typeof this.eventStream;
        this.poke(); // anything missed while we were not listening
        await new Promise<void>((resolve) => {
          // Right after a `die` the engine may still list the container as running for
          // a few tens of ms: look again shortly, so a death is never left to the timer.
          stream.on('data', () => {
            this.poke();
            for (const ms of [150, 600]) setTimeout(() => this.poke(), ms).unref();
          });
          stream.on('end', resolve);
          stream.on('close', resolve);
          stream.on('error', () => resolve());
        });
      } catch {
        /* engine unreachable: observe() reports it; try again below */
      }
      this.eventStream = undefined;
      if (this.stopping) return;
      this.poke();
      if (Date.now() - opened > 60_000) delay = EVENTS_RETRY_MS.first;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(EVENTS_RETRY_MS.max, delay * 2);
    }
  }

  serviceNames(): string[] {
    return [...new Set([...this.declared, ...this.views.keys()])].sort();
  }

  operatorStopped(): string[] {
    return this.serviceNames().filter((s) => this.operatorStops.has(s));
  }

  currentImages(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const v of this.views.values()) if (v.imageId) out[v.service] = v.imageId;
    return out;
  }

  hold(services: readonly string[]): () => void {
    for (const s of services) this.holds.set(s, (this.holds.get(s) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const s of services) {
        const n = (this.holds.get(s) ?? 1) - 1;
        if (n <= 0) this.holds.delete(s);
        else this.holds.set(s, n);
      }
      this.poke();
    };
  }

  /** A deploy or rollback changed what runs: take its list of services; restart records start afresh. */
  async reload(declared: readonly string[]): Promise<void> {
    if (declared.length) this.declared = [...declared].sort();
    for (const s of this.serviceNames()) this.supervisor.forget(s);
    await this.loop.runNow();
  }

  async project(): Promise<ComposeProject> {
    this.cli ??= await detectCompose(this.config.compose);
    return { cli: this.cli, project: this.config.project, dir: this.config.dir, ...(this.config.files ? { files: this.config.files } : {}) };
  }

  /** Services and their containers as last observed (never calls Docker), with the supervisor's restart count as of now. */
  services(): ServiceView[] {
    return [...this.views.values()].map((v) => ({ ...v, restarts: this.supervisor.restarts(v.service) }));
  }

  runningContainers(): RunningContainer[] {
    return this.services()
      .filter((v) => v.state === 'running' && v.containerId)
      .map((v) => ({ service: v.service, id: v.containerId! }));
  }

  /** Restarts the supervisor made (the service died or turned unhealthy), not an operator's or a deploy's. */
  restarts(service: string): number {
    return this.supervisor.restarts(service);
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
    for (const view of this.services()) {
      // With the engine down, the last view is stale: say so rather than guess.
      checks[`service:${view.service}`] = [this.serviceCheck(view)];
    }
    return checks;
  }

  private serviceCheck(view: ServiceView): CheckResult {
    if (this.engineUp === false) return { status: 'fail', observedValue: 'unknown', output: 'Docker engine unreachable', restarts: view.restarts };
    const stop = this.operatorStops.get(view.service);
    if (stop && view.state !== 'running') {
      return { status: 'warn', observedValue: 'stopped', output: `stopped by ${stop.actor} ${new Date(stop.since).toISOString()} (deckhand start ${view.service})`, restarts: view.restarts };
    }
    if (this.supervisor.isCrashloop(view.service) && serviceCheck(view).status === 'fail') {
      return { status: 'fail', observedValue: 'crashloop', output: `crash loop: deckhand stopped restarting it (deckhand restart ${view.service} to try again)`, restarts: view.restarts };
    }
    return serviceCheck(view);
  }

  serviceInfo(): ServiceInfo[] {
    return this.services().map((v) => {
      const stop = this.operatorStops.get(v.service);
      return {
        service: v.service,
        state: v.state,
        health: v.health,
        restarts: v.restarts,
        ...(v.image ? { image: v.image } : {}),
        ...(v.imageId ? { imageId: v.imageId } : {}),
        ...(v.containerId ? { containerId: v.containerId } : {}),
        ...(v.containerId && this.startedAt.has(v.containerId) ? { startedAt: this.startedAt.get(v.containerId)!.startedAt } : {}),
        ...(stop ? { stoppedBy: stop.actor, stoppedAt: new Date(stop.since).toISOString() } : {}),
      };
    });
  }

  status(): StatusContribution {
    return { services: this.serviceInfo() };
  }

  /** Throws not found unless the stack has this service. */
  private known(service: string): void {
    const names = this.services().map((v) => v.service);
    if (!names.includes(service)) throw notFound(`no service "${service}" in stack ${this.config.project} (services: ${names.join(', ') || 'none'})`);
  }

  /** An operator's restart: clears a crash loop and an operator stop. Not counted as a restart (it is audited). */
  async restartService(service: string): Promise<void> {
    this.known(service);
    this.supervisor.forget(service);
    this.operatorStops.remove(service);
    const view = this.views.get(service);
    await this.operate(service, `restart of ${service}`, async (p) => runChecked(view?.state === 'missing' ? composeUpServiceCommand(p, service) : composeRestartCommand(p, service)));
  }

  /** Stops the service and keeps it down (across deploys and agent restarts) until startService. */
  async stopService(service: string, actor: string): Promise<void> {
    this.known(service);
    // Recorded first: the supervisor must not bring it back while it stops.
    this.operatorStops.add(service, actor);
    this.supervisor.forget(service);
    await this.operate(service, `stop of ${service}`, async (p) => runChecked(composeStopCommand(p, service)));
  }

  /** Brings an operator-stopped service back, as the compose file now declares it (a deploy may have changed it). */
  async startService(service: string): Promise<void> {
    this.known(service);
    this.operatorStops.remove(service);
    this.supervisor.forget(service);
    await this.operate(service, `start of ${service}`, async (p) => runChecked(composeStartServiceCommand(p, service)));
  }

  /** Runs an operator's action on the service; meanwhile the supervisor leaves it alone, so the container going down on the way is never taken for a crash. */
  private async operate(service: string, what: string, work: (p: ComposeProject) => Promise<unknown>): Promise<void> {
    this.operating.set(service, (this.operating.get(service) ?? 0) + 1);
    try {
      await work(await this.project());
    } catch (err) {
      throw failed(`${what} failed: ${(err as Error).message}`);
    } finally {
      const n = (this.operating.get(service) ?? 1) - 1;
      if (n <= 0) this.operating.delete(service);
      else this.operating.set(service, n);
    }
    this.poke();
  }

  /**
   * Log lines of one or all services, oldest first, to `sink`. Without
   * follow it resolves once the tail is sent; following, when `signal` aborts.
   */
  logs(req: { service?: string; tail?: number; follow?: boolean }, sink: Progress<LogLine>, signal: AbortSignal): Promise<{ lines: number }> {
    if (req.service !== undefined) this.known(req.service);
    const services = req.service ? [req.service] : this.services().map((v) => v.service);
    return streamLogs(this.engine, () => this.services(), { services, tail: req.tail ?? 100, follow: req.follow ?? false }, sink, signal);
  }

  gauges(): GaugeSpec[] {
    const perService = (pick: (v: ServiceView) => number) => () => this.services().map((v) => ({ labels: { service: v.service }, value: pick(v) }));
    return [
      { name: 'deckhand_docker_engine_up', help: '1 when the Docker engine answers', samples: () => [{ value: this.engineReachable() ? 1 : 0 }] },
      {
        name: 'deckhand_service_up',
        help: '1 when the service has a running container that is not unhealthy',
        labelNames: ['service'],
        samples: perService((v) => (this.serviceCheck(v).status === 'fail' ? 0 : 1)),
      },
      {
        name: 'deckhand_service_restarts',
        help: 'Restarts deckhand made of the service because it died or turned unhealthy, since the agent started (deploys and operator actions are not counted)',
        labelNames: ['service'],
        samples: perService((v) => v.restarts),
      },
      { name: 'deckhand_stack_observations_total', help: 'Observations of the stack (container list, review by the supervisor) since the agent started', kind: 'counter', samples: () => [{ value: this.observations }] },
    ];
  }

  private async readDeclaredServices(): Promise<void> {
    try {
      const result = await run(composeServicesCommand(await this.project()));
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
        if (!this.views.has(service)) this.views.set(service, { service, state: 'missing', health: 'none', restarts: this.supervisor.restarts(service) });
      }
      this.observations++;
      return;
    }
    this.setEngine(true);
    const current = currentContainers(containers);
    const names = new Set([...this.declared, ...current.keys()]);
    const next = new Map<string, ServiceView>();
    const now = Date.now();
    for (const service of [...names].sort()) {
      const c = current.get(service);
      // A container replaced or started again is not a restart by itself: only the supervisor's remedies count.
      const restarts = this.supervisor.restarts(service);
      const view: ServiceView = c
        ? { service, state: c.state, health: healthFromStatus(c.status), containerId: c.id, image: c.image, imageId: c.imageId, restarts }
        : { service, state: 'missing', health: 'none', restarts };
      next.set(service, view);
      this.trackDown(view, now);
    }
    this.views = next;
    this.supervisor.review([...next.values()], (service) => this.otherHands(service));
    await this.readStartTimes();
    this.observations++;
  }

  private otherHands(service: string): OtherHands {
    return { operatorStopped: this.operatorStops.has(service), operating: this.operating.has(service), deploying: this.holds.has(service) };
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
    const check = this.serviceCheck(view);
    const down = check.status === 'fail';
    if (!down) {
      this.downSince.delete(view.service);
      this.ctx.conditions.clear('service.down', view.service, `service ${view.service} is back (${view.state})`);
      return;
    }
    const since = this.downSince.get(view.service) ?? now;
    this.downSince.set(view.service, since);
    if (now - since >= DOWN_ALERT_AFTER_MS) {
      this.ctx.conditions.raise('service.down', view.service, 'critical', `service ${view.service} is down: ${check.output ?? view.state}`, { state: view.state, health: view.health });
    }
  }

  private setEngine(up: boolean, error = ''): void {
    if (this.engineUp !== up) {
      if (up) this.ctx.log.info('Docker engine reachable');
      else this.ctx.log.error({ error }, 'Docker engine unreachable');
    }
    this.engineUp = up;
    this.engineError = error;
    this.ctx.conditions.set(!up, 'docker.unreachable', 'engine', 'critical', up ? 'Docker engine reachable again' : `Docker engine unreachable: ${error}`);
  }
}
