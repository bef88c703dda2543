// Small tools the benchmarks share: command-line options, /proc readings of
// a process's memory and CPU, percentiles, the machine's description, and
// the one JSON line each benchmark ends with.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { removeDir, waitFor } from '../helpers/agent.js';
import { connect, startApiAgent, type ApiAgent, type RpcClient } from '../helpers/api.js';
import type { TestStack } from '../helpers/stack.js';

/** `--name value`, `--name=value` (needed when the value starts with --) and `--flag`. */
export function option(name: string): string | undefined {
  const argv = process.argv.slice(2);
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  if (eq !== undefined) return eq.slice(name.length + 3);
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const next = argv[i + 1];
  return next === undefined || next.startsWith('--') ? '' : next;
}

export function numberOption(name: string, fallback: number): number {
  const v = option(name);
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} wants a positive number, got ${JSON.stringify(v)}`);
  return n;
}

export function flagOption(name: string): boolean {
  return option(name) !== undefined;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Clock ticks per second, the unit of utime/stime in /proc/PID/stat. */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process, in seconds (threads included; children not). */
export function cpuSeconds(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // comm may hold spaces and parentheses: fields start after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 and 15 of proc(5)
}

export interface MemReading {
  rssKb: number;
  anonKb: number;
  fileKb: number;
}

/** VmRSS and its anonymous / file-backed parts from /proc/PID/status. */
export function memory(pid: number): MemReading {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { rssKb: kb('VmRSS'), anonKb: kb('RssAnon'), fileKb: kb('RssFile') };
}

/** PIDs whose command name (comm) is exactly `comm` or starts with `comm` when `prefix`. */
export function pidsByName(comm: string, prefix = false): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const name = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      if (prefix ? name.startsWith(comm) : name === comm) out.push(Number(entry));
    } catch {
      /* exited while we looked */
    }
  }
  return out;
}

/** CPU seconds of a set of processes found by name; one that is gone counts 0. */
export function cpuSecondsByName(comm: string, prefix = false): Map<number, number> {
  const m = new Map<number, number>();
  for (const pid of pidsByName(comm, prefix)) {
    try {
      m.set(pid, cpuSeconds(pid));
    } catch {
      /* gone */
    }
  }
  return m;
}

/** CPU used between two readings of cpuSecondsByName, counting only processes present in both. */
export function cpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, t] of after) {
    const t0 = before.get(pid);
    if (t0 !== undefined) sum += t - t0;
  }
  return sum;
}

/** RSS every `everyMs`, and the process's CPU time between start() and stop(). */
export class ProcessSampler {
  readonly rssKb: { t: number; kb: number; anonKb: number; fileKb: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private cpu0 = 0;
  private t0 = 0;
  private cpu1 = 0;
  private t1 = 0;

  constructor(
    readonly pid: number,
    readonly everyMs = 5000,
  ) {}

  start(): void {
    this.t0 = performance.now();
    this.cpu0 = cpuSeconds(this.pid);
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
  }

  /** Marks the end of warm-up: CPU is counted from here, RSS samples before it are dropped. */
  restart(): void {
    this.rssKb.length = 0;
    this.t0 = performance.now();
    this.cpu0 = cpuSeconds(this.pid);
    this.sample();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.sample();
    this.t1 = performance.now();
    this.cpu1 = cpuSeconds(this.pid);
  }

  summary(): { samples: number; rssMaxMb: number; rssAvgMb: number; rssLastMb: number; anonAvgMb: number; fileAvgMb: number; cpuSeconds: number; wallSeconds: number; cpuPercentOfCore: number } {
    const kb = this.rssKb.map((s) => s.kb);
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const wall = (this.t1 - this.t0) / 1000;
    const cpu = this.cpu1 - this.cpu0;
    return {
      samples: kb.length,
      rssMaxMb: mb(Math.max(...kb) * 1024),
      rssAvgMb: mb(avg(kb) * 1024),
      rssLastMb: mb((kb.at(-1) ?? 0) * 1024),
      anonAvgMb: mb(avg(this.rssKb.map((s) => s.anonKb)) * 1024),
      fileAvgMb: mb(avg(this.rssKb.map((s) => s.fileKb)) * 1024),
      cpuSeconds: round(cpu, 3),
      wallSeconds: round(wall, 1),
      cpuPercentOfCore: round((cpu / wall) * 100, 3),
    };
  }

  private sample(): void {
    try {
      const m = memory(this.pid);
      this.rssKb.push({ t: performance.now(), kb: m.rssKb, anonKb: m.anonKb, fileKb: m.fileKb });
    } catch {
      /* the process is gone; stop() will say so through its CPU reading */
    }
  }
}

/** CPU seconds of every process on the machine, by PID, with its name. */
export function allProcessesCpu(): Map<number, { comm: string; cpu: number }> {
  const m = new Map<number, { comm: string; cpu: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
      m.set(Number(entry), { comm, cpu: cpuSeconds(Number(entry)) });
    } catch {
      /* gone */
    }
  }
  return m;
}

/** The processes that used the most CPU between two readings, as "% of one core" over `wallSec`, summed by name. */
export function topCpu(before: Map<number, { comm: string; cpu: number }>, after: Map<number, { comm: string; cpu: number }>, wallSec: number, count = 6): { comm: string; percentOfCore: number }[] {
  const byName = new Map<string, number>();
  for (const [pid, a] of after) {
    const b = before.get(pid);
    const used = a.cpu - (b && b.comm === a.comm ? b.cpu : 0);
    if (used > 0) byName.set(a.comm, (byName.get(a.comm) ?? 0) + used);
  }
  return [...byName.entries()]
    .sort((x, y) => y[1] - x[1])
    .slice(0, count)
    .map(([comm, used]) => ({ comm, percentOfCore: round((used / wallSec) * 100, 1) }));
}

/** The whole machine's CPU counters from /proc/stat (all cores), in clock ticks. */
export function machineCpu(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total };
}

/** Busy share of the machine between two readings, in "% of one core" (so 2 cores = 200 %). */
export function machineBusyPercentOfCore(a: { busy: number; total: number }, b: { busy: number; total: number }, cores = availableParallelism()): number {
  const total = b.total - a.total;
  return total > 0 ? round(((b.busy - a.busy) / total) * 100 * cores, 1) : 0;
}

/** MB as 10^6 bytes would mislead next to `free -m`; these are MiB, printed as MB like ps/top do. */
export function mb(bytes: number): number {
  return round(bytes / (1024 * 1024), 1);
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Nearest-rank percentile of an unsorted list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank]!;
}

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  docker?: string;
}

export function machineInfo(withDocker = false): MachineInfo {
  const info: MachineInfo = {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: round(totalmem() / 1024 ** 3, 1),
    kernel: release(),
    node: process.version,
  };
  if (withDocker) {
    try {
      info.docker = execFileSync('docker', ['version', '--format', '{{.Server.Version}}'], { encoding: 'utf8', timeout: 10_000 }).trim();
    } catch {
      info.docker = 'unreachable';
    }
  }
  return info;
}

export function printMachine(m: MachineInfo): void {
  console.log(`machine: ${m.nproc} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}${m.docker ? `, Docker ${m.docker}` : ''}`);
}

/** A figure beside its goal, as one readable line. */
export function goalLine(label: string, value: number, unit: string, goal: { max?: number; below?: number; min?: number }): string {
  const ok = goal.max !== undefined ? value <= goal.max : goal.below !== undefined ? value < goal.below : goal.min !== undefined ? value >= goal.min : true;
  const want = goal.max !== undefined ? `<= ${goal.max}` : goal.below !== undefined ? `< ${goal.below}` : `>= ${goal.min}`;
  return `${label.padEnd(34)} ${String(value).padStart(10)} ${unit.padEnd(10)} goal ${want} ${unit}  ${ok ? 'MET' : 'MISSED'}`;
}

export function goalMet(value: number, goal: { max?: number; below?: number; min?: number }): boolean {
  return goal.max !== undefined ? value <= goal.max : goal.below !== undefined ? value < goal.below : goal.min !== undefined ? value >= goal.min : true;
}

/** The final machine-readable line every benchmark prints. */
export function printResult(bench: string, result: Record<string, unknown>): void {
  console.log(JSON.stringify({ bench, ...result }));
}

/** A long-running helper process we started; stopped by its own PID only. */
export function spawnDetached(argv: string[], logFd: number | 'ignore' = 'ignore'): ChildProcess {
  const [file, ...args] = argv;
  if (!file) throw new Error('empty argv');
  const child = spawn(file, args, { detached: true, stdio: ['ignore', logFd, logFd] });
  child.unref();
  return child;
}

export async function killAndWait(child: ChildProcess | undefined, timeoutMs = 5000): Promise<void> {
  if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(t);
}

/**
 * What a benchmark must undo (stacks, agents, temp dirs), run once in reverse
 * order by `cleanup()`, also on Ctrl-C or SIGTERM.
 */
export function cleanupRegistry(): { cleanups: (() => Promise<void> | void)[]; cleanup(): Promise<void> } {
  const cleanups: (() => Promise<void> | void)[] = [];
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
    })();
    return cleaning;
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => void cleanup().then(() => process.exit(130)));
  }
  return { cleanups, cleanup };
}

export interface Arrival {
  at: number;
  stream: number;
  event: any;
}

/** Stream notifications with the time this process read each one. */
export function timedStreams(c: RpcClient): { arrivals: Arrival[]; waitEnd(stream: number, timeoutMs: number): Promise<Arrival> } {
  const arrivals: Arrival[] = [];
  const waiters: (() => void)[] = [];
  c.ws.on('message', (data) => {
    const at = performance.now();
    const msg = JSON.parse(String(data));
    if (msg.method !== 'stream') return;
    arrivals.push({ at, stream: msg.params.stream, event: msg.params.event });
    for (const w of waiters.splice(0)) w();
  });
  const waitEnd = (stream: number, timeoutMs: number) =>
    new Promise<Arrival>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`stream ${stream}: no end event in ${timeoutMs} ms`)), timeoutMs);
      const look = () => {
        const end = arrivals.find((a) => a.stream === stream && a.event.type === 'end');
        if (end) {
          clearTimeout(timer);
          resolve(end);
        } else waiters.push(look);
      };
      look();
    });
  return { arrivals, waitEnd };
}

/** Removes the keep tags a benchmark's deploys left; returns how many there were. */
export async function removeKeepTags(stack: TestStack): Promise<number> {
  const out = await stack.docker('images', '--format', '{{.Repository}}:{{.Tag}}', '--filter', `reference=deckhand-keep/${stack.project}-*`);
  const tags = out.split('\n').map((t) => t.trim()).filter(Boolean);
  for (const t of tags) await stack.docker('image', 'rm', '--no-prune', t).catch(() => undefined);
  return tags.length;
}

/**
 * A deploy benchmark's agent: supervising `stack` with these deploy settings
 * (log level info, as in production), once every one of `services` is
 * healthy, with an operate connection and its stream reader. Its teardown
 * goes on `cleanups`.
 */
export async function startDeployBenchAgent(opts: {
  stack: TestStack;
  services: readonly string[];
  deploy: Record<string, unknown>;
  env?: Record<string, string>;
  cleanups: (() => Promise<void> | void)[];
}): Promise<{ agent: ApiAgent; client: RpcClient; streams: ReturnType<typeof timedStreams>; allHealthy: () => Promise<boolean> }> {
  const { stack, services, cleanups } = opts;
  const agent = await startApiAgent({
    config: { stack: { project: stack.project, dir: stack.dir, deploy: opts.deploy }, metrics: { interval: '10s' } },
    env: { DECKHAND_LOG_LEVEL: 'info', ...opts.env },
  });
  cleanups.push(() => removeDir(agent.agent.dir));
  cleanups.push(async () => void (await agent.agent.stop()));
  const allHealthy = async () => {
    const checks = (await agent.agent.get('/health')).json().checks;
    return services.every((s) => checks[`service:${s}`]?.[0]?.observedValue === 'healthy');
  };
  await waitFor(allHealthy, 60_000, () => `services not all healthy: ${services.join(', ')}`);
  const client = await connect(agent.url, agent.token('bench', 'operate'));
  cleanups.push(() => client.close());
  return { agent, client, streams: timedStreams(client), allHealthy };
}
