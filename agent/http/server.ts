// The health server: plain HTTP on health.listen for uptime checkers and
// Prometheus. Every answer comes from state the duties keep; nothing here
// waits on Docker or PostgreSQL. Fastify adds HEAD for each GET route.
import fastify, { type FastifyInstance } from 'fastify';
import { Gauge, Registry } from 'prom-client';
import type { Duty } from '../duty.js';
import type { HealthConfig } from './config.js';
import { healthDocument } from './health.js';

export interface HealthServerDeps {
  duties: () => readonly Duty[];
  ready: () => boolean;
  version: string;
  serviceId: string;
  startedAt: number;
}

export class HealthServer implements Duty {
  readonly name = 'health';
  readonly registry = new Registry();
  private app: FastifyInstance | undefined;

  constructor(
    private readonly config: HealthConfig,
    private readonly deps: HealthServerDeps,
  ) {
    this.registerAgentMetrics();
  }

  async start(): Promise<void> {
    const app = fastify({ logger: false, return503OnClosing: true });
    const { deps } = this;
    app.get('/health', async (_req, reply) => {
      const doc = healthDocument(deps.duties(), deps.version, deps.serviceId);
      return reply
        .code(doc.status === 'fail' ? 503 : 200)
        .header('content-type', 'application/health+json')
        .header('cache-control', 'no-store')
        .send(JSON.stringify(doc));
    });
    app.get('/livez', async (_req, reply) => reply.header('cache-control', 'no-store').send({ status: 'pass' }));
    app.get('/readyz', async (_req, reply) => {
      const ready = deps.ready();
      return reply.code(ready ? 200 : 503).header('cache-control', 'no-store').send({ status: ready ? 'pass' : 'fail' });
    });
    app.get('/metrics', async (_req, reply) => {
      const text = await this.registry.metrics();
      return reply.header('content-type', this.registry.contentType).send(text);
    });
    try {
      await app.listen({ host: this.config.listen.host, port: this.config.listen.port });
    } catch (err) {
      await app.close();
      throw new Error(`health server cannot listen on ${this.config.listen.host}:${this.config.listen.port}: ${(err as Error).message} (health.listen)`);
    }
    this.app = app;
  }

  async stop(): Promise<void> {
    await this.app?.close();
    this.app = undefined;
  }

  /** The port actually bound (tests use port 0... or a fixed one). */
  address(): string | undefined {
    const a = this.app?.server.address();
    return a && typeof a === 'object' ? `${a.address}:${a.port}` : undefined;
  }

  private registerAgentMetrics(): void {
    const { deps } = this;
    new Gauge({ name: 'deckhand_agent_info', help: 'Agent version', labelNames: ['version', 'host'], registers: [this.registry] }).set(
      { version: deps.version, host: deps.serviceId },
      1,
    );
    new Gauge({
      name: 'deckhand_agent_uptime_seconds',
      help: 'Seconds since the agent started',
      registers: [this.registry],
      collect: function () {
        this.set((Date.now() - deps.startedAt) / 1000);
      },
    });
    new Gauge({
      name: 'deckhand_agent_resident_memory_bytes',
      help: 'Agent resident set size',
      registers: [this.registry],
      collect: function () {
        this.set(process.memoryUsage.rss());
      },
    });
    new Gauge({
      name: 'deckhand_agent_ready',
      help: '1 once every configured duty has started',
      registers: [this.registry],
      collect: function () {
        this.set(deps.ready() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'deckhand_health_status',
      help: 'Overall /health status: 0 pass, 1 warn, 2 fail',
      registers: [this.registry],
      collect: function () {
        const s = healthDocument(deps.duties(), deps.version, deps.serviceId).status;
        this.set(s === 'pass' ? 0 : s === 'warn' ? 1 : 2);
      },
    });
  }
}
