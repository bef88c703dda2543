// The health server's hot path against the built agent: /livez keeps
// answering while pipelined /metrics scrapes flood it, half-sent requests are
// cut off, kept-alive connections are not, and /health, served from its kept
// bytes, still follows the stack within a second or two.
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HEADERS_TIMEOUT_MS, TIMEOUT_CHECK_EVERY_MS } from '../../agent/http/node-server.js';
import { freePort, removeDir, startAgent, waitFor, type AgentProcess } from '../helpers/agent.js';
import { requireDocker, TestStack } from '../helpers/stack.js';

// The flood that used to hold the event loop for seconds.
const FLOOD_CONNECTIONS = 20;
const FLOOD_REQUESTS_EACH = 2000;
const PROBE_EVERY_MS = 50;
const PROBE_LIMIT_MS = 100;
/**
 * The one probe that may fall in node's first parse of the flood. Before the hot-path changes the
 * same flood held the event loop for seconds (the whole flood takes about 4 s); the first parse
 * alone measured 21-98 ms on a quiet machine and once 517 ms on a loaded one.
 */
const FIRST_TURN_LIMIT_MS = 1000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** How often `needle` occurs in a stream of chunks, matches across chunk boundaries included. */
function occurrenceCounter(needle: string): (chunk: Buffer) => number {
  const n = Buffer.from(needle);
  let carry: Buffer = Buffer.alloc(0);
  return (chunk) => {
    const data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    let count = 0;
    for (let i = data.indexOf(n); i >= 0; i = data.indexOf(n, i + n.length)) count++;
    carry = data.subarray(Math.max(0, data.length - n.length + 1));
    return count;
  };
}

/** `perConnection` pipelined GET /metrics on each of `connections` sockets, all written at once; resolves when every answer is in. */
async function pipelinedFlood(port: number, connections: number, perConnection: number, timeoutMs: number): Promise<{ answered: number; ms: number }> {
  const request = Buffer.from('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  const burst = Buffer.concat(Array.from({ length: perConnection }, () => request));
  const sockets = await Promise.all(Array.from({ length: connections }, () => open(port)));
  const t0 = performance.now();
  let answered = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`flood: ${answered} of ${connections * perConnection} answered in ${timeoutMs} ms`)), timeoutMs);
      for (const s of sockets) {
        const count = occurrenceCounter('HTTP/1.1 200 OK');
        s.on('data', (chunk: Buffer) => {
          answered += count(chunk);
          if (answered >= connections * perConnection) {
            clearTimeout(timer);
            resolve();
          }
        });
        s.once('error', reject);
        s.write(burst);
      }
    });
  } finally {
    for (const s of sockets) s.destroy();
  }
  return { answered, ms: performance.now() - t0 };
}

/** GET /livez every PROBE_EVERY_MS on one kept-alive socket until `done`; each probe's answer time. */
async function probeLivez(port: number, done: () => boolean): Promise<number[]> {
  const s = await open(port);
  const times: number[] = [];
  try {
    while (!done()) {
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        let text = '';
        const timer = setTimeout(() => reject(new Error('/livez: no answer in 5 s')), 5000);
        const onData = (c: Buffer) => {
          text += c.toString();
          if (!text.includes('{"status":"pass"}')) return;
          clearTimeout(timer);
          s.off('data', onData);
          resolve();
        };
        s.on('data', onData);
        s.write('GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      });
      const ms = performance.now() - t0;
      times.push(ms);
      await sleep(Math.max(0, PROBE_EVERY_MS - ms));
    }
  } finally {
    s.destroy();
  }
  return times;
}

/** Resolves with how long the server took to close `s`, and what it said first. */
function closed(s: Socket): Promise<{ ms: number; text: string }> {
  const t0 = performance.now();
  let text = '';
  s.on('data', (c: Buffer) => (text += c.toString()));
  return new Promise((resolve) => s.once('close', () => resolve({ ms: performance.now() - t0, text })));
}

/** One GET on a raw socket; resolves with the status line once the body's last byte is in. */
function rawGet(s: Socket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (c: Buffer) => {
      text += c.toString();
      const head = text.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(text)?.[1];
      if (head < 0 || length === undefined || text.length < head + 4 + Number(length)) return;
      s.off('data', onData);
      resolve(text.slice(0, text.indexOf('\r\n')));
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  });
}

describe('health server hot path', { timeout: 90_000 }, () => {
  let stack: TestStack;
  let agent: AgentProcess;

  before(async () => {
    requireDocker();
    stack = TestStack.unique('hotpath', {
      web: { environment: { PORT: String(await freePort()) } },
      api: { environment: { PORT: String(await freePort()) } },
    });
    await stack.up();
    agent = await startAgent({ config: { stack: { project: stack.project, dir: stack.dir }, alerts: { diskLowPercent: 99 } } });
    await agent.waitReady();
    await waitFor(async () => (await agent.get('/health')).json().status === 'pass', 45_000, () => 'all services healthy');
  });

  after(async () => {
    await agent?.stop();
    await stack?.down();
    if (agent) removeDir(agent.dir);
    if (stack) removeDir(stack.dir);
  });

  it(`keeps /livez under ${PROBE_LIMIT_MS} ms while ${FLOOD_CONNECTIONS} connections pipeline ${FLOOD_REQUESTS_EACH} GET /metrics each`, async () => {
    assert.equal((await agent.get('/metrics')).status, 200); // prom-client loaded, one render made
    let flooding = true;
    const probes = probeLivez(agent.healthPort, () => !flooding);
    await sleep(200); // a few probes before, as a baseline
    const flood = await pipelinedFlood(agent.healthPort, FLOOD_CONNECTIONS, FLOOD_REQUESTS_EACH, 30_000).finally(() => (flooding = false));
    const times = await probes;
    const worst = Math.max(...times);
    console.log(`flood: ${flood.answered} answers in ${Math.round(flood.ms)} ms; ${times.length} /livez probes, worst ${worst.toFixed(1)} ms, median ${times.sort((a, b) => a - b)[times.length >> 1]!.toFixed(1)} ms`);
    assert.equal(flood.answered, FLOOD_CONNECTIONS * FLOOD_REQUESTS_EACH);
    assert.ok(times.length >= 5, `probed ${times.length} times`);
    // One probe may fall in the flood's first turn of the event loop, where node's parser makes a
    // request and a response for every request of every connection's first read before any code of
    // the agent runs (21-98 ms measured here, more on a busy machine); every other probe must be in time.
    const late = times.filter((t) => t >= PROBE_LIMIT_MS);
    assert.ok(late.length <= 1 && worst < FIRST_TURN_LIMIT_MS, `/livez during the flood (ms): ${times.map((t) => t.toFixed(0)).join(' ')}`);
    assert.equal(agent.child.exitCode, null, 'the agent is still running');
    assert.deepEqual((await agent.get('/livez')).json(), { status: 'pass' });
  });

  it('serves one /metrics render to the scrapes within a second', async () => {
    const bodies: string[] = [];
    for (let i = 0; i < 5; i++) bodies.push((await agent.get('/metrics')).text);
    // Five renders would differ (the uptime gauge moves every millisecond); one cached render, or two across a second's edge, do not.
    assert.ok(new Set(bodies).size <= 2, `${new Set(bodies).size} different bodies in 5 quick scrapes`);
    await sleep(1100);
    assert.notEqual((await agent.get('/metrics')).text, bodies.at(-1), 'rendered again after a second');
  });

  it('closes a connection that sends half a request header, and keeps an idle kept-alive one', async () => {
    const half = await open(agent.healthPort);
    const halfClosed = closed(half);
    half.write('GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const kept = await open(agent.healthPort);
    try {
      assert.equal(await rawGet(kept, '/livez'), 'HTTP/1.1 200 OK');
      const r = await halfClosed;
      assert.ok(r.ms <= HEADERS_TIMEOUT_MS + TIMEOUT_CHECK_EVERY_MS + 1500, `closed after ${Math.round(r.ms)} ms`);
      assert.ok(r.ms >= HEADERS_TIMEOUT_MS - 500, `not before the headers timeout: ${Math.round(r.ms)} ms`);
      assert.match(r.text, /^HTTP\/1\.1 408/);
      // Idle longer than the headers timeout: a checker's kept-alive socket still works.
      assert.equal(kept.destroyed, false);
      assert.equal(await rawGet(kept, '/livez'), 'HTTP/1.1 200 OK');
    } finally {
      half.destroy();
      kept.destroy();
    }
  });

  it('/health follows a killed container within two seconds', async () => {
    const before = (await agent.get('/health')).text;
    const id = await stack.containerId('api');
    await stack.docker('kill', id);
    const t0 = performance.now();
    let changed: string | undefined;
    await waitFor(async () => (changed = (await agent.get('/health')).text) !== before, 10_000, () => '/health changes after the kill');
    const ms = performance.now() - t0;
    const api = JSON.parse(changed!).checks['service:api'][0];
    console.log(`/health changed ${Math.round(ms)} ms after the kill: service:api ${JSON.stringify(api)}`);
    assert.ok(api.status !== 'pass' || api.restarts === 1, `the api check moved: ${JSON.stringify(api)}`);
    assert.ok(ms < 2000, `/health changed ${Math.round(ms)} ms after the kill`);
    await waitFor(async () => (await agent.get('/health')).json().status === 'pass', 30_000, () => 'healthy again');
  });
});
