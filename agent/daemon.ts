// Builds the duties from config, starts them in order, and stops them in
// reverse on SIGTERM. It knows no duty's internals: only the Duty lifecycle.
import type { Logger } from 'pino';
import { agentMethods } from './api/methods/index.js';
import type { MethodTable } from './api/rpc.js';
import { ApiDuty } from './api/server.js';
import { TokenStore } from './api/tokens.js';
import type { AgentConfig } from './config/schema.js';
import { AlertsDuty } from './duties/alerts/duty.js';
import { BackupsDuty } from './duties/backups/duty.js';
import { CertsDuty } from './duties/certs/duty.js';
import { backupTools } from './duties/backups/tools.js';
import { DeployDuty } from './duties/deploy/duty.js';
import { MetricsDuty } from './duties/metrics/duty.js';
import { StackDuty } from './duties/stack/duty.js';
import type { Duty, DutyContext } from './duty.js';
import { AuditLog } from './events/audit.js';
import { Conditions } from './events/conditions.js';
import { EventLog } from './events/log.js';
import { EventRetention } from './events/retention.js';
import { OncePerWindow } from './events/throttle.js';
import { HostFactsDuty } from './host/duty.js';
import { HealthServer } from './http/server.js';
import { openStore, type Db } from './store/db.js';
import { systemdNotifier } from './systemd/notify.js';
import { VERSION } from './version.js';

export const STOP_DEADLINE_MS = 5000;
/** The same error from the same duty is kept as an event at most this often. */
const ERROR_EVENT_EVERY_MS = 10 * 60_000;

export class Daemon {
  readonly db: Db;
  readonly events: EventLog;
  readonly duties: Duty[] = [];
  private readonly started: Duty[] = [];
  private ready = false;
  private stopping: Promise<void> | undefined;
  private readonly stopSignal = new AbortController();
  private readonly errorEvents = new OncePerWindow(ERROR_EVENT_EVERY_MS);

  constructor(
    readonly config: AgentConfig,
    readonly log: Logger,
  ) {
    this.db = openStore(config.dataDir);
    this.events = new EventLog(this.db, (err) => this.reportError('events', err));
    const conditions = new Conditions(this.events);
    const ctx: DutyContext = {
      config,
      log,
      db: this.db,
      events: this.events,
      conditions,
      reportError: (duty, err) => this.reportError(duty, err),
      stopping: this.stopSignal.signal,
    };
    const startedAt = Date.now();
    // Alerts first: it must be listening before any other duty has news.
    this.duties.push(new AlertsDuty(config.alerts, ctx, VERSION));
    this.duties.push(new EventRetention(this.events, (err) => this.reportError('retention', err)));
    const stack = config.stack ? new StackDuty(config.stack, { ...ctx, log: log.child({ duty: 'stack' }) }) : undefined;
    const stackAccess = stack && { engine: stack.engine, project: config.stack!.project };
    const backups = config.backups.length ? new BackupsDuty(config.backups, (c) => backupTools(c, stackAccess), { ...ctx, log: log.child({ duty: 'backups' }) }) : undefined;
    const deploy = stack ? new DeployDuty(config.stack!, stack, { ...ctx, log: log.child({ duty: 'deploy' }) }, backups) : undefined;
    if (stack && deploy) this.duties.push(stack, deploy);
    if (backups) this.duties.push(backups);
    const certs = config.certs ? new CertsDuty(config.certs, { ...ctx, log: log.child({ duty: 'certs' }) }, stackAccess) : undefined;
    if (certs) this.duties.push(certs);
    const metrics = new MetricsDuty(config.metrics, config.alerts.diskLowPercent, { ...ctx, log: log.child({ duty: 'metrics' }) }, stack);
    this.duties.push(metrics);
    const docker = stack && { engineVersion: () => stack.engine.api.version(), composeCli: async () => (await stack.project()).cli };
    const host = new HostFactsDuty({ log: log.child({ duty: 'host' }), events: this.events, ...(docker ? { docker } : {}) });
    this.duties.push(host);
    const health = new HealthServer(config.health, {
      duties: () => this.started,
      gauges: () => this.duties.flatMap((d) => d.gauges?.() ?? []),
      ready: () => this.ready,
      // Every event marks a change of some duty's state (a service down or back, a restart, a deploy): /health is rebuilt on its next read.
      onStateChange: (listener) => this.events.subscribe(() => listener()),
      version: VERSION,
      serviceId: config.host.name,
      startedAt,
    });
    // Health listens early so /livez and /readyz answer while the rest starts.
    this.duties.unshift(health);
    if (config.api) {
      const tokens = new TokenStore(this.db);
      let methods: MethodTable | undefined;
      const api: ApiDuty = new ApiDuty(config.api, { ...ctx, log: log.child({ duty: 'api' }) }, tokens, new AuditLog(this.events), () =>
        // Built on first use: every duty exists by then, and the table never changes.
        (methods ??= agentMethods({
          ...(stack ? { stack } : {}),
          ...(deploy ? { deploy } : {}),
          ...(backups ? { backups } : {}),
          ...(certs ? { certs } : {}),
          metrics,
          duties: () => this.started,
          conditions,
          events: this.events,
          version: VERSION,
          hostName: config.host.name,
          startedAt,
          hostFacts: () => host.current(),
          tokens,
          closeSessionsOf: (id) => api.closeSessionsOf(id),
        })),
      );
      // The API starts last: every method it serves is backed by a started duty.
      this.duties.push(api);
    }
  }

  async start(): Promise<void> {
    for (const duty of this.duties) {
      const t0 = Date.now();
      await duty.start();
      this.started.push(duty);
      this.log.info({ duty: duty.name, ms: Date.now() - t0 }, 'duty started');
    }
    this.ready = true;
    this.events.record({
      type: 'agent.started',
      severity: 'info',
      message: `deckhand-agent ${VERSION} started on ${this.config.host.name}`,
      data: { version: VERSION, duties: this.duties.map((d) => d.name) },
    });
  }

  dutyNames(): string[] {
    return this.duties.map((d) => d.name);
  }

  isReady(): boolean {
    return this.ready;
  }

  /** Stops every started duty, newest first, then closes the database. Idempotent. */
  stop(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      this.ready = false;
      this.log.info({ reason }, 'stopping');
      this.stopSignal.abort();
      for (const duty of [...this.started].reverse()) {
        try {
          await duty.stop();
        } catch (err) {
          this.log.error({ duty: duty.name, err }, 'duty did not stop cleanly');
        }
      }
      this.started.length = 0;
      this.db.close();
    })();
    return this.stopping;
  }

  reportError(duty: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.log.error({ duty, err }, `${duty}: ${message}`);
    if (!this.db.open || !this.errorEvents.allow(`${duty}:${message}`, Date.now())) return;
    try {
      this.events.record({ type: 'agent.error', severity: 'warning', subject: duty, message: `${duty}: ${message}` });
    } catch {
      /* the store itself failing is already logged above */
    }
  }
}

/** Runs the daemon until SIGTERM/SIGINT; exits non-zero on a fatal error so systemd restarts it. */
export async function runDaemon(config: AgentConfig, log: Logger): Promise<void> {
  const daemon = new Daemon(config, log);
  const notifier = systemdNotifier(log);
  const fatal = (kind: string) => (err: unknown) => {
    log.fatal({ err }, `${kind}: exiting so the service manager restarts the agent`);
    try {
      daemon.events.record({ type: 'agent.error', severity: 'critical', subject: 'agent', message: `${kind}: ${err instanceof Error ? err.message : String(err)}` });
    } catch {
      /* best effort */
    }
    process.exit(1);
  };
  // Node prints process warnings to stderr as plain text; they go through the logger instead, as JSON like every other line.
  process.removeAllListeners('warning');
  process.on('warning', (w) => log.warn({ warning: { name: w.name, message: w.message, stack: w.stack } }, `${w.name}: ${w.message}`));
  process.on('uncaughtException', fatal('uncaught exception'));
  process.on('unhandledRejection', fatal('unhandled rejection'));

  const shutdown = (signal: string) => {
    notifier.stopping();
    const force = setTimeout(() => {
      log.error({ deadlineMs: STOP_DEADLINE_MS }, 'duties did not stop in time; exiting anyway');
      process.exit(1);
    }, STOP_DEADLINE_MS);
    force.unref();
    void daemon.stop(signal).then(() => {
      log.info('stopped');
      process.exit(0);
    });
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));

  try {
    await daemon.start();
  } catch (err) {
    log.fatal({ err }, `cannot start: ${(err as Error).message}`);
    await daemon.stop('start failed');
    process.exit(1);
  }
  log.info({ health: `${config.health.listen.host}:${config.health.listen.port}`, dataDir: config.dataDir }, 'deckhand-agent running');
  notifier.ready(`running: ${daemon.dutyNames().join(', ')}`);
}
