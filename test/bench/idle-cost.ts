// What the agent costs a server while nothing happens: a 5-container stack,
// the built agent supervising it with metrics every 10 s, sampled from /proc
// for `--seconds` (default 300). Beside it, Debian's prometheus-node-exporter
// scraped at the same cadence, as a reference for "a small metrics daemon".
// Beside it, an idle `node` of the agent's runtime, launched with the same
// flags and environment and sampled in the same window: the agent's goal is
// its RSS above that process (GOAL_ABOVE_IDLE_MB), which holds across
// runtimes and machines where an absolute figure does not.
// Also the Docker engine's extra CPU while the agent runs (stats and container
// listing), against a window of the same length with the agent stopped, and,
// as a cross-check that noise cannot drown, the engine's CPU per API call
// from a burst of calls, scaled to the agent's call rate.
//
//   node --import tsx test/bench/idle-cost.ts [--seconds 300] [--warmup 30]
//        [--services 5] [--healthcheck-interval 30s] [--node-flags="--max-semi-space-size=1"]
//        [--unit] [--api] [--scrape-metrics] [--no-reference] [--no-engine-baseline]
//        [--node PATH] [--script PATH]
//
// By default the agent runs as the tests run it (`node dist/deckhand-agent.js`);
// --unit adds the node flags and environment of systemd/deckhand-agent.service
// (and starts the agent with systemd's clean environment, not this shell's),
// as a server runs it. --scrape-metrics has the agent's /metrics scraped every
// 10 s too (which loads prom-client, kept out of memory until the first scrape).
// --api serves the WebSocket API over TLS on a loopback port, as every
// install.sh config does (nobody connects).
// --node runs the agent on another runtime (the one a release ships), --script
// another build; see README.md for preparing better-sqlite3 for that runtime.
//
// Needs: `npm run build` (dist/), scripts/test-env.sh up (dockerd, test images,
// prometheus-node-exporter). Sends traffic to 127.0.0.1 only.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { request } from 'node:http';
import { socketPathFromEnv } from '../../agent/docker/engine.js';
import { join } from 'node:path';
import { freePort, removeDir, tempDir } from '../helpers/agent.js';
import { makeCert } from '../helpers/api.js';
import { requireDocker, TestStack, type ServiceSpec } from '../helpers/stack.js';
import { nodeVersion, runtimeOptions, splitFlags, startBenchAgent, systemdBaseEnvironment, unitLaunch, type RunningAgent } from './agent-run.js';
import {
  cpuDelta,
  cpuSeconds,
  cpuSecondsByName,
  flagOption,
  goalLine,
  goalMet,
  killAndWait,
  machineInfo,
  memory,
  numberOption,
  option,
  printMachine,
  printResult,
  ProcessSampler,
  round,
  sleep,
  spawnDetached,
} from './lib.js';

const GOAL_RSS_MB = 60;
const GOAL_ABOVE_IDLE_MB = 20;
const GOAL_CPU_PERCENT = 0.5;
const NODE_EXPORTER = '/usr/bin/prometheus-node-exporter';

/** The api section of an installed config: TLS with a self-signed pair, on a free loopback port. */
async function apiSection(): Promise<Record<string, unknown>> {
  const tls = makeCert(tempDir('bench-api'));
  return { listen: `127.0.0.1:${await freePort()}`, tls: { cert: tls.cert, key: tls.key } };
}

const seconds = numberOption('seconds', 300);
const warmup = Math.min(numberOption('warmup', 30), seconds / 2);
const serviceCount = numberOption('services', 5);
const sampleMs = numberOption('sample-ms', 5000);
// The test image probes itself every 2 s so tests see "healthy" fast; a real
// stack probes every 30 s (Docker's default). Each probe is an exec that
// dockerd runs, so this sets the engine's background noise.
const healthInterval = option('healthcheck-interval') || '30s';
const asUnit = flagOption('unit');
const unit = asUnit ? unitLaunch() : { nodeFlags: [], env: {} };
const nodeFlags = [...unit.nodeFlags, ...splitFlags(option('node-flags'))];
const agentEnv: Record<string, string> = unit.env;
const scrapeMetrics = flagOption('scrape-metrics');
const withApi = flagOption('api');
const runtime = runtimeOptions(option);
const agentNode = nodeVersion(runtime.node);
const withReference = !flagOption('no-reference');
const withEngineBaseline = !flagOption('no-engine-baseline');
const measureSeconds = seconds - warmup;

/** The engine's processes: dockerd answers the API; containerd and the shims do the cgroup reads behind stats. */
function engineCpu(): { dockerd: Map<number, number>; containerd: Map<number, number>; shims: Map<number, number> } {
  return { dockerd: cpuSecondsByName('dockerd'), containerd: cpuSecondsByName('containerd'), shims: cpuSecondsByName('containerd-shim', true) };
}

function enginePercent(a: ReturnType<typeof engineCpu>, b: ReturnType<typeof engineCpu>, wallSec: number) {
  const pct = (x: number) => round((x / wallSec) * 100, 3);
  return { dockerd: pct(cpuDelta(a.dockerd, b.dockerd)), containerd: pct(cpuDelta(a.containerd, b.containerd)), shims: pct(cpuDelta(a.shims, b.shims)) };
}

/** One Docker API call over the local socket, body drained (as dockerode does). */
function dockerGet(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socketPathFromEnv(), path, method: 'GET', timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`GET ${path}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * The engine's CPU per round of the calls the agent makes: one-shot stats of
 * every container at once (one metrics tick), and a list of the project's
 * containers (one stack observation), from a burst of rounds with the
 * engine's idle rate taken off. A cross-check of the window comparison, which
 * the rest of the machine's activity easily drowns. (A one-shot stats call
 * waits for dockerd's 1 s collection cycle, so rounds take about a second.)
 */
async function engineCostPerRound(ids: string[], project: string, idleRatePerSec: number, rounds: number) {
  const burst = async (once: () => Promise<unknown>, n: number) => {
    await once(); // warm
    const e0 = engineCpu();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await once();
    const wall = (performance.now() - t0) / 1000;
    const e1 = engineCpu();
    const used = cpuDelta(e0.dockerd, e1.dockerd) + cpuDelta(e0.containerd, e1.containerd) + cpuDelta(e0.shims, e1.shims);
    return { msPerRound: round((Math.max(0, used - idleRatePerSec * wall) / n) * 1000, 2), wallMsPerRound: round((wall / n) * 1000, 2), rounds: n };
  };
  const stats = await burst(() => Promise.all(ids.map((id) => dockerGet(`/containers/${id}/stats?stream=false&one-shot=true`))), rounds);
  const filters = encodeURIComponent(JSON.stringify({ label: [`com.docker.compose.project=${project}`] }));
  const list = await burst(() => dockerGet(`/containers/json?all=1&filters=${filters}`), rounds * 10);
  return { statsOfAllContainers: stats, list };
}

async function main(): Promise<void> {
  requireDocker();
  const machine = machineInfo(true);
  printMachine(machine);
  console.log(
    `idle-cost: ${serviceCount} web containers, metrics.interval 10s, ${seconds} s run (${warmup} s warm-up), RSS every ${sampleMs / 1000} s` +
      (runtime.node ? `, agent on node ${agentNode} (${runtime.node})` : '') +
      (runtime.script ? `, agent script ${runtime.script}` : '') +
      (asUnit ? ', launched as systemd/deckhand-agent.service does' : '') +
      (nodeFlags.length ? `, node flags: ${nodeFlags.join(' ')}` : '') +
      (Object.keys(agentEnv).length ? `, env: ${Object.entries(agentEnv).map(([k, v]) => `${k}=${v}`).join(' ')}` : '') +
      (scrapeMetrics ? ', agent /metrics scraped every 10 s' : ''),
  );

  const services: Record<string, ServiceSpec> = {};
  for (let i = 1; i <= serviceCount; i++) {
    services[`web${i}`] = { environment: { PORT: String(await freePort()) }, healthcheck: { interval: healthInterval } };
  }
  const stack = TestStack.unique('idle', services);
  let agent: RunningAgent | undefined;
  let exporter: ReturnType<typeof spawnDetached> | undefined;
  let scrape: NodeJS.Timeout | undefined;
  let agentScrape: NodeJS.Timeout | undefined;
  let exporterLogFd: number | undefined;
  let idleNode: ChildProcess | undefined;
  try {
    await stack.up();
    await sleep(10_000); // containers settle before anything is measured

    if (withReference) {
      const port = await freePort();
      exporterLogFd = openSync(join(stack.dir, 'node-exporter.log'), 'a');
      exporter = spawnDetached([NODE_EXPORTER, `--web.listen-address=127.0.0.1:${port}`], exporterLogFd);
      const metricsUrl = `http://127.0.0.1:${port}/metrics`;
      // Scraped every 10 s like a Prometheus with scrape_interval 10s: the same
      // cadence as the agent's own sampling, so both do their work as often.
      const scrapeOnce = () => fetch(metricsUrl, { signal: AbortSignal.timeout(5000) }).then((r) => r.arrayBuffer()).catch(() => undefined);
      scrape = setInterval(() => void scrapeOnce(), 10_000);
      void scrapeOnce();
    }

    // The idle node: the agent's runtime, flags and environment, doing nothing.
    idleNode = spawn(runtime.node ?? process.execPath, [...nodeFlags, '-e', 'setInterval(() => {}, 1 << 30)'], {
      stdio: 'ignore',
      env: { ...(asUnit ? systemdBaseEnvironment() : process.env), ...agentEnv },
    });
    const api = withApi ? { api: await apiSection() } : {};
    agent = await startBenchAgent({ config: { stack: { project: stack.project, dir: stack.dir }, metrics: { interval: '10s' }, ...api }, nodeFlags, env: agentEnv, systemdEnvironment: asUnit, ...runtime });
    await agent.waitReady(60_000);
    if (scrapeMetrics) {
      const url = agent.url('/metrics');
      agentScrape = setInterval(() => void fetch(url, { signal: AbortSignal.timeout(5000) }).then((r) => r.arrayBuffer()).catch(() => undefined), 10_000);
    }
    const agentSampler = new ProcessSampler(agent.child.pid!, sampleMs);
    const exporterSampler = exporter ? new ProcessSampler(exporter.pid!, sampleMs) : undefined;
    const idleSampler = new ProcessSampler(idleNode.pid!, sampleMs);
    // What it took to start, from spawn to ready: all the CPU the process has used so far.
    const startup = { cpuSeconds: round(cpuSeconds(agent.child.pid!), 2), rssMb: round(memory(agent.child.pid!).rssKb / 1024, 1) };
    agentSampler.start();
    exporterSampler?.start();
    idleSampler.start();

    await sleep(warmup * 1000);
    agentSampler.restart();
    exporterSampler?.restart();
    idleSampler.restart();
    const engine0 = engineCpu();
    const t0 = performance.now();
    await sleep(measureSeconds * 1000);
    const engine1 = engineCpu();
    const wall = (performance.now() - t0) / 1000;
    agentSampler.stop();
    exporterSampler?.stop();
    idleSampler.stop();
    await killAndWait(idleNode);
    idleNode = undefined;
    if (agentScrape) clearInterval(agentScrape);

    // Proof that the agent did its work in the window: container samples in /metrics.
    const metricsText = await fetch(agent.url('/metrics')).then((r) => r.text());
    const sampledServices = (metricsText.match(/^deckhand_service_cpu_percent\{service="web\d+"\}/gm) ?? []).length;
    const health = await fetch(agent.url('/health')).then((r) => r.json() as Promise<{ status: string }>);
    if (agent.child.exitCode !== null) throw new Error(`agent exited during the run:\n${agent.output}`);

    await agent.stop();
    if (scrape) clearInterval(scrape);
    await killAndWait(exporter);
    exporter = undefined;

    let engineBaseline: ReturnType<typeof enginePercent> | undefined;
    if (withEngineBaseline) {
      console.log(`engine baseline: ${round(wall, 0)} s with the agent stopped (stack still up)...`);
      const b0 = engineCpu();
      const tb = performance.now();
      await sleep(wall * 1000);
      engineBaseline = enginePercent(b0, engineCpu(), (performance.now() - tb) / 1000);
    }
    const ids = await Promise.all(Object.keys(services).map((s) => stack.containerId(s)));
    // The engine's idle rate just before the bursts: other work on the machine drifts over minutes.
    const i0 = engineCpu();
    const ti = performance.now();
    await sleep(30_000);
    const idleNow = enginePercent(i0, engineCpu(), (performance.now() - ti) / 1000);
    const idleRate = (idleNow.dockerd + idleNow.containerd + idleNow.shims) / 100;
    const perCall = await engineCostPerRound(ids, stack.project, idleRate, 30);
    // The agent's calls: stats of every running container each metrics tick (10 s), a list each 5 s.
    const perCallPercent = round((perCall.statsOfAllContainers.msPerRound / 1000 / 10 + perCall.list.msPerRound / 1000 / 5) * 100, 3);

    const a = agentSampler.summary();
    const ref = exporterSampler?.summary();
    const idle = idleSampler.summary();
    const above = { avgMb: round(a.rssAvgMb - idle.rssAvgMb, 1), maxMb: round(a.rssMaxMb - idle.rssAvgMb, 1) };
    const engineWith = enginePercent(engine0, engine1, wall);
    const engineExtra = engineBaseline ? round(engineWith.dockerd - engineBaseline.dockerd, 3) : undefined;
    const engineExtraAll = engineBaseline
      ? round(engineWith.dockerd + engineWith.containerd + engineWith.shims - engineBaseline.dockerd - engineBaseline.containerd - engineBaseline.shims, 3)
      : undefined;

    console.log('');
    console.log(`agent (pid ${agent.child.pid})${withApi ? ", API on TLS" : ""}, ${a.samples} RSS samples over ${a.wallSeconds} s after warm-up; ${sampledServices}/${serviceCount} services sampled; /health ${health.status}`);
    console.log(`${'agent start-up (spawn to ready)'.padEnd(34)} ${String(startup.cpuSeconds).padStart(10)} s CPU, RSS ${startup.rssMb} MB when ready`);
    console.log(goalLine('agent RSS max', a.rssMaxMb, 'MB', { max: GOAL_RSS_MB }));
    console.log(goalLine('agent RSS average', a.rssAvgMb, 'MB', { max: GOAL_RSS_MB }));
    console.log(`${'  of which anonymous / file-backed'.padEnd(34)} ${String(a.anonAvgMb).padStart(10)} / ${a.fileAvgMb} MB (average)`);
    console.log(`${`idle node ${agentNode}, same flags`.padEnd(34)} ${String(idle.rssAvgMb).padStart(10)} MB RSS average (anonymous / file-backed ${idle.anonAvgMb} / ${idle.fileAvgMb} MB)`);
    console.log(goalLine('agent RSS max above idle node', above.maxMb, 'MB', { max: GOAL_ABOVE_IDLE_MB }));
    console.log(goalLine('agent RSS average above idle node', above.avgMb, 'MB', { max: GOAL_ABOVE_IDLE_MB }));
    console.log(goalLine('agent CPU, % of one core', a.cpuPercentOfCore, '%', { below: GOAL_CPU_PERCENT }));
    if (ref) {
      console.log(`node-exporter (reference, scraped every 10 s):`);
      console.log(`${'  RSS max / average'.padEnd(34)} ${String(ref.rssMaxMb).padStart(10)} / ${ref.rssAvgMb} MB`);
      console.log(`${'  CPU, % of one core'.padEnd(34)} ${String(ref.cpuPercentOfCore).padStart(10)} %`);
      console.log(`${'  ratio agent / node-exporter'.padEnd(34)} ${String(round(a.rssAvgMb / ref.rssAvgMb, 2)).padStart(10)} x RSS, ${round(a.cpuPercentOfCore / Math.max(ref.cpuPercentOfCore, 1e-9), 2)} x CPU`);
    }
    console.log(`Docker engine CPU, % of one core (window of ${round(wall, 0)} s):`);
    console.log(`${'  dockerd with agent'.padEnd(34)} ${String(engineWith.dockerd).padStart(10)} %   (containerd ${engineWith.containerd} %, shims ${engineWith.shims} %)`);
    if (engineBaseline) {
      console.log(`${'  dockerd without agent'.padEnd(34)} ${String(engineBaseline.dockerd).padStart(10)} %   (containerd ${engineBaseline.containerd} %, shims ${engineBaseline.shims} %)`);
      console.log(`${'  dockerd extra with agent'.padEnd(34)} ${String(engineExtra).padStart(10)} %   (engine processes together: ${engineExtraAll} %)`);
    }
    console.log(
      `${'  per call (bursts)'.padEnd(34)} stats of ${serviceCount} containers ${perCall.statsOfAllContainers.msPerRound} ms, list ${perCall.list.msPerRound} ms of engine CPU` +
        ` -> one stats round / 10 s + one list / 5 s = ${perCallPercent} % of a core`,
    );

    printResult('idle-cost', {
      machine,
      seconds,
      warmupSeconds: warmup,
      api: withApi,
      services: serviceCount,
      healthcheckInterval: healthInterval,
      agentNode,
      agentScript: runtime.script ?? 'dist/deckhand-agent.js',
      launchedAsUnit: asUnit,
      nodeFlags,
      env: agentEnv,
      agentMetricsScraped: scrapeMetrics,
      agent: a,
      agentStartup: startup,
      servicesSampled: sampledServices,
      referenceNodeExporter: ref ?? null,
      idleNode: idle,
      aboveIdleNode: above,
      ratio: ref ? { rss: round(a.rssAvgMb / ref.rssAvgMb, 2), cpu: round(a.cpuPercentOfCore / Math.max(ref.cpuPercentOfCore, 1e-9), 2) } : null,
      engine: { withAgent: engineWith, withoutAgent: engineBaseline ?? null, dockerdExtraPercent: engineExtra ?? null, engineExtraPercent: engineExtraAll ?? null, perCall, fromPerCallPercent: perCallPercent },
      goals: {
        rssMb: { goal: GOAL_RSS_MB, max: a.rssMaxMb, met: goalMet(a.rssMaxMb, { max: GOAL_RSS_MB }) },
        rssAboveIdleNodeMb: { goal: GOAL_ABOVE_IDLE_MB, max: above.maxMb, met: goalMet(above.maxMb, { max: GOAL_ABOVE_IDLE_MB }) },
        cpuPercent: { goal: GOAL_CPU_PERCENT, value: a.cpuPercentOfCore, met: goalMet(a.cpuPercentOfCore, { below: GOAL_CPU_PERCENT }) },
      },
    });
  } finally {
    if (scrape) clearInterval(scrape);
    if (agentScrape) clearInterval(agentScrape);
    await agent?.stop().catch(() => undefined);
    await killAndWait(exporter).catch(() => undefined);
    await killAndWait(idleNode).catch(() => undefined);
    if (exporterLogFd !== undefined) closeSync(exporterLogFd);
    await stack.down();
    removeDir(stack.dir);
    if (agent) removeDir(agent.dir);
  }
}

await main();
