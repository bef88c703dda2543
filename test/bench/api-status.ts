// The WebSocket API's answer time, as an operator feels it and as a script
// on an open connection sees it:
//
// (a) `deckhand status --json` as a whole process on loopback: Node start-up,
//     loading the CLI bundle, TCP + TLS (pinned fingerprint), the WebSocket
//     upgrade with the token, status.get, exit. Goal: under 300 ms. Shown
//     beside a bare `node -e 0` and `deckhand --version` (start-up and bundle
//     load without the network), so what is Node's own share is plain.
//     When dist/deckhand.js cannot do `status` yet, a minimal script doing
//     exactly what the CLI does is timed instead, and the output says so.
// (b) status.get as a call on an open connection: sequential calls, p50/p99
//     (goal p99 < 5 ms).
//
//   node --import tsx test/bench/api-status.ts [--runs 30] [--calls 2000] [--no-stack]
//
// Needs `npm run build`; with the stack (default), scripts/test-env.sh up.
// The agent runs as the systemd unit starts it (its node flags and
// environment), metrics at their default interval, one web service.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { freePort, removeDir, ROOT, unitEnvironment } from '../helpers/agent.js';
import { connect, startApiAgent, type ApiAgent } from '../helpers/api.js';
import { requireDocker, TestStack } from '../helpers/stack.js';
import { flagOption, goalLine, machineInfo, numberOption, percentile, printMachine, printResult, round } from './lib.js';

const RUNS = numberOption('runs', 30);
const CALLS = numberOption('calls', 2000);
const WITH_STACK = !flagOption('no-stack');
const CLI_BIN = join(ROOT, 'dist/deckhand.js');

/**
 * What `deckhand status --json` does, minus its argument parsing and output
 * formatting: TLS, the pin checked before any HTTP, the upgrade with the
 * token, one status.get, exit. Run with `node --input-type=module -e` from
 * the repository, so `ws` resolves as it does for the CLI's bundle.
 */
const MINIMAL_CLIENT = `
import { connect } from 'node:tls';
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
const url = new URL(process.env.DECKHAND_URL);
const socket = connect({ host: url.hostname, port: Number(url.port), rejectUnauthorized: false });
socket.once('secureConnect', () => {
  const fp = createHash('sha256').update(socket.getPeerCertificate().raw).digest('hex');
  if (fp !== process.env.DECKHAND_FINGERPRINT) { console.error('pin mismatch'); process.exit(3); }
  const ws = new WebSocket(url, { createConnection: () => socket, headers: { Authorization: 'Bearer ' + process.env.DECKHAND_TOKEN }, perMessageDeflate: false });
  ws.once('open', () => ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'status.get', params: {} })));
  ws.once('message', (data) => { process.stdout.write(String(data)); ws.close(1000); });
  ws.once('close', () => process.exit(0));
  ws.once('error', (e) => { console.error(e.message); process.exit(3); });
});
socket.once('error', (e) => { console.error(e.message); process.exit(3); });
`;

interface Timed {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

function timeProcess(argv: string[], env: Record<string, string> = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, code, stdout, stderr }));
  });
}

function stats(xs: number[]): { p50: number; p95: number; p99: number; min: number; max: number; mean: number } {
  return {
    p50: round(percentile(xs, 50), 2),
    p95: round(percentile(xs, 95), 2),
    p99: round(percentile(xs, 99), 2),
    min: round(Math.min(...xs), 2),
    max: round(Math.max(...xs), 2),
    mean: round(xs.reduce((a, b) => a + b, 0) / xs.length, 2),
  };
}

async function series(label: string, n: number, run: () => Promise<Timed>, ok: (r: Timed) => boolean): Promise<number[]> {
  await run(); // page cache, first compile
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await run();
    if (!ok(r)) throw new Error(`${label}: run ${i + 1} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.slice(0, 300)}`);
    ms.push(r.ms);
  }
  const s = stats(ms);
  console.log(`${label.padEnd(44)} p50 ${String(s.p50).padStart(7)} ms   p95 ${String(s.p95).padStart(7)} ms   min ${s.min} / max ${s.max} ms`);
  return ms;
}

const isStatus = (r: Timed) => {
  if (r.code !== 0) return false;
  try {
    const doc = JSON.parse(r.stdout) as { agent?: { version?: string }; result?: { agent?: { version?: string } } };
    return typeof (doc.agent ?? doc.result?.agent)?.version === 'string';
  } catch {
    return false;
  }
};

async function main(): Promise<void> {
  const machine = machineInfo(WITH_STACK);
  printMachine(machine);
  console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  let stack: TestStack | undefined;
  let api: ApiAgent | undefined;
  try {
    if (WITH_STACK) {
      requireDocker();
      stack = TestStack.unique('bench-status', { web: { environment: { PORT: String(await freePort()) } } });
      await stack.up();
    }
    api = await startApiAgent({
      config: { metrics: { interval: '10s' }, ...(stack ? { stack: { project: stack.project, dir: stack.dir } } : {}) },
      env: unitEnvironment(),
    });
    const token = api.token('bench', 'read');
    const env = { DECKHAND_URL: api.url, DECKHAND_TOKEN: token, DECKHAND_FINGERPRINT: api.tls.fingerprint };
    await new Promise((r) => setTimeout(r, 2000)); // first metrics sample, stack observed

    // ---- (a) whole process
    console.log(`\n(a) one status round trip as a whole process, ${RUNS} runs each (sequential, after one unmeasured run)`);
    const probe = await timeProcess([process.execPath, CLI_BIN, 'status', '--json'], env);
    const cliWorks = isStatus(probe);
    if (!cliWorks) console.log(`   dist/deckhand.js cannot do \`status --json\` yet (exit ${probe.code}: ${(probe.stderr || probe.stdout).trim().split('\n')[0]}); timing a minimal script that does what it does`);
    const bare = await series('node -e 0', RUNS, () => timeProcess([process.execPath, '-e', '0']), (r) => r.code === 0);
    const load = cliWorks ? await series('node dist/deckhand.js --version', RUNS, () => timeProcess([process.execPath, CLI_BIN, '--version']), (r) => r.code === 0) : undefined;
    const roundTrip = cliWorks
      ? await series('deckhand status --json (DECKHAND_URL...)', RUNS, () => timeProcess([process.execPath, CLI_BIN, 'status', '--json'], env), isStatus)
      : await series('minimal client: TLS + pin + WS + status.get', RUNS, () => timeProcess([process.execPath, '--input-type=module', '-e', MINIMAL_CLIENT], env), isStatus);
    const a = stats(roundTrip);
    const nodeShare = stats(bare);
    console.log(goalLine('status round trip p50', a.p50, 'ms', { below: 300 }));
    console.log(goalLine('status round trip p95', a.p95, 'ms', { below: 300 }));
    console.log(`   of which Node's bare start-up (p50): ${nodeShare.p50} ms (${Math.round((nodeShare.p50 / a.p50) * 100)} %)${load ? `; loading the CLI bundle adds ${round(stats(load).p50 - nodeShare.p50, 1)} ms; the network part (TLS, upgrade, call) ${round(a.p50 - stats(load).p50, 1)} ms` : ''}`);

    // ---- (b) calls on an open connection
    console.log(`\n(b) status.get on one open connection: ${CALLS} sequential calls (after 200 unmeasured)`);
    const client = await connect(api.url, token);
    for (let i = 0; i < 200; i++) await client.call('status.get');
    const lat: number[] = [];
    let bytes = 0;
    for (let i = 0; i < CALLS; i++) {
      const t0 = performance.now();
      const res = await client.call('status.get');
      lat.push(performance.now() - t0);
      if (res.error || typeof res.result?.agent?.version !== 'string') throw new Error(`status.get failed: ${JSON.stringify(res).slice(0, 300)}`);
      if (i === 0) bytes = JSON.stringify(res).length;
    }
    client.close();
    const b = stats(lat);
    console.log(`   answer size ${bytes} bytes; p50 ${b.p50} ms, p99 ${b.p99} ms, max ${b.max} ms, mean ${b.mean} ms`);
    console.log(goalLine('status.get p99 (open connection)', b.p99, 'ms', { below: 5 }));
    console.log(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);

    printResult('api-status', {
      machine,
      roundTrip: { measured: cliWorks ? 'deckhand status --json' : 'minimal client script (CLI lacks status)', runs: RUNS, ...a, goalMs: 300 },
      nodeBare: { runs: RUNS, ...nodeShare },
      ...(load ? { cliVersion: { runs: RUNS, ...stats(load) } } : {}),
      openConnection: { calls: CALLS, answerBytes: bytes, ...b, goalP99Ms: 5 },
    });
  } finally {
    await api?.agent.stop();
    if (api) removeDir(api.agent.dir);
    await stack?.down();
    if (stack) removeDir(stack.dir);
  }
}

await main();
