// Runs the built agent (dist/) as a real process, as systemd would: as the
// system user deckhand in group docker (setpriv, like the unit's User=), with
// the unit's umask, against a config written to a temp directory; reads its
// endpoints and its database.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { agentComposeSetting } from './compose.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const AGENT_BIN = join(ROOT, 'dist/deckhand-agent.js');

/** Ports handed out by this process: never the same one twice. */
const givenPorts = new Set<number>();

/**
 * A free loopback port below the kernel's ephemeral range (32768-60999): a
 * port the kernel picks for `listen(0)` is an ephemeral one, which an
 * outgoing connection (the agent's to Docker, PostgreSQL, a test's own) can
 * take as its source port before the agent listens on it (EADDRINUSE).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (givenPorts.has(port)) continue;
    const ok = await new Promise<boolean>((res) => {
      const srv = createServer();
      srv.once('error', () => res(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => res(true)));
    });
    if (ok) {
      givenPorts.add(port);
      return port;
    }
  }
  throw new Error('no free loopback port found between 20000 and 32000');
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `dhtest-${prefix}-`));
}

/** The system user the unit runs the agent as (scripts/test-env.sh creates it, in group docker). */
export const AGENT_USER = 'deckhand';
/** A system user that is not in group docker. */
export const AGENT_USER_NODOCKER = 'deckhand-nodocker';

export interface AgentOptions {
  /** Sections of agent.yaml; dataDir, health.listen and stack.compose are filled in unless given. */
  config?: Record<string, unknown>;
  env?: Record<string, string>;
  dir?: string;
  /** Who the agent runs as: AGENT_USER unless given; "root" runs it as the test itself. */
  user?: string;
  /** Another build of the agent to run instead of dist/deckhand-agent.js. */
  agentBin?: string;
}

export interface SystemUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** A user's passwd entry (getent, so it is what setpriv and systemd see). */
export function systemUser(name: string): SystemUser {
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`no system user ${name}: run scripts/test-env.sh up`);
  }
  const [, , uid, gid, , home] = line.split(':');
  return { name, uid: Number(uid), gid: Number(gid), home: home ?? '/' };
}

/**
 * argv that runs COMMAND as USER with the user's groups from /etc/group
 * (docker among them), as systemd's User= does; node's spawn `uid` option
 * would drop the supplementary groups.
 */
export function asUserArgv(user: string, command: readonly string[]): string[] {
  return user === 'root' ? [...command] : ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', ...command];
}

/** The environment systemd gives a User= service: the user's HOME, USER, LOGNAME. */
export function userEnv(user: string): Record<string, string> {
  if (user === 'root') return {};
  const u = systemUser(user);
  return { HOME: u.home, USER: u.name, LOGNAME: u.name };
}

/** Spawns with the unit's UMask=0027, so files the agent makes get the modes they get on a server. */
function spawnWithUnitUmask(argv: readonly string[], env: NodeJS.ProcessEnv): ChildProcess {
  const before = process.umask(0o027);
  try {
    return spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  } finally {
    process.umask(before);
  }
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
    readonly user = 'root',
    agentBin = AGENT_BIN,
  ) {
    const { [UNIT_NODE_FLAGS]: flags, ...childEnv } = env;
    const nodeFlags = flags ? flags.split(' ').filter(Boolean) : [];
    this.child = spawnWithUnitUmask(asUserArgv(user, [process.execPath, ...nodeFlags, agentBin, 'run', '--config', configFile]), {
      ...process.env,
      ...userEnv(user),
      DECKHAND_LOG_LEVEL: 'debug',
      ...childEnv,
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
  const stack = config.stack as Record<string, unknown> | undefined;
  // The compose CLI of this run, explicitly: `auto` would pick v2 under a v1 run.
  if (stack && stack.compose === undefined) config.stack = { ...stack, compose: agentComposeSetting() };
  const file = join(dir, 'agent.yaml');
  writeFileSync(file, stringify(config));
  const user = opts.user ?? AGENT_USER;
  if (user !== 'root') {
    const u = systemUser(user);
    installConfigDir(dir, u);
    installDataDir(String(config.dataDir), u);
    if (typeof stack?.dir === 'string') shareWithGroup(stack.dir, u.gid);
  }
  const healthPort = Number(String((config.health as { listen: string }).listen).split(':').pop());
  return new AgentProcess(dir, file, String(config.dataDir), healthPort, opts.env, user, opts.agentBin);
}

// Ownership as an installer sets it up for the unit (ConfigurationDirectory=,
// StateDirectory=): the config readable by the agent's group, not writable;
// the data dir the agent's own. The temp dirs start as root's 0700.

/** The config dir root:GROUP 0750; its files (agent.yaml, TLS key and cert) root:GROUP 0640. */
function installConfigDir(dir: string, u: SystemUser): void {
  chownSync(dir, 0, u.gid);
  chmodSync(dir, 0o750);
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (!lstatSync(path).isFile()) continue;
    chownSync(path, 0, u.gid);
    chmodSync(path, 0o640);
  }
}

/** dataDir owned by the agent, 0750, with whatever a root process (a test, `token create`) left in it. */
function installDataDir(dataDir: string, u: SystemUser): void {
  mkdirSync(dataDir, { recursive: true });
  chownTree(dataDir, u.uid, u.gid);
  chmodSync(dataDir, 0o750);
}

function chownTree(path: string, uid: number, gid: number): void {
  // lchown: a link is owned as a link (a dangling one, such as a
  // certificate's stable path before its first issue, has no target to own).
  lchownSync(path, uid, gid);
  if (!lstatSync(path).isDirectory()) return;
  for (const name of readdirSync(path)) chownTree(join(path, name), uid, gid);
}

/**
 * A directory the agent works in but does not own (the stack's checkout),
 * shared the way an installer would: group GID, group-writable, set-gid
 * directories so what is made there later stays in the group; owner and
 * "other" bits untouched, so never world-writable.
 */
export function shareWithGroup(path: string, gid: number): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink() || st.isSocket()) return;
  chownSync(path, st.uid, gid);
  chmodSync(path, ((st.mode & 0o7777) | 0o060 | (st.isDirectory() ? 0o2010 : 0)) & ~0o002);
  if (st.isDirectory()) for (const name of readdirSync(path)) shareWithGroup(join(path, name), gid);
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

/**
 * The key of an agent's test environment that carries node flags for its
 * command line, not its environment: NODE_OPTIONS refuses most V8 flags
 * (the unit's --max-opt among them).
 */
export const UNIT_NODE_FLAGS = 'DECKHAND_TEST_NODE_FLAGS';

/**
 * The node flags and environment the systemd unit starts the agent with
 * (systemd/deckhand-agent.service, ExecStart= and Environment=), so a test or
 * benchmark can run the agent as a server runs it.
 */
export function unitLaunch(unitFile = join(ROOT, 'systemd/deckhand-agent.service')): { nodeFlags: string[]; env: Record<string, string> } {
  const text = readFileSync(unitFile, 'utf8');
  const exec = /^ExecStart=(.*)$/m.exec(text)?.[1]?.trim().split(/\s+/) ?? [];
  const script = exec.findIndex((w) => w.endsWith('deckhand-agent.js'));
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^Environment=(\S+?)=(.*)$/gm)) if (m[1] !== 'DECKHAND_CONFIG') env[m[1]!] = m[2]!.trim();
  return { nodeFlags: script > 0 ? exec.slice(1, script) : [], env };
}

/** The unit's environment, with its node flags under UNIT_NODE_FLAGS, for startAgent's `env`. */
export function unitEnvironment(): Record<string, string> {
  const { nodeFlags, env } = unitLaunch();
  return nodeFlags.length ? { ...env, [UNIT_NODE_FLAGS]: nodeFlags.join(' ') } : env;
}
