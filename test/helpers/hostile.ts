// Tools for the hostile-clients suite: many loopback source addresses, held
// pre-authentication sockets (idle TCP, partial TLS ClientHellos, unfinished
// upgrade requests), a /livez probe on its own event loop, failed upgrades
// from a chosen address, the agent's RSS and socket count, and read-only
// looks into its database.
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { Worker } from 'node:worker_threads';
import WebSocket from 'ws';
import { AGENT_BIN, asUserArgv, userEnv, type AgentProcess } from './agent.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms)))]).finally(() => clearTimeout(timer));
}

/**
 * The i-th address of a loopback block: 127.B.x.y with y in 1..250. All of
 * 127.0.0.0/8 is loopback on Linux, so a client can bind any of them.
 */
export function loopback(block: number, i: number): string {
  return `127.${block}.${Math.floor(i / 250)}.${1 + (i % 250)}`;
}

/** VmRSS of a process, in KiB. */
export function rssKb(pid: number): number {
  return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
}

/** Sockets a process holds (each accepted connection is one). */
export function socketCount(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      /* closed while we looked */
    }
  }
  return n;
}

export function agentAlive(agent: AgentProcess): boolean {
  return agent.child.exitCode === null && agent.child.signalCode === null;
}

/** `deckhand-agent ARGS --config FILE`, run as the agent's user, as an operator on the box would with sudo -u. */
export function agentCli(agent: AgentProcess, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const [file, ...rest] = asUserArgv(agent.user, [process.execPath, AGENT_BIN, ...args, '--config', agent.configFile]);
  const r = spawnSync(file!, rest, { encoding: 'utf8', env: { ...process.env, ...userEnv(agent.user) } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs FN on the agent's database, opened read-only. */
export function readDb<T>(agent: AgentProcess, fn: (db: Database.Database) => T): T {
  const db = new Database(join(agent.dataDir, 'deckhand.db'), { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

// ------------------------------------------------------------ /livez probe --

export interface ProbeReport {
  samples: number;
  failures: number;
  maxMs: number;
  p99Ms: number;
  /** The slowest answers, with when they were asked (ms since the probe started). */
  worst: { at: number; ms: number; status: number }[];
}

const PROBE_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const t0 = performance.now();
const samples = [];
let stopping = false;
function once() {
  return new Promise((resolve) => {
    const start = performance.now();
    const req = http.get(workerData.url, { agent, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ at: start - t0, ms: performance.now() - start, status: res.statusCode }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ at: start - t0, ms: performance.now() - start, status: 0 }));
  });
}
parentPort.on('message', () => (stopping = true));
(async () => {
  while (!stopping) {
    const next = performance.now() + workerData.everyMs;
    samples.push(await once());
    const wait = next - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  agent.destroy();
  parentPort.postMessage(samples);
})();
`;

/**
 * Asks URL every EVERY_MS on one keep-alive connection, from a worker thread:
 * its own event loop, so what the test process does meanwhile (thousands of
 * sockets) does not count against the agent.
 */
export function startProbe(url: string, everyMs = 50): { stop(): Promise<ProbeReport> } {
  const worker = new Worker(PROBE_SOURCE, { eval: true, workerData: { url, everyMs } });
  const done = new Promise<{ at: number; ms: number; status: number }[]>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    async stop() {
      worker.postMessage('stop');
      const samples = await withTimeout(done, 10_000, 'the /livez probe to stop');
      await worker.terminate();
      const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
      return {
        samples: samples.length,
        failures: samples.filter((s) => s.status !== 200).length,
        maxMs: Math.round(ms.at(-1) ?? 0),
        p99Ms: Math.round(ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))] ?? 0),
        worst: [...samples].sort((a, b) => b.ms - a.ms).slice(0, 5).map((s) => ({ at: Math.round(s.at), ms: Math.round(s.ms), status: s.status })),
      };
    },
  };
}

// ------------------------------------------------------ pre-auth sockets --

/** The first bytes a real TLS client sends: its ClientHello, captured from node:tls against a listener of our own. */
export async function captureClientHello(): Promise<Buffer> {
  const server = createServer();
  const hello = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (d: Buffer) => {
    resolve(d);
    s.destroy();
  })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const client = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'localhost' });
  client.on('error', () => {});
  try {
    return await withTimeout(hello, 5000, 'a ClientHello');
  } finally {
    client.destroy();
    server.close();
  }
}

export type HeldKind = 'idle' | 'hello' | 'headers';

export interface Held {
  kind: HeldKind;
  address: string;
  socket: Socket;
  /** When the TCP (or, for "headers", the TLS) connection was up; undefined if it never was. */
  openedAt?: number;
  /** When the other side closed it (or it failed); undefined while open. */
  closedAt?: number;
}

/**
 * Opens one connection that never finishes: "idle" sends nothing, "hello"
 * the start of a ClientHello, "headers" completes TLS and sends an upgrade
 * request whose headers never end. Resolves once it is open or has failed.
 */
export function hold(port: number, kind: HeldKind, address: string, hello: Buffer): Promise<Held> {
  return new Promise((resolve) => {
    const socket: Socket =
      kind === 'headers'
        ? tlsConnect({ socket: netConnect({ host: '127.0.0.1', port, localAddress: address }), rejectUnauthorized: false, servername: 'localhost' })
        : netConnect({ host: '127.0.0.1', port, localAddress: address });
    const h: Held = { kind, address, socket };
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        resolve(h);
      }
    };
    socket.on(kind === 'headers' ? 'secureConnect' : 'connect', () => {
      h.openedAt = Date.now();
      if (kind === 'hello') socket.write(hello.subarray(0, Math.min(100, hello.length - 1)));
      if (kind === 'headers') socket.write(`GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`);
      settle();
    });
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.on('close', () => {
      h.closedAt ??= Date.now();
      settle();
    });
    socket.setTimeout(0);
  });
}

/** Opens many held connections, BATCH at a time (the listen backlog is finite). */
export async function holdMany(port: number, specs: { kind: HeldKind; address: string }[], hello: Buffer, batch = 200): Promise<Held[]> {
  const out: Held[] = [];
  for (let i = 0; i < specs.length; i += batch) {
    out.push(...(await Promise.all(specs.slice(i, i + batch).map((s) => hold(port, s.kind, s.address, hello)))));
  }
  return out;
}

// -------------------------------------------------------- failed upgrades --

/** One upgrade with TOKEN from ADDRESS: the HTTP status of the refusal, or 101 if it was accepted. */
export function upgradeStatus(url: string, token: string, localAddress: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { rejectUnauthorized: false, localAddress, headers: { Authorization: `Bearer ${token}` }, handshakeTimeout: 10_000 });
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => {
      resolve(101);
      ws.terminate();
    });
    ws.on('error', () => resolve(0));
  });
}

/** Runs TASKS with at most N at a time. */
export async function pool<T>(n: number, tasks: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        out[i] = await tasks[i]!();
      }
    }),
  );
  return out;
}
