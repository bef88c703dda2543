// The health server: plain HTTP on health.listen for uptime checkers and
// Prometheus. Every answer comes from state the duties keep; nothing here
// waits on Docker or PostgreSQL. Fastify adds HEAD for each GET route.
//
// The answers are kept as bytes (health-cache.ts, render-cache.ts) and
// written as they are (answer.ts): a request costs fastify's routing and a
// socket write, not a document build, so checkers and scrapes, pipelined or
// not, cannot starve the event loop the duties share.
import fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Duty, GaugeSpec } from '../duty.js';
import { answer, answerHeaders } from './answer.js';
import type { HealthConfig } from './config.js';
import { HealthCache } from './health-cache.js';
import { healthDocument } from './health.js';
import { healthHttpServer } from './node-server.js';
import { buildRegistry } from './prometheus.js';
import { RenderCache } from './render-cache.js';

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

const JSON_TYPE = 'application/json; charset=utf-8';
const PASS = Buffer.from('{"status":"pass"}');
const FAIL = Buffer.from('{"status":"fail"}');
const PASS_HEADERS = answerHeaders(JSON_TYPE, PASS);
const FAIL_HEADERS = answerHeaders(JSON_TYPE, FAIL);

export interface HealthServerDeps {
  duties: () => readonly Duty[];
  /** Every duty's gauges, started or not (a gauge reads kept state, empty until there is some). */
  gauges: () => GaugeSpec[];
  ready: () => boolean;
  /** Calls `listener` whenever a duty's state changes; returns the unsubscribe. /health is rebuilt on the next read. */
  onStateChange?: (listener: () => void) => () => void;
  version: string;
  serviceId: string;
  startedAt: number;
}

export class HealthServer implements Duty {
  readonly name = 'health';
  private registry: Promise<Registry> | undefined;
  private app: FastifyInstance | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly health: HealthCache;
  private readonly metrics = new RenderCache();

  constructor(
    private readonly config: HealthConfig,
    private readonly deps: HealthServerDeps,
  ) {
    this.health = new HealthCache(() => healthDocument(deps.duties(), deps.version, deps.serviceId));
  }

  async start(): Promise<void> {
    const app = fastify({
      logger: false,
      return503OnClosing: true,
      schemaController: { compilersFactory: NO_SCHEMA_COMPILERS },
      // Its limits and its way with pipelined requests (node-server.ts).
      serverFactory: healthHttpServer,
    });
    this.routes(app);
    this.unsubscribe = this.deps.onStateChange?.(() => this.health.invalidate());
    try {
      await app.listen({ host: this.config.listen.host, port: this.config.listen.port });
    } catch (err) {
      this.unsubscribe?.();
      await app.close();
      throw new Error(`health server cannot listen on ${this.config.listen.host}:${this.config.listen.port}: ${(err as Error).message} (health.listen)`);
    }
    this.app = app;
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.app?.close();
    this.app = undefined;
  }

  /** The port actually bound (tests use port 0... or a fixed one). */
  address(): string | undefined {
    const a = this.app?.server.address();
    return a && typeof a === 'object' ? `${a.address}:${a.port}` : undefined;
  }

  private routes(app: FastifyInstance): void {
    const { deps, health } = this;
    app.get('/health', (_req, reply) => {
      const h = health.get();
      answer(reply, h.httpStatus, h.headers, h.body);
    });
    app.get('/livez', (_req, reply) => answer(reply, 200, PASS_HEADERS, PASS));
    app.get('/readyz', (_req, reply) => (deps.ready() ? answer(reply, 200, PASS_HEADERS, PASS) : answer(reply, 503, FAIL_HEADERS, FAIL)));
    app.get('/metrics', async (_req, reply) => {
      const { type, body } = await this.metricsText();
      answer(reply, 200, answerHeaders(type, body, false), body);
    });
  }

  /** The kept render, or a new one once it is a second old (prom-client is loaded on the first scrape). */
  private async metricsText(): Promise<{ type: string; body: Buffer }> {
    const registry = await (this.registry ??= buildRegistry([...this.agentGauges(), ...this.deps.gauges()]));
    return { type: registry.contentType, body: await this.metrics.get(registry.contentType, () => registry.metrics()) };
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
          const s = this.health.get().status;
          return [{ value: s === 'pass' ? 0 : s === 'warn' ? 1 : 2 }];
        },
      },
    ];
  }
}
