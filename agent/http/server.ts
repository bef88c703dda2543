// The health server: plain HTTP on health.listen for uptime checkers and
// Prometheus. Every answer comes from state the duties keep; nothing here
// waits on Docker or PostgreSQL. Fastify adds HEAD for each GET route.
import fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Duty, GaugeSpec } from '../duty.js';
import type { HealthConfig } from './config.js';
import { healthDocument } from './health.js';
import { buildRegistry } from './prometheus.js';

/**
 * The routes declare no JSON schemas, so fastify's default compilers (ajv and
 * fast-json-stringify, about 1.3 MB of resident memory once loaded) are never
 * needed; giving it these keeps them from being loaded at all. A route that
 * declares a schema fails at start, not silently.
 */
const noSchemas = (): never => {
  throw new Error('the health server declares no route schemas');
};
const NO_SCHEMA_COMPILERS = { buildValidator: () => noSchemas, buildSerializer: () => noSchemas };

export interface HealthServerDeps {
  duties: () => readonly Duty[];
  /** Every duty's gauges, started or not (a gauge reads kept state, empty until there is some). */
  gauges: () => GaugeSpec[];
  ready: () => boolean;
  version: string;
  serviceId: string;
  startedAt: number;
}

export class HealthServer implements Duty {
  readonly name = 'health';
  private registry: Promise<Registry> | undefined;
  private app: FastifyInstance | undefined;

  constructor(
    private readonly config: HealthConfig,
    private readonly deps: HealthServerDeps,
  ) {}

  async start(): Promise<void> {
    const app = fastify({ logger: false, return503OnClosing: true, schemaController: { compilersFactory: NO_SCHEMA_COMPILERS } });
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
      this.registry ??= buildRegistry([...this.agentGauges(), ...deps.gauges()]);
      const registry = await this.registry;
      const text = await registry.metrics();
      return reply.header('content-type', registry.contentType).send(text);
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

  private agentGauges(): GaugeSpec[] {
    const { deps } = this;
    return [
      { name: 'deckhand_agent_info', help: 'Agent version', labelNames: ['version', 'host'], samples: () => [{ labels: { version: deps.version, host: deps.serviceId }, value: 1 }] },
      { name: 'deckhand_agent_uptime_seconds', help: 'Seconds since the agent started', samples: () => [{ value: (Date.now() - deps.startedAt) / 1000 }] },
      { name: 'deckhand_agent_resident_memory_bytes', help: 'Agent resident set size', samples: () => [{ value: process.memoryUsage.rss() }] },
      { name: 'deckhand_agent_ready', help: '1 once every configured duty has started', samples: () => [{ value: deps.ready() ? 1 : 0 }] },
      {
        name: 'deckhand_health_status',
        help: 'Overall /health status: 0 pass, 1 warn, 2 fail',
        samples: () => {
          const s = healthDocument(deps.duties(), deps.version, deps.serviceId).status;
          return [{ value: s === 'pass' ? 0 : s === 'warn' ? 1 : 2 }];
        },
      },
    ];
  }
}
