// Runs the built agent (dist/) as a real process, as systemd would, against
// a config written to a temp directory; reads its endpoints and its database.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '../..');
export const AGENT_BIN = join(ROOT, 'dist/deckhand-agent.js');

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => res(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `dhtest-${prefix}-`));
}

export interface AgentOptions {
  /** Sections of agent.yaml; dataDir and health.listen are filled in unless given. */
  config?: Record<string, unknown>;
  env?: Record<string, string>;
  dir?: string;
}

export class AgentProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private out = '';

  constructor(
    readonly dir: string,
    readonly configFile: string,
    readonly dataDir: string,
    readonly healthPort: number,
    env: Record<string, string> = {},
  ) {
    this.child = spawn(process.execPath, [AGENT_BIN, 'run', '--config', configFile], {
      env: { ...process.env, DECKHAND_LOG_LEVEL: 'debug', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (c: Buffer) => (this.out += c.toString()));
    this.child.stderr!.on('data', (c: Buffer) => (this.out += c.toString()));
    this.exited = new Promise((res) => this.child.on('exit', (code, signal) => res({ code, signal })));
  }

  get output(): string {
    return this.out;
  }

  /** JSON log lines the agent printed. */
  logLines(): Record<string, unknown>[] {
    return this.out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.healthPort}${path}`;
  }

  async get(path: string, method = 'GET'): Promise<{ status: number; headers: Headers; text: string; json: () => any }> {
    const res = await fetch(this.url(path), { method, signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
  }

  async waitReady(timeoutMs = 30_000): Promise<void> {
    await waitFor(async () => (await this.get('/readyz').catch(() => undefined))?.status === 200, timeoutMs, () => `agent not ready:\n${this.out}`);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const t0 = Date.now();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const r = await this.exited;
    return { ...r, ms: Date.now() - t0 };
  }
}

export async function startAgent(opts: AgentOptions = {}): Promise<AgentProcess> {
  const dir = opts.dir ?? tempDir('agent');
  const port = await freePort();
  const config: Record<string, unknown> = {
    host: { name: 'test-host' },
    dataDir: join(dir, 'data'),
    health: { listen: `127.0.0.1:${port}` },
    metrics: { interval: '1s' },
    ...opts.config,
  };
  const file = join(dir, 'agent.yaml');
  writeFileSync(file, stringify(config));
  const healthPort = Number(String((config.health as { listen: string }).listen).split(':').pop());
  return new AgentProcess(dir, file, String(config.dataDir), healthPort, opts.env);
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, describe: () => string = () => 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${describe()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Node flags and environment of the systemd unit (ExecStart=, Environment=). */
export function unitEnvironment(): Record<string, string> {
  const text = readFileSync(join(ROOT, 'systemd/deckhand-agent.service'), 'utf8');
  const exec = /^ExecStart=(.*)$/m.exec(text)?.[1]?.trim().split(/\s+/) ?? [];
  const script = exec.findIndex((w) => w.endsWith('deckhand-agent.js'));
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^Environment=(\S+?)=(.*)$/gm)) if (m[1] !== 'DECKHAND_CONFIG') env[m[1]!] = m[2]!.trim();
  if (script > 1) env.NODE_OPTIONS = exec.slice(1, script).join(' ');
  return env;
}
