// How much /health traffic the agent answers while it keeps collecting
// metrics: a 2-container stack, the built agent with metrics.interval 1s,
// and autocannon (in this process; the agent is its own process) against
// /health on loopback; then the same with wrk, when installed, for comparison.
//
//   node --import tsx test/bench/health-load.ts [--connections 50] [--duration 10]
//        [--warmup 3] [--rounds 2] [--wrk-threads 1] [--path /health] [--no-wrk]
//        [--metrics-interval 1s] [--unit] [--node-flags="--max-semi-space-size=16"]
//        [--variant node-http] [--node PATH] [--script PATH]
//
// Beside the agent, a bare node:http server in a process of its own (same
// node runtime and flags) answers the agent's own /health body, with the same
// headers, as a constant: the ceiling for this machine, load tool and
// settings. Each tool loads both, alternating over --rounds so that a change
// in the machine's load falls on both alike, and the bench prints
// `ratio rps agent/bare` and `p99 agent/bare` (goals: >= 0.8 and <= 2).
//
// --unit launches the agent with systemd's clean environment plus the node flags and environment of
// systemd/deckhand-agent.service (as a server runs it); by default it runs
// as the tests run it, plain `node dist/deckhand-agent.js`. --variant runs an
// experimental build instead (variant-build.ts: node-http = the health server
// on node:http instead of fastify).
//
// Besides the 50-connection runs (throughput at saturation, where latency is
// mostly queueing: mean latency = connections / throughput), one connection
// for the same time gives the service time an uptime checker sees, including
// any stall of the event loop while a metrics tick runs.
//
// Needs: `npm run build` (dist/), scripts/test-env.sh up (dockerd, test images,
// wrk). Both tools and the agent share this machine's cores: the figures are
// for a load generator and a server on the same box.
import autocannon from 'autocannon';
import Database from 'better-sqlite3';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, removeDir, waitFor } from '../helpers/agent.js';
import { requireDocker, TestStack } from '../helpers/stack.js';
import { nodeVersion, runtimeOptions, splitFlags, startBenchAgent, unitLaunch, type RunningAgent } from './agent-run.js';
import { buildVariant, VARIANTS, type BuiltVariant, type VariantName } from './variant-build.js';
import { allProcessesCpu, flagOption, goalLine, goalMet, machineBusyPercentOfCore, machineCpu, machineInfo, numberOption, option, printMachine, printResult, ProcessSampler, round, sleep, topCpu } from './lib.js';

const GOAL_RPS = 10_000;
const GOAL_P99_MS = 5;
/** Against the bare node:http server of the same run: throughput at least this share... */
const GOAL_RPS_RATIO = 0.8;
/** ...and a p99 at most this multiple. */
const GOAL_P99_RATIO = 2;

const connections = numberOption('connections', 50);
const duration = numberOption('duration', 10);
const warmup = numberOption('warmup', 3);
const rounds = numberOption('rounds', 2);
const wrkThreads = numberOption('wrk-threads', 1);
const path = option('path') || '/health';
const withWrk = !flagOption('no-wrk');
/** The brief's 1s keeps collection running under the load; a long one isolates the HTTP path. */
const metricsInterval = option('metrics-interval') || '1s';
const asUnit = flagOption('unit');
const unit = asUnit ? unitLaunch() : { nodeFlags: [], env: {} };
const nodeFlags = [...unit.nodeFlags, ...splitFlags(option('node-flags'))];
const agentEnv: Record<string, string> = unit.env;
const runtime = runtimeOptions(option);
const agentNode = nodeVersion(runtime.node);
const variant = option('variant') as VariantName | undefined;
if (variant !== undefined && !VARIANTS.includes(variant)) throw new Error(`--variant: one of ${VARIANTS.join(', ')}`);

interface LoadFigures {
  tool: string;
  requestsPerSec: number;
  latencyMs: { p50: number; p99: number; max: number };
  requests: number;
  non2xx: number;
  errors: number;
  /** Metric ticks the agent stored while the load ran (one a second is the cadence). */
  metricTicks: number;
  agentCpuPercentOfCore: number;
  agentRssMaxMb: number;
  /** Everything busy on the machine meanwhile, % of one core (the machine has nproc x 100). */
  machineBusyPercentOfCore: number;
  /** Who used the machine meanwhile (processes summed by name). */
  topProcesses: { comm: string; percentOfCore: number }[];
  /**
   * Requests answered per second of the agent's own CPU time: what it would
   * serve with a core to itself. Steadier than requests/s on a machine whose
   * cores the load generator (and anything else) share with the agent.
   */
  requestsPerAgentCpuSecond: number;
}

async function runAutocannon(url: string, seconds: number, conns = connections): Promise<autocannon.Result> {
  return autocannon({ url, connections: conns, duration: seconds, pipelining: 1 });
}

function autocannonFigures(r: autocannon.Result) {
  return {
    requestsPerSec: round(r.requests.average, 0),
    latencyMs: { p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max },
    requests: r.requests.total,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
  };
}

/** wrk's text report: "Requests/sec: 12345.67" and the "--latency" distribution in us/ms/s. */
function parseWrk(text: string): { rps: number; p50: number; p99: number; max: number; requests: number; non2xx: number; errors: number } {
  const toMs = (v: string) => {
    const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
    if (!m) return Number.NaN;
    const n = Number(m[1]);
    return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
  };
  const pct = (p: string) => toMs(new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(text)?.[1] ?? '');
  const latencyLine = /^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)/m.exec(text);
  const errorsLine = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? Number.NaN),
    p50: pct('50'),
    p99: pct('99'),
    max: latencyLine ? toMs(latencyLine[3]!) : Number.NaN,
    requests: Number(/(\d+) requests in/.exec(text)?.[1] ?? Number.NaN),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0),
    errors: errorsLine ? errorsLine.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
  };
}

async function wrkInstalled(): Promise<boolean> {
  try {
    await promisify(execFile)('wrk', ['--version']).catch((e: { stdout?: string }) => {
      // wrk prints its version and exits 1.
      if (!String(e.stdout ?? '').includes('wrk')) throw e;
    });
    return true;
  } catch {
    return false;
  }
}

function tickCounter(dataDir: string): (fromMs: number, toMs: number) => number {
  const db = new Database(join(dataDir, 'deckhand.db'), { readonly: true, fileMustExist: true });
  const stmt = db
    .prepare("SELECT count(*) FROM metric_raw r JOIN metric_series s ON s.id = r.series_id WHERE s.name = 'host.load1' AND r.ts >= ? AND r.ts < ?")
    .pluck();
  return (fromMs, toMs) => stmt.get(Math.floor(fromMs / 1000), Math.ceil(toMs / 1000)) as number;
}

type ToolFigures = Pick<LoadFigures, 'requestsPerSec' | 'latencyMs' | 'requests' | 'non2xx' | 'errors'>;

/** What a load runs against: the agent (whose metric ticks are counted) or the bare reference. */
interface Target {
  pid: number;
  countTicks?: (fromMs: number, toMs: number) => number;
}

async function underLoad(target: Target, tool: string, load: () => Promise<ToolFigures>): Promise<LoadFigures> {
  const sampler = new ProcessSampler(target.pid, 1000);
  const from = Date.now();
  const m0 = machineCpu();
  const p0 = allProcessesCpu();
  const t0 = performance.now();
  sampler.start();
  const figures = await load();
  sampler.stop();
  const m1 = machineCpu();
  const p1 = allProcessesCpu();
  const wall = (performance.now() - t0) / 1000;
  const to = Date.now();
  if (target.countTicks) await sleep(1500); // the tick that was running when the load stopped lands
  const s = sampler.summary();
  return {
    tool,
    ...figures,
    metricTicks: target.countTicks?.(from, to) ?? 0,
    agentCpuPercentOfCore: round(s.cpuPercentOfCore, 1),
    agentRssMaxMb: s.rssMaxMb,
    machineBusyPercentOfCore: machineBusyPercentOfCore(m0, m1),
    topProcesses: topCpu(p0, p1, wall),
    requestsPerAgentCpuSecond: s.cpuSeconds > 0 ? round(figures.requests / s.cpuSeconds, 0) : 0,
  };
}

/**
 * The reference: node:http answering `body` with `headers`, nothing else, in a
 * process of its own on the agent's node runtime and flags, so that the load
 * tool, the runtime and the machine are the same and only the server differs.
 */
const BARE_SERVER = `
const { createServer } = require('node:http');
const body = Buffer.from(process.env.BARE_BODY, 'base64');
const headers = { ...JSON.parse(process.env.BARE_HEADERS), 'content-length': body.length };
createServer((req, res) => {
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}).listen(Number(process.env.BARE_PORT), '127.0.0.1', () => process.stdout.write('listening\\n'));
`;

interface BareServer {
  child: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

async function startBareServer(body: string, headers: Record<string, string>, node: string, flags: string[]): Promise<BareServer> {
  const port = await freePort();
  const child = spawn(node, [...flags, '-e', BARE_SERVER], {
    env: { ...process.env, BARE_BODY: Buffer.from(body).toString('base64'), BARE_HEADERS: JSON.stringify(headers), BARE_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bare node:http reference did not listen within 10 s')), 10_000);
    child.stdout!.on('data', (c: Buffer) => {
      if (!c.toString().includes('listening')) return;
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => reject(new Error(`bare node:http reference exited (${code}) before listening`)));
  });
  return {
    child,
    url: `http://127.0.0.1:${port}${path}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The agent and the reference under the same load, alternately, `rounds` times each. */
interface Comparison {
  tool: string;
  agent: LoadFigures[];
  bare: LoadFigures[];
  rpsRatio: number;
  p99Ratio: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

async function compare(tool: string, agent: Target & { url: string }, bare: Target & { url: string }, run: (url: string) => Promise<ToolFigures>): Promise<Comparison> {
  const a: LoadFigures[] = [];
  const b: LoadFigures[] = [];
  for (let i = 0; i < rounds; i++) {
    // Agent first in odd rounds, the reference first in even ones: a drift in the machine's load falls on both.
    const order = i % 2 === 0 ? (['agent', 'bare'] as const) : (['bare', 'agent'] as const);
    for (const who of order) {
      if (who === 'agent') a.push(await underLoad(agent, tool, () => run(agent.url)));
      else b.push(await underLoad(bare, tool, () => run(bare.url)));
    }
  }
  const rpsRatio = round(mean(a.map((r) => r.requestsPerSec)) / mean(b.map((r) => r.requestsPerSec)), 2);
  const p99Ratio = round(mean(a.map((r) => r.latencyMs.p99)) / mean(b.map((r) => r.latencyMs.p99)), 2);
  return { tool, agent: a, bare: b, rpsRatio, p99Ratio };
}

/** The agent's figures over several rounds as one: summed counts, mean rates and percentiles, worst max. */
function merged(rs: LoadFigures[]): LoadFigures {
  const first = rs[0]!;
  const sum = (f: (r: LoadFigures) => number) => rs.reduce((acc, r) => acc + f(r), 0);
  const avg = (f: (r: LoadFigures) => number, digits: number) => round(sum(f) / rs.length, digits);
  return {
    ...first,
    requestsPerSec: avg((r) => r.requestsPerSec, 0),
    latencyMs: { p50: avg((r) => r.latencyMs.p50, 3), p99: avg((r) => r.latencyMs.p99, 3), max: Math.max(...rs.map((r) => r.latencyMs.max)) },
    requests: sum((r) => r.requests),
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    metricTicks: sum((r) => r.metricTicks),
    agentCpuPercentOfCore: avg((r) => r.agentCpuPercentOfCore, 1),
    agentRssMaxMb: Math.max(...rs.map((r) => r.agentRssMaxMb)),
    machineBusyPercentOfCore: avg((r) => r.machineBusyPercentOfCore, 1),
    requestsPerAgentCpuSecond: avg((r) => r.requestsPerAgentCpuSecond, 0),
  };
}

function printComparison(c: Comparison): void {
  const fig = (r: LoadFigures) => `${r.requestsPerSec} req/s, p50 ${r.latencyMs.p50} / p99 ${r.latencyMs.p99} / max ${r.latencyMs.max} ms, ${r.agentCpuPercentOfCore}% of a core`;
  for (let i = 0; i < c.agent.length; i++) {
    console.log(`  round ${i + 1}: agent ${fig(c.agent[i]!)}; bare ${fig(c.bare[i]!)}`);
  }
  console.log(goalLine(`  ${c.tool} ratio rps agent/bare`, c.rpsRatio, 'x', { min: GOAL_RPS_RATIO }));
  console.log(goalLine(`  ${c.tool} p99 agent/bare`, c.p99Ratio, 'x', { max: GOAL_P99_RATIO }));
}

async function main(): Promise<void> {
  requireDocker();
  const machine = machineInfo(true);
  printMachine(machine);
  console.log(`health-load: GET ${path}, ${connections} connections, ${duration} s (after ${warmup} s warm-up), ${rounds} round(s) each against the agent and a bare node:http reference; agent with 2 containers and metrics.interval ${metricsInterval}${runtime.node ? `, agent on node ${agentNode}` : ''}${runtime.script ? `, script ${runtime.script}` : ''}${variant ? `, experimental build: ${variant}` : ''}${asUnit ? ', launched as the systemd unit does' : ''}${nodeFlags.length ? `, node flags: ${nodeFlags.join(' ')}` : ''}${Object.keys(agentEnv).length ? `, env: ${Object.entries(agentEnv).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}`);

  const stack = TestStack.unique('load', {
    web: { environment: { PORT: String(await freePort()) } },
    api: { environment: { PORT: String(await freePort()) } },
  });
  let agent: RunningAgent | undefined;
  let bare: BareServer | undefined;
  let built: BuiltVariant | undefined;
  try {
    if (variant) built = await buildVariant(variant, runtime.script);
    await stack.up();
    agent = await startBenchAgent({ config: { stack: { project: stack.project, dir: stack.dir }, metrics: { interval: metricsInterval } }, nodeFlags, env: agentEnv, systemdEnvironment: asUnit, ...runtime, ...(built ? { script: built.script } : {}) });
    await agent.waitReady(60_000);
    const url = agent.url(path);
    // Loaded in its real state: both services healthy, so the body is the full document.
    await waitFor(
      async () => ((await fetch(agent!.url('/health')).then((r) => r.json()).catch(() => ({}))) as { status?: string }).status === 'pass',
      90_000,
      () => 'all services healthy',
    );
    const sample = await fetch(url);
    const body = await sample.text();
    console.log(`${path}: ${sample.status}, ${body.length} bytes, ${Object.keys((JSON.parse(body) as { checks?: object }).checks ?? {}).length} checks`);
    const countTicks = tickCounter(agent.dataDir);
    // The reference answers the same bytes with the same content headers.
    const sameHeaders: Record<string, string> = {};
    for (const h of ['content-type', 'cache-control']) {
      const v = sample.headers.get(h);
      if (v) sameHeaders[h] = v;
    }
    bare = await startBareServer(body, sameHeaders, runtime.node ?? process.execPath, nodeFlags);
    const agentTarget = { pid: agent.child.pid!, countTicks, url };
    const bareTarget = { pid: bare.child.pid!, url: bare.url };

    await runAutocannon(url, warmup); // JIT and connection warm-up, not counted
    await runAutocannon(bare.url, warmup);
    const cpu0 = process.cpuUsage();
    const comparisons: Comparison[] = [await compare('autocannon', agentTarget, bareTarget, async (u) => autocannonFigures(await runAutocannon(u, duration)))];
    const gen = process.cpuUsage(cpu0);
    const generatorCpu = round(((gen.user + gen.system) / 1e6 / (duration * rounds * 2)) * 100, 0);

    let wrkNote = '';
    const haveWrk = withWrk && (await wrkInstalled());
    const runWrk = async (u: string, conns: number, threads = wrkThreads): Promise<ToolFigures> => {
      const { stdout } = await promisify(execFile)('wrk', [`-t${threads}`, `-c${conns}`, `-d${duration}s`, '--latency', u], { timeout: (duration + 30) * 1000 });
      const p = parseWrk(stdout);
      return { requestsPerSec: round(p.rps, 0), latencyMs: { p50: p.p50, p99: p.p99, max: p.max }, requests: p.requests, non2xx: p.non2xx, errors: p.errors };
    };
    if (haveWrk) comparisons.push(await compare('wrk', agentTarget, bareTarget, (u) => runWrk(u, connections)));
    else wrkNote = withWrk ? 'wrk not installed: skipped' : 'wrk skipped (--no-wrk)';
    // One connection: no queue, so latency is the agent's own answer time, tick
    // stalls included. wrk reports microseconds; autocannon whole milliseconds.
    const single = haveWrk
      ? await underLoad(agentTarget, 'wrk, 1 connection', () => runWrk(url, 1, 1))
      : await underLoad(agentTarget, 'autocannon, 1 connection', async () => autocannonFigures(await runAutocannon(url, duration, 1)));
    if (agent.child.exitCode !== null) throw new Error(`agent exited during the load:\n${agent.output}`);

    console.log('');
    const results = comparisons.map((c) => merged(c.agent));
    for (const [i, r] of results.entries()) {
      const c = comparisons[i]!;
      console.log(
        `${r.tool}, ${connections} connections${c.tool === 'wrk' ? `, ${wrkThreads} thread(s)` : ''}: agent ${r.requests} requests, ${r.non2xx} non-2xx, ${r.errors} errors; agent at ${r.agentCpuPercentOfCore}% of a core ` +
          `(machine ${r.machineBusyPercentOfCore}% of ${machine.nproc * 100}%), RSS max ${r.agentRssMaxMb} MB; ${r.metricTicks} metric ticks stored in ${duration * rounds} s`,
      );
      console.log(`  busiest meanwhile (% of a core): ${r.topProcesses.map((p) => `${p.comm} ${p.percentOfCore}`).join(', ')}`);
      console.log(`${`  ${r.tool} requests per agent CPU-second`.padEnd(34)} ${String(r.requestsPerAgentCpuSecond).padStart(10)} (what a core of its own would serve)`);
      console.log(goalLine(`  ${r.tool} requests/s`, r.requestsPerSec, 'req/s', { min: GOAL_RPS }));
      console.log(goalLine(`  ${r.tool} latency p99`, r.latencyMs.p99, 'ms', { below: GOAL_P99_MS }));
      console.log(`${`  ${r.tool} latency p50 / max`.padEnd(34)} ${String(r.latencyMs.p50).padStart(10)} / ${r.latencyMs.max} ms`);
      printComparison(c);
    }
    console.log(`autocannon's own CPU (this process): ${generatorCpu}% of a core; mean latency can be no less than ${connections} / throughput`);
    console.log(
      `one connection (what an uptime checker sees; ${single.tool}): ${single.requestsPerSec} req/s, latency p50 ${single.latencyMs.p50} ms, p99 ${single.latencyMs.p99} ms, max ${single.latencyMs.max} ms; ${single.metricTicks} metric ticks meanwhile`,
    );
    if (wrkNote) console.log(wrkNote);
    // wrk, when it ran, decides: it measures in microseconds and leaves the agent more of the machine than autocannon in this process.
    const decisive = comparisons.at(-1)!;
    console.log(`ratio rps agent/bare ${decisive.rpsRatio}, p99 agent/bare ${decisive.p99Ratio} (${decisive.tool})`);

    const main = results[0]!;
    printResult('health-load', {
      machine,
      path,
      metricsInterval,
      connections,
      durationSeconds: duration,
      rounds,
      wrkThreads,
      bodyBytes: body.length,
      agentNode,
      launchedAsUnit: asUnit,
      variant: variant ?? null,
      nodeFlags,
      env: agentEnv,
      results,
      comparisons: comparisons.map((c) => ({ tool: c.tool, rpsRatio: c.rpsRatio, p99Ratio: c.p99Ratio, agent: c.agent, bare: c.bare })),
      singleConnection: single,
      autocannonCpuPercentOfCore: generatorCpu,
      goals: {
        requestsPerSec: { goal: GOAL_RPS, value: main.requestsPerSec, met: goalMet(main.requestsPerSec, { min: GOAL_RPS }) },
        p99Ms: { goal: GOAL_P99_MS, value: main.latencyMs.p99, met: goalMet(main.latencyMs.p99, { below: GOAL_P99_MS }) },
        rpsRatio: { tool: decisive.tool, goal: GOAL_RPS_RATIO, value: decisive.rpsRatio, met: goalMet(decisive.rpsRatio, { min: GOAL_RPS_RATIO }) },
        p99Ratio: { tool: decisive.tool, goal: GOAL_P99_RATIO, value: decisive.p99Ratio, met: goalMet(decisive.p99Ratio, { max: GOAL_P99_RATIO }) },
      },
    });
  } finally {
    await bare?.stop().catch(() => undefined);
    await agent?.stop().catch(() => undefined);
    await stack.down();
    removeDir(stack.dir);
    if (agent) removeDir(agent.dir);
    built?.cleanup();
  }
}

await main();
