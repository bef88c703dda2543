// The agent as a process against a real Docker engine and a real compose
// stack: /health, /livez, /readyz, /metrics and what lands in the database.
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, removeDir, startAgent, waitFor, type AgentProcess } from '../helpers/agent.js';
import { containerState, waitForObservations } from '../helpers/observe.js';
import { POSTGRES_IMAGE, requireDocker, TestStack } from '../helpers/stack.js';

describe('health endpoint and metrics against a real stack', { timeout: 180_000 }, () => {
  let stack: TestStack;
  let agent: AgentProcess;

  before(async () => {
    requireDocker();
    const [webPort, apiPort, dbPort] = [await freePort(), await freePort(), await freePort()];
    stack = TestStack.unique('health', {
      web: { environment: { PORT: String(webPort) } },
      api: { environment: { PORT: String(apiPort) } },
      db: { image: POSTGRES_IMAGE, environment: { PGPORT: String(dbPort), POSTGRES_LISTEN_ADDRESSES: '127.0.0.1', POSTGRES_USER: 'app', POSTGRES_PASSWORD: 'app', POSTGRES_DB: 'app' } },
    });
    await stack.up();
    agent = await startAgent({ config: { stack: { project: stack.project, dir: stack.dir }, alerts: { diskLowPercent: 99 } } });
    await agent.waitReady();
  });

  after(async () => {
    await agent?.stop();
    await stack?.down();
    if (agent) removeDir(agent.dir);
    if (stack) removeDir(stack.dir);
  });

  it('reports every service, the engine and the disks, and passes once all are healthy', async () => {
    await waitFor(async () => (await agent.get('/health')).json().status === 'pass', 90_000, () => 'all services healthy');
    const res = await agent.get('/health');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type')?.split(';')[0], 'application/health+json');
    const doc = res.json();
    assert.equal(doc.serviceId, 'test-host');
    assert.match(doc.version, /^\d+\.\d+\.\d+/);
    assert.deepEqual(doc.checks['docker:engine'], [{ status: 'pass' }]);
    for (const s of ['web', 'api', 'db']) {
      assert.deepEqual(doc.checks[`service:${s}`], [{ status: 'pass', observedValue: 'healthy', restarts: 0 }], `service ${s}`);
    }
    assert.equal(doc.checks['disk:/'][0].observedUnit, '%');
    assert.equal(typeof doc.checks['disk:/'][0].observedValue, 'number');
  });

  it('answers HEAD with the same status and no body', async () => {
    for (const path of ['/health', '/livez', '/readyz', '/metrics']) {
      const get = await agent.get(path);
      const head = await agent.get(path, 'HEAD');
      assert.equal(head.status, get.status, path);
      assert.equal(head.text, '', path);
    }
  });

  it('/livez and /readyz', async () => {
    assert.deepEqual((await agent.get('/livez')).json(), { status: 'pass' });
    assert.equal((await agent.get('/readyz')).status, 200);
  });

  it('exposes host, container and agent figures in Prometheus text', async () => {
    await waitFor(async () => (await agent.get('/metrics')).text.includes('deckhand_service_cpu_percent{service="db"}'), 20_000, () => 'container CPU in /metrics');
    const res = await agent.get('/metrics');
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    for (const line of [
      /^deckhand_host_cpu_percent \d/m,
      /^deckhand_host_memory_used_bytes \d+/m,
      /^deckhand_host_disk_used_percent\{mount="\/"\} [\d.]+/m,
      /^deckhand_service_memory_bytes\{service="web"\} \d+/m,
      /^deckhand_service_up\{service="api"\} 1/m,
      /^deckhand_docker_engine_up 1/m,
      /^# TYPE deckhand_stack_observations_total counter$/m,
      /^deckhand_stack_observations_total [1-9]\d*$/m,
      /^deckhand_agent_ready 1/m,
      /^deckhand_health_status 0/m,
    ]) {
      assert.match(res.text, line);
    }
  });

  it('keeps host and container series in SQLite', async () => {
    const db = new Database(join(agent.dataDir, 'deckhand.db'), { readonly: true });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      await waitFor(() => {
        const names = db.prepare('SELECT name FROM metric_series').pluck().all() as string[];
        return ['host.cpu', 'host.mem.used', 'host.load1', 'host.disk.used:/', 'service.cpu:web', 'service.mem:db', 'service.restarts:api'].every((n) => names.includes(n));
      }, 15_000, () => 'series in the database');
      const memDb = db.prepare("SELECT value FROM metric_raw r JOIN metric_series s ON s.id = r.series_id WHERE s.name = 'service.mem:db' ORDER BY ts DESC LIMIT 1").pluck().get() as number;
      assert.ok(memDb > 1_000_000, `PostgreSQL uses more than 1 MB (${memDb})`);
    } finally {
      db.close();
    }
  });

  it('a killed container is brought back, and its restart counted', async () => {
    const id = await stack.containerId('api');
    const before = await containerState(id);
    await stack.docker('kill', id);
    await waitFor(async () => (await agent.get('/health')).json().checks['service:api'][0].restarts === 1, 15_000, () => 'api restarted');
    await waitFor(async () => (await agent.get('/health')).json().status === 'pass', 30_000, () => 'healthy again');
    assert.equal(await stack.containerId('api'), id, 'the same container, started again');
    const after = await containerState(id);
    assert.ok(after.running && Date.parse(after.startedAt) > Date.parse(before.startedAt), `started again: ${after.startedAt} after ${before.startedAt}`);
    // Counted once, and in /metrics too, once the agent has looked again.
    await waitForObservations(agent, 1);
    assert.equal((await agent.get('/health')).json().checks['service:api'][0].restarts, 1);
    assert.match((await agent.get('/metrics')).text, /^deckhand_service_restarts\{service="api"\} 1$/m);
  });

  it('answers /health from kept state: as fast as a bare node:http server, within a margin, measured side by side', async () => {
    // A bare server with the same body, requests interleaved with the
    // agent's, so load on the machine slows both: the bound is a ratio to
    // it (with a 10 ms floor), not an absolute figure that drifts.
    const body = (await agent.get('/health')).text;
    const bare = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/health+json' }).end(body));
    await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(bare.address() as AddressInfo).port}/health`;
    const agentMs: number[] = [];
    const bareMs: number[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        let t0 = performance.now();
        await agent.get('/health');
        agentMs.push(performance.now() - t0);
        t0 = performance.now();
        await (await fetch(url)).text();
        bareMs.push(performance.now() - t0);
      }
    } finally {
      bare.close();
    }
    const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.95)]!;
    const bound = Math.max(10, 4 * p95(bareMs));
    assert.ok(p95(agentMs) < bound, `p95 ${p95(agentMs).toFixed(2)} ms, bare node:http ${p95(bareMs).toFixed(2)} ms (bound ${bound.toFixed(2)} ms)`);
  });
});
