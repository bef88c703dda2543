// Starts the built agent for a benchmark. Without extra node flags this is
// test/helpers' startAgent, exactly as the tests run it; with flags (V8
// experiments such as --max-semi-space-size or --lite-mode, several of which
// NODE_OPTIONS refuses) the same config layout is written and node is
// spawned with the flags before the script.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { AGENT_BIN, freePort, ROOT, startAgent, tempDir, waitFor } from '../helpers/agent.js';

export interface RunningAgent {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly dataDir: string;
  readonly healthPort: number;
  readonly output: string;
  url(path: string): string;
  waitReady(timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<unknown>;
}

export interface BenchAgentOptions {
  config: Record<string, unknown>;
  /** Node/V8 flags put before the script, e.g. ['--max-semi-space-size=1']. */
  nodeFlags?: string[];
  env?: Record<string, string>;
  /** Another build of the agent to run instead of dist/deckhand-agent.js (experiments only). */
  script?: string;
  /** Another node runtime than the one running the benchmark (e.g. the one a release ships). */
  node?: string;
  /**
   * Start with the environment systemd gives a service (PATH, the unit's
   * Environment= lines) instead of this shell's: variables a login shell
   * carries change what node loads (NODE_EXTRA_CA_CERTS alone adds 1.7 MB).
   */
  systemdEnvironment?: boolean;
}

/** What systemd passes a service besides its Environment= lines; DOCKER_HOST points the agent at the test engine when one is set. */
export function systemdBaseEnvironment(): Record<string, string> {
  const env: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
  if (process.env.DOCKER_HOST) env.DOCKER_HOST = process.env.DOCKER_HOST;
  return env;
}

/** Log level of a production agent: the helper's default (debug) would cost CPU that a server does not spend. */
const BENCH_ENV = { DECKHAND_LOG_LEVEL: 'info' };

export async function startBenchAgent(opts: BenchAgentOptions): Promise<RunningAgent> {
  const env = { ...BENCH_ENV, ...opts.env };
  if (!opts.nodeFlags?.length && !opts.script && !opts.node && !opts.systemdEnvironment) return startAgent({ config: opts.config, env });
  const base = opts.systemdEnvironment ? systemdBaseEnvironment() : { ...process.env };
  return FlaggedAgent.start(opts.config, opts.nodeFlags ?? [], { ...base, ...env }, opts.script ?? AGENT_BIN, opts.node ?? process.execPath);
}

class FlaggedAgent implements RunningAgent {
  private out = '';
  private readonly exited: Promise<void>;

  private constructor(
    readonly child: ChildProcess,
    readonly dir: string,
    readonly dataDir: string,
    readonly healthPort: number,
  ) {
    child.stdout!.on('data', (c: Buffer) => (this.out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (this.out += c.toString()));
    this.exited = new Promise((r) => child.once('exit', () => r()));
  }

  /** `env` is the agent's whole environment. */
  static async start(configSections: Record<string, unknown>, nodeFlags: string[], env: NodeJS.ProcessEnv, script: string, node: string): Promise<FlaggedAgent> {
    const dir = tempDir('bench-agent');
    const port = await freePort();
    const dataDir = join(dir, 'data');
    const config = { host: { name: 'test-host' }, dataDir, health: { listen: `127.0.0.1:${port}` }, ...configSections };
    const file = join(dir, 'agent.yaml');
    writeFileSync(file, stringify(config));
    const child = spawn(node, [...nodeFlags, script, 'run', '--config', file], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new FlaggedAgent(child, dir, dataDir, port);
  }

  get output(): string {
    return this.out;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.healthPort}${path}`;
  }

  async waitReady(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      async () => {
        if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`agent exited before it was ready:\n${this.out}`);
        return (await fetch(this.url('/readyz'), { signal: AbortSignal.timeout(2000) }).catch(() => undefined))?.status === 200;
      },
      timeoutMs,
      () => `agent not ready:\n${this.out}`,
    );
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }
}

export { unitLaunch } from '../helpers/agent.js';

/**
 * --node PATH and --script PATH: run the agent on another node runtime and/or
 * from another build. The script's directory must resolve better-sqlite3
 * built for that runtime's ABI (see test/bench/README.md).
 */
export function runtimeOptions(option: (name: string) => string | undefined): { node?: string; script?: string } {
  const node = option('node') || undefined;
  const script = option('script') || undefined;
  return { ...(node ? { node } : {}), ...(script ? { script } : {}) };
}

/** `node --version` of a runtime. */
export function nodeVersion(node = process.execPath): string {
  return execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
}

/** Splits a --node-flags value ("--a=1 --b") into argv words. */
export function splitFlags(value: string | undefined): string[] {
  return (value ?? '').split(/\s+/).filter(Boolean);
}
