// What a flood of failed logins costs the agent: N upgrade requests with a
// wrong token, spread over many loopback addresses, each a full TCP + TLS
// connection (an attacker does not resume sessions). Printed: the audit rows
// written for them (goal: one per address and minute, at most 100 a minute
// plus one summary, instead of one per attempt), the answers (401 until an
// address has failed 10 times in a minute, then 429), the agent's CPU, RSS
// before, at peak and a while after, and /livez answer times meanwhile.
//
//   node --import tsx test/bench/failed-logins.ts [--attempts 100000] [--addresses 1000]
//        [--concurrency 48] [--settle 30]
//
// Needs `npm run build`. No stack: the API and the audit log are all it takes.
import Database from 'better-sqlite3';
import { request } from 'node:http';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { removeDir, unitEnvironment } from '../helpers/agent.js';
import { startApiAgent } from '../helpers/api.js';
import { cpuSeconds, machineInfo, memory, numberOption, percentile, printMachine, printResult, round, sleep } from './lib.js';

const ATTEMPTS = numberOption('attempts', 100_000);
const ADDRESSES = numberOption('addresses', 1000);
const CONCURRENCY = numberOption('concurrency', 48);
const SETTLE_S = numberOption('settle', 30);

/** The k-th source address: 127.20.x.y, never 127.0.0.1 (the honest side). */
const addressOf = (k: number) => `127.20.${Math.floor(k / 250) % 256}.${(k % 250) + 1}`;

function attempt(port: number, localAddress: string): Promise<string> {
  return new Promise((resolve) => {
    const raw = netConnect({ host: '127.0.0.1', port, localAddress });
    raw.on('error', () => {});
    const socket = tlsConnect({ socket: raw, rejectUnauthorized: false }, () => {
      socket.write(
        'GET /v1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer dh_${'W'.repeat(43)}\r\n\r\n`,
      );
    });
    let head = '';
    const done = (what: string) => {
      socket.destroy();
      raw.destroy();
      resolve(what);
    };
    socket.setTimeout(10_000, () => done('timeout'));
    socket.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (m) done(m[1]!);
    });
    socket.on('error', () => done('reset'));
    socket.on('close', () => done(head ? 'other' : 'closed'));
  });
}

function livez(port: number): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/livez', timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(performance.now() - t0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(5000));
    req.end();
  });
}

const authRows = (dataDir: string): { rows: number; counted: number } => {
  const db = new Database(join(dataDir, 'deckhand.db'), { readonly: true, fileMustExist: true });
  try {
    const r = db.prepare("SELECT count(*) AS rows, coalesce(sum(json_extract(data, '$.count')), 0) AS counted FROM events WHERE type = 'audit' AND subject = 'auth'").get() as { rows: number; counted: number };
    return r;
  } finally {
    db.close();
  }
};

async function main(): Promise<void> {
  printMachine(machineInfo());
  const api = await startApiAgent({ env: unitEnvironment() });
  try {
    const pid = api.agent.child.pid!;
    await sleep(2000);
    const rssBefore = memory(pid).rssKb;
    const cpuBefore = cpuSeconds(pid);
    const statuses = new Map<string, number>();
    let next = 0;
    let peakKb = rssBefore;
    const probes: number[] = [];
    let running = true;
    const prober = (async () => {
      while (running) {
        probes.push(await livez(api.agent.healthPort));
        peakKb = Math.max(peakKb, memory(pid).rssKb);
        await sleep(200);
      }
    })();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < ATTEMPTS; i = next++) {
          const s = await attempt(api.port, addressOf(i % ADDRESSES));
          statuses.set(s, (statuses.get(s) ?? 0) + 1);
        }
      }),
    );
    const floodS = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(pid) - cpuBefore;
    running = false;
    await prober;
    await sleep(SETTLE_S * 1000);
    const rssAfter = memory(pid).rssKb;
    const duringRun = authRows(api.agent.dataDir);
    await api.agent.stop(); // writes the window still open
    const final = authRows(api.agent.dataDir);
    const minutes = Math.max(1, Math.ceil(floodS / 60) + 1);
    printResult('failed-logins', {
      attempts: ATTEMPTS,
      addresses: ADDRESSES,
      concurrency: CONCURRENCY,
      floodSeconds: round(floodS, 1),
      attemptsPerSecond: Math.round(ATTEMPTS / floodS),
      answers: Object.fromEntries([...statuses].sort()),
      auditRows: final.rows,
      auditRowsBeforeStop: duringRun.rows,
      failuresCountedInAudit: final.counted,
      auditRowsGoal: `at most ${minutes * 101} (101 a minute over ${minutes} windows)`,
      agentCpuSeconds: round(cpu, 1),
      agentCpuMsPerAttempt: round((cpu * 1000) / ATTEMPTS, 3),
      rssMb: { before: round(rssBefore / 1024, 1), peak: round(peakKb / 1024, 1), [`after${SETTLE_S}s`]: round(rssAfter / 1024, 1) },
      livezMs: { p50: round(percentile(probes, 50), 1), p99: round(percentile(probes, 99), 1), max: round(Math.max(...probes), 1), probes: probes.length },
    });
  } finally {
    await api.agent.stop().catch(() => {});
    removeDir(api.agent.dir);
  }
}

await main();
