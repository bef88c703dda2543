// Where the agent's resident memory goes, and which node/V8 flags or build
// changes move it (and at what CPU cost). A diagnostic companion of
// idle-cost.ts, for whoever sets the launcher's flags and the build options.
//
//   node --import tsx test/bench/agent-memory.ts [--seconds 60] [--warmup 20]
//        [--only NAME,NAME] [--no-deps] [--no-stack] [--node PATH] [--script PATH]
//
// 1. Floors: an idle `node` and, one process each, every runtime dependency
//    bundled alone the way scripts/build.mjs bundles the agent: RSS above the
//    idle node is what importing (and minimally using) that dependency costs.
// 2. Variants of the running agent (5 web containers, metrics.interval 10s),
//    each measured like idle-cost.ts over a shorter window: node/V8 flags,
//    glibc's arena count, the systemd unit's launch line, /metrics scraped
//    (prom-client is loaded on the first scrape), and an experimental build
//    whose health server runs on node:http instead of fastify (variant-build.ts).
// Each agent carries test/bench/mem-probe.mjs (except "baseline, no probe"),
// which reports the V8 heap from inside the process.
//
// Needs: `npm run build`, scripts/test-env.sh up. Takes ~35 minutes with defaults (--only picks variants).
// The malloc settings show their effect only after a few minutes (freed memory
// kept by glibc accumulates): compare them with --seconds 240 or more.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { stubUnused } from '../../scripts/bundle.mjs';
import { AGENT_BIN, freePort, removeDir, ROOT } from '../helpers/agent.js';
import { requireDocker, TestStack, type ServiceSpec } from '../helpers/stack.js';
import { nodeVersion, runtimeOptions, startBenchAgent, unitLaunch, type RunningAgent } from './agent-run.js';
import { buildVariant, type BuiltVariant, type VariantName } from './variant-build.js';
import { flagOption, machineInfo, mb, memory, numberOption, option, printMachine, printResult, ProcessSampler, round, sleep } from './lib.js';

const seconds = numberOption('seconds', 60);
const warmup = numberOption('warmup', 20);
const only = (option('only') ?? '').split(',').filter(Boolean);
const withDeps = !flagOption('no-deps');
const withStack = !flagOption('no-stack');
const PROBE = join(ROOT, 'test/bench/mem-probe.mjs');
const runtime = runtimeOptions(option);
const NODE = runtime.node ?? process.execPath;

// ------------------------------------------------------------ floors --

/** Node's own modules the agent loads at start (process.moduleLoadList of an idle agent, public names). */
const AGENT_BUILTINS = ['node:http', 'node:https', 'node:tls', 'node:crypto', 'node:net', 'node:child_process', 'node:zlib', 'node:dns', 'node:fs/promises', 'node:perf_hooks', 'node:stream', 'node:stream/promises', 'node:timers/promises', 'node:os', 'node:url', 'node:querystring', 'node:diagnostics_channel', 'node:async_hooks', 'node:worker_threads', 'node:assert'];

/** Each dependency imported and touched once, the way the agent uses it. */
const DEPENDENCIES: Record<string, string> = {
  'node (idle, nothing imported)': '',
  // What Node itself costs for the agent's work, before any dependency: the builtins it loads and a listening socket.
  'node builtins the agent loads, required': `for (const m of ${JSON.stringify(AGENT_BUILTINS)}) require(m); require('node:net').createServer().listen(0, '127.0.0.1');`,
  // Node 24: an ES import reads every export, http's lazy WebSocket among them, which loads undici (scripts/bundle.mjs).
  'node:http by ES import': "import * as http from 'node:http'; globalThis.keep = http;",
  'node:http by require': "globalThis.keep = require('node:http');",
  'fastify (no schema compilers, as agent/http)': "import fastify from 'fastify'; const none = () => () => { throw new Error('none'); }; const app = fastify({ logger: false, schemaController: { compilersFactory: { buildValidator: none, buildSerializer: none } } }); app.get('/', async () => 'ok'); await app.listen({ host: '127.0.0.1', port: 0 }); globalThis.keep = app;",
  'prom-client': "import { Registry, Gauge } from 'prom-client'; const r = new Registry(); new Gauge({ name: 'x', help: 'x', registers: [r] }).set(1); globalThis.keep = await r.metrics();",
  dockerode: "import Docker from 'dockerode'; globalThis.keep = new Docker({ socketPath: '/var/run/docker.sock' });",
  pino: "import { pino } from 'pino'; const log = pino({ level: 'info' }, { write() {} }); log.info('x'); globalThis.keep = log;",
  'zod (zod/mini, as agent/validation.ts)': "import * as z from 'zod/mini'; import en from 'zod/v4/locales/en.js'; z.config(en()); globalThis.keep = z.strictObject({ a: z.string(), b: z.prefault(z.number(), 1) }).parse({ a: 'x' });",
  'zod (classic API, for comparison)': "import { z } from 'zod'; globalThis.keep = z.strictObject({ a: z.string(), b: z.number().prefault(1) }).parse({ a: 'x' });",
  yaml: "import { parse } from 'yaml'; globalThis.keep = parse('a: 1\\nb: [x, y]');",
  commander: "import { Command } from 'commander'; globalThis.keep = new Command('x');",
  'better-sqlite3': "import Database from 'better-sqlite3'; const db = new Database(':memory:'); db.exec('CREATE TABLE t (a)'); globalThis.keep = db;",
  'node-cron': "import * as cron from 'node-cron'; globalThis.keep = cron;",
  ws: "import { WebSocketServer } from 'ws'; globalThis.keep = WebSocketServer;",
  pg: "import pg from 'pg'; globalThis.keep = pg;",
  'acme-client': "import * as acme from 'acme-client'; globalThis.keep = acme;",
  'the whole agent bundle, loaded (`version`)': '',
};

/** A directory that can run bundles importing better-sqlite3 (external, as in dist/). */
function bundleDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dhbench-bundles-'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  return dir;
}

/** RSS of a process `settleMs` after start (it keeps itself alive). */
async function rssOf(argv: string[], settleMs = 5000): Promise<{ rssMb: number; anonMb: number; fileMb: number } | { error: string }> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await sleep(settleMs);
  try {
    if (child.exitCode !== null) return { error: err.trim().split('\n').slice(-2).join(' ') || `exited ${child.exitCode}` };
    const m = memory(child.pid!);
    return { rssMb: round(m.rssKb / 1024, 1), anonMb: round(m.anonKb / 1024, 1), fileMb: round(m.fileKb / 1024, 1) };
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

async function floors(dir: string): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  let base = Number.NaN;
  for (const [name, code] of Object.entries(DEPENDENCIES)) {
    let argv: string[];
    if (name.startsWith('the whole agent')) {
      // The bundle evaluated (every module's top level runs) but no daemon: kept alive by a preloaded timer.
      const keepAlive = join(dir, 'keep-alive.mjs');
      writeFileSync(keepAlive, 'setInterval(() => {}, 1000);\n');
      argv = [NODE, '--import', pathToFileURL(keepAlive).href, runtime.script ?? AGENT_BIN, 'version'];
    } else {
      const file = join(dir, `dep-${rows.length}.mjs`);
      await build({
        stdin: { contents: `${code}\nsetInterval(() => {}, 1000);\n`, resolveDir: ROOT, loader: 'js' },
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        outfile: file,
        external: ['better-sqlite3'],
        plugins: [stubUnused],
        logLevel: 'error',
        banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
      });
      argv = [NODE, file];
    }
    const r = await rssOf(argv);
    if ('error' in r) {
      rows.push({ name, error: r.error });
      console.log(`  ${name.padEnd(44)} failed: ${r.error}`);
      continue;
    }
    if (Number.isNaN(base)) base = r.rssMb;
    const above = round(r.rssMb - base, 1);
    rows.push({ name, ...r, aboveIdleNodeMb: above });
    console.log(`  ${name.padEnd(44)} RSS ${String(r.rssMb).padStart(5)} MB (anon ${r.anonMb}, file ${r.fileMb})${rows.length > 1 ? `  +${above} MB` : ''}`);
  }
  return rows;
}

// ----------------------------------------------------------- variants --

interface Variant {
  name: string;
  flags?: string[];
  env?: Record<string, string>;
  noProbe?: boolean;
  /** Scrape the agent's /metrics every 10 s, as Prometheus would (loads prom-client). */
  scrape?: boolean;
  /** An experimental build instead of dist/ (see variant-build.ts). */
  build?: VariantName;
}

const NO_OPT = ['--no-opt', '--no-sparkplug'];

function variants(): Variant[] {
  const unit = unitLaunch();
  const all: Variant[] = [
    { name: 'baseline (no probe)', noProbe: true },
    { name: 'baseline' },
    { name: 'baseline + /metrics scraped every 10 s', scrape: true },
    { name: '--max-semi-space-size=1', flags: ['--max-semi-space-size=1'] },
    { name: 'MALLOC_ARENA_MAX=2', env: { MALLOC_ARENA_MAX: '2' } },
    { name: 'MALLOC_ARENA_MAX=1', env: { MALLOC_ARENA_MAX: '1' } },
    { name: 'MALLOC_TRIM_THRESHOLD_=131072', env: { MALLOC_TRIM_THRESHOLD_: '131072' } },
    { name: 'the unit before (semi-space 1 MB, MALLOC_ARENA_MAX=2)', flags: ['--max-semi-space-size=1'], env: { MALLOC_ARENA_MAX: '2' } },
    { name: 'as systemd unit', flags: unit.nodeFlags, env: unit.env },
    { name: '--lite-mode', flags: ['--lite-mode'] },
    { name: '--jitless', flags: ['--jitless'] },
    { name: '--optimize-for-size', flags: ['--optimize-for-size'] },
    { name: '--v8-pool-size=1', flags: ['--v8-pool-size=1'] },
    // Node 22+ runs V8's Maglev compiler by default; Node 20 does not.
    { name: '--no-maglev', flags: ['--no-maglev'] },
    { name: 'as systemd unit + --lite-mode', flags: [...unit.nodeFlags, '--lite-mode'], env: unit.env },
    // --lite-mode and --jitless imply no WebAssembly, which Node's own fetch
    // (undici's HTTP parser) needs: these keep it and drop the optimising tiers.
    { name: '--no-opt', flags: ['--no-opt'] },
    { name: '--no-opt --no-sparkplug', flags: NO_OPT },
    { name: '--no-opt --no-sparkplug --no-maglev', flags: [...NO_OPT, '--no-maglev'] },
    { name: 'as systemd unit + --no-opt --no-sparkplug', flags: [...unit.nodeFlags, ...NO_OPT], env: unit.env },
    // On Node 24 (the runtime a release ships), the tiers one at a time beside the unit's launch.
    { name: 'as systemd unit + --no-opt', flags: [...unit.nodeFlags, '--no-opt'], env: unit.env },
    { name: 'as systemd unit + --no-maglev', flags: [...unit.nodeFlags, '--no-maglev'], env: unit.env },
    { name: 'as systemd unit + --single-threaded', flags: [...unit.nodeFlags, '--single-threaded'], env: unit.env },
    { name: 'as systemd unit + --v8-pool-size=1', flags: [...unit.nodeFlags, '--v8-pool-size=1'], env: unit.env },
    // V8's own memory-for-speed trades: a smaller heap growth, bytecode and baseline code flushed sooner.
    { name: 'as systemd unit + --optimize-for-size', flags: [...unit.nodeFlags, '--optimize-for-size'], env: unit.env },
    { name: 'as systemd unit + --heap-growing-percent=10', flags: [...unit.nodeFlags, '--heap-growing-percent=10'], env: unit.env },
    { name: 'as systemd unit + --bytecode-old-age=2 --flush-baseline-code', flags: [...unit.nodeFlags, '--bytecode-old-age=2', '--flush-baseline-code'], env: unit.env },
    { name: 'health server on node:http (build)', build: 'node-http' },
    { name: 'node:http build + /metrics scraped', build: 'node-http', scrape: true },
    { name: 'node:http build + unit', build: 'node-http', flags: unit.nodeFlags, env: unit.env },
    { name: 'node:http build + unit + --lite-mode', build: 'node-http', flags: [...unit.nodeFlags, '--lite-mode'], env: unit.env },
    { name: 'node:http build + unit + --no-opt --no-sparkplug', build: 'node-http', flags: [...unit.nodeFlags, ...NO_OPT], env: unit.env },
  ];
  // Each --only entry picks the variant of exactly that name, or else every variant whose name contains it.
  const picks = (o: string) => (all.some((v) => v.name === o) ? (v: Variant) => v.name === o : (v: Variant) => v.name.includes(o));
  return only.length ? all.filter((v) => only.some((o) => picks(o)(v))) : all;
}

interface ProbeLine {
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  mallocedMemory: number;
  spaces: Record<string, number>;
}

function lastProbe(file: string): ProbeLine | undefined {
  if (!existsSync(file)) return undefined;
  const lines = readFileSync(file, 'utf8').trim().split('\n').filter(Boolean);
  return lines.length ? (JSON.parse(lines.at(-1)!) as ProbeLine) : undefined;
}

async function measureVariant(v: Variant, config: Record<string, unknown>, dir: string, index: number, scripts: Map<VariantName, string>): Promise<Record<string, unknown>> {
  const probeOut = join(dir, `probe-${index}.jsonl`);
  const flags = [...(v.flags ?? []), ...(v.noProbe ? [] : ['--import', pathToFileURL(PROBE).href])];
  let agent: RunningAgent | undefined;
  let scrape: NodeJS.Timeout | undefined;
  try {
    const script = v.build ? scripts.get(v.build) : undefined;
    agent = await startBenchAgent({
      config,
      nodeFlags: flags,
      env: { ...v.env, DECKHAND_BENCH_PROBE_OUT: probeOut },
      ...runtime,
      ...(script ? { script } : {}),
    });
    await agent.waitReady(60_000);
    const metricsUrl = agent.url('/metrics');
    if (v.scrape) scrape = setInterval(() => void fetch(metricsUrl, { signal: AbortSignal.timeout(5000) }).then((r) => r.arrayBuffer()).catch(() => undefined), 10_000);
    const sampler = new ProcessSampler(agent.child.pid!, 5000);
    sampler.start();
    await sleep(warmup * 1000);
    sampler.restart();
    await sleep(seconds * 1000);
    sampler.stop();
    if (agent.child.exitCode !== null) throw new Error(`agent exited:\n${agent.output}`);
    const s = sampler.summary();
    const p = lastProbe(probeOut);
    const heap = p
      ? {
          heapTotalMb: mb(p.heapTotal),
          heapUsedMb: mb(p.heapUsed),
          largeObjectMb: mb(p.spaces.large_object_space ?? 0),
          codeMb: mb(p.spaces.code_space ?? 0),
          externalMb: mb(p.external),
          mallocedByV8Mb: mb(p.mallocedMemory),
        }
      : undefined;
    console.log(
      `  ${v.name.padEnd(38)} RSS avg ${String(s.rssAvgMb).padStart(5)} max ${String(s.rssMaxMb).padStart(5)} (anon ${s.anonAvgMb}, file ${s.fileAvgMb}) MB, CPU ${s.cpuPercentOfCore}%` +
        (heap ? `; heap used ${heap.heapUsedMb} of ${heap.heapTotalMb}, large objects ${heap.largeObjectMb}, code ${heap.codeMb} MB` : ''),
    );
    return { name: v.name, flags: v.flags ?? [], env: v.env ?? {}, scraped: v.scrape ?? false, build: v.build ?? 'dist', ...s, heap: heap ?? null };
  } catch (err) {
    console.log(`  ${v.name.padEnd(38)} failed: ${(err as Error).message.split('\n')[0]}`);
    return { name: v.name, error: (err as Error).message.slice(0, 500) };
  } finally {
    if (scrape) clearInterval(scrape);
    await agent?.stop().catch(() => undefined);
    if (agent) removeDir(agent.dir);
  }
}

async function main(): Promise<void> {
  if (withStack) requireDocker();
  const machine = machineInfo(withStack);
  printMachine(machine);
  const agentNode = nodeVersion(NODE);
  if (runtime.node || runtime.script) console.log(`agent on node ${agentNode}${runtime.script ? `, script ${runtime.script}` : ''}`);
  const dir = bundleDir();
  let stack: TestStack | undefined;
  const builds: BuiltVariant[] = [];
  const scripts = new Map<VariantName, string>();
  try {
    let floorRows: Record<string, unknown>[] = [];
    if (withDeps) {
      console.log('floors: RSS 5 s after start, each dependency bundled alone (as scripts/build.mjs bundles)');
      floorRows = await floors(dir);
    }

    let config: Record<string, unknown> = { metrics: { interval: '10s' } };
    if (withStack) {
      const services: Record<string, ServiceSpec> = {};
      for (let i = 1; i <= 5; i++) services[`web${i}`] = { environment: { PORT: String(await freePort()) }, healthcheck: { interval: '30s' } };
      stack = TestStack.unique('mem', services);
      await stack.up();
      config = { ...config, stack: { project: stack.project, dir: stack.dir } };
    }
    console.log(`variants: agent${withStack ? ' with 5 web containers' : ' (metrics only)'}, metrics.interval 10s, ${warmup} s warm-up then ${seconds} s measured`);
    const rows: Record<string, unknown>[] = [];
    const list = variants();
    for (const name of new Set(list.flatMap((v) => (v.build ? [v.build] : [])))) {
      const built = await buildVariant(name, runtime.script);
      builds.push(built);
      scripts.set(name, built.script);
    }
    for (const [i, v] of list.entries()) rows.push(await measureVariant(v, config, dir, i, scripts));

    printResult('agent-memory', { machine, agentNode, agentScript: runtime.script ?? 'dist/deckhand-agent.js', seconds, warmupSeconds: warmup, stack: withStack, floors: floorRows, variants: rows });
  } finally {
    await stack?.down();
    if (stack) removeDir(stack.dir);
    rmSync(dir, { recursive: true, force: true });
    for (const b of builds) b.cleanup();
  }
}

await main();
