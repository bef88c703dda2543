// The CLI's commands, run in-process (runCli with a captured Io) against a
// fake agent: a real WSS server with an openssl-made self-signed certificate
// that speaks the API contract (agent/api/protocol.ts) with canned answers.
// The real agent is exercised by test/integration/cli.test.ts.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { ERROR, METHOD_SCOPES, paramsSchemas, scopeAllows, type MethodName, type QueryResult, type Scope, type StatusResult } from '../../agent/api/protocol.js';
import { runCli } from '../../server-cli/cli.js';
import { fingerprintOf, formatFingerprint } from '../../server-cli/fingerprint.js';
import type { Io } from '../../server-cli/io.js';
import { makeCert as makeTestCert, type TestCert } from '../helpers/tls.js';

const NOW = Date.parse('2025-06-01T12:00:00Z');
const ago = (ms: number) => new Date(NOW - ms).toISOString();
const H = 3_600_000;

function makeCert(dir: string, name: string) {
  return makeTestCert(dir, name, 'IP:127.0.0.1');
}

/** A private CA and a leaf it signed for 127.0.0.1: stands in for a certificate a public CA vouches for. */
function makeCaSigned(dir: string): TestCert & { caFile: string } {
  const p = (f: string) => join(dir, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  execFileSync('openssl', ['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', '/CN=deckhand test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'], { stdio: 'ignore' });
  execFileSync('openssl', ['req', ...ec, '-keyout', p('leaf.key'), '-out', p('leaf.csr'), '-subj', '/CN=agent.test'], { stdio: 'ignore' });
  writeFileSync(p('leaf.ext'), 'subjectAltName=IP:127.0.0.1\n');
  execFileSync('openssl', ['x509', '-req', '-in', p('leaf.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('leaf.crt'), '-days', '2', '-extfile', p('leaf.ext')], { stdio: 'ignore' });
  const pem = readFileSync(p('leaf.crt'), 'utf8');
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return { certFile: p('leaf.crt'), keyFile: p('leaf.key'), cert: pem, key: readFileSync(p('leaf.key'), 'utf8'), fingerprint: fingerprintOf(der), caFile: p('ca.crt') };
}

/** The CLI as its own process (NODE_EXTRA_CA_CERTS is read at start-up only). Async: the fake agent lives in this process. */
function runCliProcess(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'server-cli/main.ts'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

const ROOT = resolve(import.meta.dirname, '../..');

const STATUS: StatusResult = {
  host: {
    name: 'box-1',
    os: 'Debian GNU/Linux 12 (bookworm)',
    kernel: '6.1.0',
    arch: 'x64',
    cpus: 2,
    memTotal: 4 * 2 ** 30,
    uptimeSec: 12 * 86400 + 3 * 3600,
    distribution: { id: 'debian', name: 'Debian GNU/Linux', version: '12', codename: 'bookworm', pretty: 'Debian GNU/Linux 12 (bookworm)' },
    cpu: { model: 'Intel Xeon Processor', cores: 2, physicalCores: 2, sockets: 1 },
    virtualization: { vm: 'kvm', container: 'none' },
    docker: { engine: '20.10.24', api: '1.41', compose: '2.26.1', composeCli: 'docker compose' },
    factsCollectedAt: ago(3 * H),
  },
  agent: { version: '0.1.0', startedAt: ago(3 * H), uptimeSec: 3 * 3600 + 120 },
  health: {
    status: 'warn',
    checks: {
      'docker:engine': [{ status: 'pass' }],
      'service:web': [{ status: 'pass', observedValue: 'healthy' }],
      'backup:db': [{ status: 'warn', observedValue: 27.5, observedUnit: 'h', output: 'last verified backup is 27.5h old' }],
    },
  },
  services: [
    { service: 'web', state: 'running', health: 'healthy', image: 'app:1', restarts: 0, startedAt: ago(2 * H) },
    { service: 'worker', state: 'exited', health: 'none', image: 'app:1', restarts: 3 },
  ],
  backups: [],
  certificates: [],
  resources: {
    cpuPercent: 12.5,
    load1: 0.42,
    memUsed: 1.5 * 2 ** 30,
    memTotal: 4 * 2 ** 30,
    swapUsed: 0,
    netRxPerSec: 1536,
    netTxPerSec: 300,
    disks: [{ mount: '/', usedPercent: 41, freeBytes: 20 * 2 ** 30, totalBytes: 40 * 2 ** 30 }],
    sampledAt: ago(5000),
  },
  alerts: [{ type: 'disk.low', subject: '/data', since: ago(3 * H), message: 'disk /data is 92% full' }],
};

type Handler = (params: Record<string, unknown>, conn: FakeConnection) => unknown;

class RpcFailure extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

interface FakeConnection {
  ws: WebSocket;
  scope: Scope;
  notify(stream: number, event: unknown): void;
}

/** Speaks the API contract with canned answers; counts upgrades and calls. */
class FakeAgent {
  readonly https: Server;
  readonly wss = new WebSocketServer({ noServer: true });
  readonly tokens = new Map<string, Scope>([
    ['read-token', 'read'],
    ['admin-token', 'admin'],
  ]);
  readonly calls: { method: string; params: unknown }[] = [];
  upgrades = 0;
  failedAuth = 0;
  cancelled: number[] = [];
  private nextStream = 1;
  private readonly timers = new Set<NodeJS.Timeout>();
  port = 0;

  readonly handlers: Partial<Record<MethodName, Handler>> = {
    'status.get': () => STATUS,
    'stack.ps': () => ({ services: STATUS.services }),
    'metrics.series': () => ({ series: ['host.cpu', 'host.mem.used', 'host.disk.used:/', 'host.net.rx', 'host.net.tx', 'service.mem:web'] }),
    'metrics.query': (p) => {
      if (p.series === 'bad.series') throw new RpcFailure(ERROR.invalidParams, 'invalid params', [{ path: 'series', message: 'no such thing' }]);
      // Like the agent: an unknown series is "not found"; a known one may be empty.
      if (String(p.series).endsWith('nope')) throw new RpcFailure(ERROR.notFound, `no series named "${String(p.series)}" (metrics.series lists them)`);
      const known = ['host.cpu', 'host.mem.used', 'host.disk.used:/', 'host.net.rx', 'host.net.tx'];
      const points: QueryResult['points'] = known.includes(String(p.series))
        ? Array.from({ length: 120 }, (_, i) => {
            const avg = 20 + 10 * Math.sin(i / 10);
            return [NOW - (120 - i) * 60_000, avg - 5, avg, avg + 5];
          })
        : [];
      return { series: p.series, step: '1m', from: ago(2 * H), to: new Date(NOW).toISOString(), points };
    },
    'events.list': (p) => {
      const all = [
        { id: 2, ts: ago(1 * H), type: 'token.created', severity: 'info', message: 'token ci created', actor: 'admin', address: '127.0.0.1' },
        { id: 1, ts: ago(3 * H), type: 'disk.low', severity: 'warn', subject: '/data', message: 'disk /data is 92% full' },
      ];
      // Like the agent under its byte budget: fewer than `limit` a page, here one, and `next` while more remain.
      const rest = p.cursor === undefined ? all : all.filter((e) => e.id < Number(p.cursor));
      const page = rest.slice(0, Math.min(1, Number(p.limit ?? 100)));
      return { events: page, ...(rest.length > page.length ? { next: String(page.at(-1)!.id) } : {}) };
    },
    'token.list': () => ({ tokens: [...this.tokens].map(([token, scope]) => ({ name: `${scope}-token`, scope, createdAt: ago(48 * H), ...(token === 'admin-token' ? { lastUsedAt: ago(60_000) } : {}) })) }),
    'token.create': (p) => ({ name: p.name, scope: p.scope, token: `dh_${String(p.name)}_secret` }),
    'token.revoke': (p) => {
      if (p.name === 'nope') throw new RpcFailure(ERROR.notFound, 'no token named nope');
      return { ok: true };
    },
    'stack.logs': (p, conn) => {
      const stream = this.nextStream++;
      const lines = [
        { type: 'line', service: 'web', stream: 'stdout', ts: ago(2000), text: 'listening on :8000' },
        { type: 'line', service: 'worker', stream: 'stderr', ts: ago(1000), text: 'job 1 done\n' },
      ];
      // Answer first, then the events, as the agent does.
      setImmediate(() => {
        for (const l of lines) conn.notify(stream, l);
        if (!p.follow) conn.notify(stream, { type: 'end', ok: true });
        else {
          const t = setInterval(() => {
            // Like the agent: after stream.cancel, not another word about this stream.
            if (this.cancelled.includes(stream)) clearInterval(t);
            else conn.notify(stream, { type: 'line', service: 'web', stream: 'stdout', ts: ago(0), text: 'tick' });
          }, 20);
          this.timers.add(t);
        }
      });
      return { stream };
    },
    'stream.cancel': (p) => {
      this.cancelled.push(Number(p.stream));
      return { ok: true };
    },
  };

  constructor(cert: TestCert) {
    this.https = createServer({ cert: cert.cert, key: cert.key }, (_req, res) => res.writeHead(426).end());
    this.https.on('upgrade', (req, socket, head) => {
      this.upgrades++;
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const scope = token ? this.tokens.get(token) : undefined;
      if (!scope) {
        this.failedAuth++;
        const status = this.failedAuth > 10 ? 429 : 401;
        socket.end(`HTTP/1.1 ${status} Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.serve(ws, scope));
    });
  }

  async listen(port = 0): Promise<this> {
    await new Promise<void>((res) => this.https.listen(port, '127.0.0.1', res));
    this.port = (this.https.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `wss://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
    this.https.closeAllConnections();
    await new Promise((res) => this.https.close(res));
  }

  private serve(ws: WebSocket, scope: Scope): void {
    const conn: FakeConnection = { ws, scope, notify: (stream, event) => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'stream', params: { stream, event } })) };
    ws.on('message', (data) => {
      const req = JSON.parse(data.toString()) as { id: number; method: MethodName; params: unknown };
      this.calls.push({ method: req.method, params: req.params });
      const reply = (body: object) => ws.send(JSON.stringify({ jsonrpc: '2.0', id: req.id, ...body }));
      const schema = paramsSchemas[req.method];
      const handler = this.handlers[req.method];
      if (!schema || !handler) return reply({ error: { code: ERROR.methodNotFound, message: 'method not found' } });
      if (!scopeAllows(scope, METHOD_SCOPES[req.method])) return reply({ error: { code: ERROR.forbidden, message: 'forbidden' } });
      const parsed = schema.safeParse(req.params ?? {});
      if (!parsed.success) return reply({ error: { code: ERROR.invalidParams, message: 'invalid params', data: { issues: parsed.error.issues } } });
      try {
        reply({ result: handler(parsed.data as Record<string, unknown>, conn) });
      } catch (err) {
        const e = err as RpcFailure;
        reply({ error: { code: e.code ?? ERROR.internal, message: e.message, ...(e.data ? { data: e.data } : {}) } });
      }
    });
  }
}

interface Captured {
  io: Io;
  out: () => string;
  err: () => string;
  stdin: PassThrough;
  interrupt: () => void;
}

function captureIo(env: NodeJS.ProcessEnv, opts: { tty?: boolean; columns?: number } = {}): Captured {
  let out = '';
  let err = '';
  const handlers = new Set<() => void>();
  const stdin = Object.assign(new PassThrough(), { isTTY: opts.tty === true });
  const io: Io = {
    env,
    stdout: { write: (t) => void (out += t), isTTY: opts.tty === true, columns: opts.columns ?? 100 },
    stderr: { write: (t) => void (err += t), isTTY: opts.tty === true, columns: opts.columns ?? 100 },
    stdin,
    now: () => NOW,
    onInterrupt: (h) => {
      handlers.add(h);
      return () => handlers.delete(h);
    },
  };
  return { io, out: () => out, err: () => err, stdin, interrupt: () => handlers.forEach((h) => h()) };
}

describe('deckhand commands against a fake agent', () => {
  let dir: string;
  let cert: TestCert;
  let other: TestCert;
  let agent: FakeAgent;
  let config: string;
  let env: NodeJS.ProcessEnv;
  const hostsFile = () => join(config, 'deckhand', 'hosts.json');

  const run = async (args: string[], opts: { tty?: boolean; columns?: number; env?: NodeJS.ProcessEnv; stdin?: string } = {}) => {
    const c = captureIo({ ...env, ...opts.env }, opts);
    if (opts.stdin !== undefined) c.stdin.end(opts.stdin);
    const code = await runCli(args, c.io);
    return { code, out: c.out(), err: c.err() };
  };
  const addHost = (name = 'web-1', token = 'admin-token') => run(['host', 'add', name, agent.url, '--token', token, '--fingerprint', cert.fingerprint]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dhtest-cli-commands-'));
    cert = makeCert(dir, 'agent');
    other = makeCert(dir, 'other');
    agent = await new FakeAgent(cert).listen();
  });
  after(async () => {
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    config = mkdtempSync(join(dir, 'config-'));
    env = { XDG_CONFIG_HOME: config, HOME: config, PATH: process.env.PATH };
    agent.calls.length = 0;
    agent.failedAuth = 0;
  });

  describe('host add / list / remove', () => {
    it('without --fingerprint and no terminal: refuses (exit 2), shows the fingerprint and the option to add, saves nothing', async () => {
      const upgrades = agent.upgrades;
      const r = await run(['host', 'add', 'web-1', agent.url, '--token', 'admin-token']);
      assert.equal(r.code, 2);
      assert.ok(r.err.includes(`fingerprint: ${formatFingerprint(cert.fingerprint)}`), r.err);
      assert.ok(r.err.includes(`  --fingerprint ${formatFingerprint(cert.fingerprint)}`), r.err);
      assert.ok(!r.err.includes('admin-token'), 'never echoes the token');
      assert.equal(existsSync(hostsFile()), false);
      assert.equal(agent.upgrades, upgrades, 'the token was not sent');
    });

    it('--json refusal carries the fingerprint for scripts', async () => {
      const r = await run(['host', 'add', 'web-1', agent.url, '--token', 'admin-token', '--json']);
      assert.equal(r.code, 2);
      const doc = JSON.parse(r.out);
      assert.equal(doc.error.exitCode, 2);
      assert.equal(doc.error.fingerprint, cert.fingerprint);
    });

    it('with --fingerprint in any accepted spelling: checks pin and token, saves 0600 in a 0700 directory', async () => {
      for (const [i, spelling] of [formatFingerprint(cert.fingerprint), cert.fingerprint.toUpperCase(), `sha256:${cert.fingerprint}`].entries()) {
        const r = await run(['host', 'add', `web-${i}`, `127.0.0.1:${agent.port}`, '--token', 'admin-token', '--fingerprint', spelling]);
        assert.equal(r.code, 0, r.err);
        assert.match(r.out, new RegExp(`added web-${i} \\(wss://127\\.0\\.0\\.1:${agent.port}/v1\\), certificate pinned: SHA256:`));
      }
      const file = JSON.parse(readFileSync(hostsFile(), 'utf8'));
      assert.deepEqual(file.hosts['web-0'], { url: `wss://127.0.0.1:${agent.port}/v1`, token: 'admin-token', fingerprint: cert.fingerprint });
      assert.equal(statSync(hostsFile()).mode & 0o777, 0o600);
      assert.equal(statSync(join(config, 'deckhand')).mode & 0o777, 0o700);
    });

    it('on a terminal: asks, and saves on "y"', async () => {
      const r = await run(['host', 'add', 'web-1', agent.url, '--token', 'admin-token'], { tty: true, stdin: 'y\n' });
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /Trust this certificate\? \[y\/N\] /);
      assert.equal(JSON.parse(readFileSync(hostsFile(), 'utf8')).hosts['web-1'].fingerprint, cert.fingerprint);
    });

    it('on a terminal: anything but yes leaves the hosts file alone (exit 1)', async () => {
      const r = await run(['host', 'add', 'web-1', agent.url, '--token', 'admin-token'], { tty: true, stdin: '\n' });
      assert.equal(r.code, 1);
      assert.equal(existsSync(hostsFile()), false);
    });

    it('a wrong token is found at add time (exit 3), nothing saved', async () => {
      const r = await run(['host', 'add', 'web-1', agent.url, '--token', 'wrong', '--fingerprint', cert.fingerprint]);
      assert.equal(r.code, 3);
      assert.match(r.err, /token rejected by web-1: create one with `deckhand-agent token create --name NAME --scope read` on the server/);
      assert.equal(existsSync(hostsFile()), false);
    });

    it('a --fingerprint that does not match on a first add: exit 3, says so, nothing pinned to remove', async () => {
      const r = await run(['host', 'add', 'web-1', agent.url, '--token', 'admin-token', '--fingerprint', other.fingerprint]);
      assert.equal(r.code, 3);
      assert.match(r.err, /not added: the certificate of .* does not match the fingerprint given with --fingerprint/);
      assert.ok(!r.err.includes('CHANGED') && !r.err.includes('host remove'), r.err);
      assert.equal(existsSync(hostsFile()), false);
    });

    it('usage errors: bad name, bad URL, bad fingerprint, existing name (exit 2)', async () => {
      assert.equal((await run(['host', 'add', '../x', agent.url, '--token', 't'])).code, 2);
      assert.equal((await run(['host', 'add', 'x', 'ws://1.2.3.4:7443', '--token', 't'])).code, 2);
      assert.equal((await run(['host', 'add', 'x', agent.url, '--token', 't', '--fingerprint', 'abc'])).code, 2);
      assert.equal((await run(['host', 'add', 'x', agent.url])).code, 2, 'missing --token');
      assert.equal((await addHost()).code, 0);
      const again = await addHost();
      assert.equal(again.code, 2);
      assert.match(again.err, /already exists/);
    });

    it('list never shows tokens; remove forgets', async () => {
      await addHost('web-1');
      await addHost('web-2');
      const list = await run(['host', 'list']);
      assert.equal(list.code, 0);
      assert.match(list.out, /^NAME\s+URL\s+CERTIFICATE\nweb-1\s+wss:\/\/127\.0\.0\.1:\d+\/v1\s+SHA256:[0-9A-F:]+…[0-9A-F:]+\nweb-2/);
      assert.ok(!list.out.includes('admin-token'));
      const json = JSON.parse((await run(['host', 'list', '--json'])).out);
      assert.deepEqual(json.hosts.map((h: { name: string }) => h.name), ['web-1', 'web-2']);
      assert.equal(json.hosts[0].fingerprint, cert.fingerprint);
      assert.ok(!JSON.stringify(json).includes('admin-token'));
      assert.equal((await run(['host', 'remove', 'web-1'])).code, 0);
      assert.deepEqual(Object.keys(JSON.parse(readFileSync(hostsFile(), 'utf8')).hosts), ['web-2']);
      assert.equal((await run(['host', 'remove', 'web-1'])).code, 2);
    });
  });

  describe('choosing a host', () => {
    it('the only host by default; -H or DECKHAND_HOST among several; an unknown one is exit 2', async () => {
      await addHost('web-1');
      assert.equal((await run(['ps'])).code, 0);
      await addHost('web-2');
      const ambiguous = await run(['ps']);
      assert.equal(ambiguous.code, 2);
      assert.match(ambiguous.err, /2 hosts configured \(web-1, web-2\): choose one with -H NAME or DECKHAND_HOST/);
      assert.equal((await run(['ps', '-H', 'web-2'])).code, 0);
      assert.equal((await run(['ps'], { env: { DECKHAND_HOST: 'web-1' } })).code, 0);
      const unknown = await run(['ps', '-H', 'web-9']);
      assert.equal(unknown.code, 2);
      assert.match(unknown.err, /no host named "web-9"/);
    });

    it('no hosts at all: exit 2 saying how to add one', async () => {
      const r = await run(['status']);
      assert.equal(r.code, 2);
      assert.match(r.err, /no hosts configured .*deckhand host add/);
    });

    it('DECKHAND_URL + DECKHAND_TOKEN + DECKHAND_FINGERPRINT: no hosts file needed', async () => {
      const ci = { DECKHAND_URL: agent.url, DECKHAND_TOKEN: 'read-token', DECKHAND_FINGERPRINT: formatFingerprint(cert.fingerprint) };
      const r = await run(['status', '--json'], { env: ci });
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(JSON.parse(r.out), STATUS);
      assert.equal(existsSync(hostsFile()), false);
      assert.equal((await run(['status'], { env: { DECKHAND_URL: agent.url } })).code, 2, 'URL without token');
      assert.equal((await run(['status'], { env: { ...ci, DECKHAND_FINGERPRINT: 'xyz' } })).code, 2, 'malformed fingerprint');
      const unpinned = await run(['status'], { env: { DECKHAND_URL: agent.url, DECKHAND_TOKEN: 'read-token' } });
      assert.equal(unpinned.code, 3, 'self-signed without a pin');
      assert.ok(unpinned.err.includes(`DECKHAND_FINGERPRINT=${formatFingerprint(cert.fingerprint)}`));
    });
  });

  describe('a changed certificate', () => {
    it('is refused loudly with exit 3, before the token is sent', async () => {
      await addHost('web-1');
      const file = JSON.parse(readFileSync(hostsFile(), 'utf8'));
      file.hosts['web-1'].fingerprint = other.fingerprint;
      writeFileSync(hostsFile(), JSON.stringify(file));
      const upgrades = agent.upgrades;
      const r = await run(['status']);
      assert.equal(r.code, 3);
      assert.match(r.err, /WARNING: THE AGENT CERTIFICATE HAS CHANGED!/);
      assert.ok(r.err.includes(`pinned:    ${formatFingerprint(other.fingerprint)}`));
      assert.ok(r.err.includes(`presented: ${formatFingerprint(cert.fingerprint)}`));
      assert.equal(agent.upgrades, upgrades);
    });
  });

  describe('status', () => {
    it('one host, human: health with the failing checks, services, resources, alerts', async () => {
      await addHost('web-1');
      const r = await run(['status']);
      assert.equal(r.code, 0, r.err);
      assert.ok(!r.out.includes('\x1b['), 'no colour off a terminal');
      const expected = [
        'web-1 (box-1)  Debian GNU/Linux 12 (bookworm) · kernel 6.1.0 · x64 · 2× Intel Xeon Processor',
        '  4.0 GiB · KVM · Docker 20.10.24 · compose 2.26.1 · up 12 d 3 h',
        'agent 0.1.0, up 3 h 2 min',
        '',
        'health  WARN',
        '  warn  backup:db  last verified backup is 27.5h old',
        '',
        'services  1/2 running',
        '  SERVICE  STATE    HEALTH   RESTARTS  UP',
        '  web      running  healthy         0  2 h',
        '  worker   exited   -               3  -',
        '',
        'resources  sampled 5 s ago',
        '  cpu      13%, load 0.42',
        '  memory   1.5 GiB of 4.0 GiB (38%), swap 0 B',
        '  network  in 1.5 KiB/s, out 300 B/s',
        '  disk /   41% used, 20 GiB free of 40 GiB',
        '',
        'alerts  1 open',
        '  disk.low  /data  since 3 h ago  disk /data is 92% full',
        '',
      ].join('\n');
      assert.equal(r.out, expected);
    });

    it('colour on a terminal, none with NO_COLOR', async () => {
      await addHost('web-1');
      assert.match((await run(['status'], { tty: true })).out, /\x1b\[33mWARN\x1b\[39m/);
      assert.ok(!(await run(['status'], { tty: true, env: { NO_COLOR: '1' } })).out.includes('\x1b['));
    });

    it('--json: the status.get result, one document', async () => {
      await addHost('web-1');
      const r = await run(['status', '--json']);
      assert.deepEqual(JSON.parse(r.out), STATUS);
    });

    it('--all: one row per host in parallel; an unreachable host is marked, and the exit code is 3', async () => {
      await addHost('web-1');
      await addHost('web-2', 'read-token');
      const file = JSON.parse(readFileSync(hostsFile(), 'utf8'));
      // A port nothing listens on: take one the fake agent is not on.
      file.hosts['web-3'] = { url: 'wss://127.0.0.1:1/v1', token: 't', fingerprint: cert.fingerprint };
      writeFileSync(hostsFile(), JSON.stringify(file), { mode: 0o600 });
      const r = await run(['status', '--all']);
      assert.equal(r.code, 3);
      assert.equal(
        r.out,
        [
          'HOST   HEALTH  SERVICES  CPU  MEM  DISK  ALERTS',
          'web-1  warn         1/2  13%  38%   41%       1',
          'web-2  warn         1/2  13%  38%   41%       1',
          'web-3  unreachable (connection refused)',
          '',
        ].join('\n'),
      );
      assert.match(r.err, /web-3: cannot connect to wss:\/\/127\.0\.0\.1:1\/v1 \(host web-3\): connection refused/);

      const json = JSON.parse((await run(['status', '--all', '--json'])).out);
      assert.deepEqual(
        json.hosts.map((h: { name: string; ok: boolean }) => [h.name, h.ok]),
        [
          ['web-1', true],
          ['web-2', true],
          ['web-3', false],
        ],
      );
      assert.equal(json.hosts[2].error.exitCode, 3);
      assert.equal((await run(['status', '--all', '-H', 'web-1'])).code, 2);
    });

    it('--all with every host reachable: exit 0', async () => {
      await addHost('web-1');
      assert.equal((await run(['status', '--all'])).code, 0);
    });
  });

  describe('ps, events, metrics', () => {
    beforeEach(async () => void (await addHost('web-1')));

    it('ps: aligned table; --json the result', async () => {
      const r = await run(['ps']);
      assert.equal(r.code, 0);
      assert.equal(r.out, ['SERVICE  STATE    HEALTH   RESTARTS  UP   IMAGE', 'web      running  healthy         0  2 h  app:1', 'worker   exited   -               3  -    app:1', ''].join('\n'));
      assert.deepEqual(JSON.parse((await run(['ps', '--json'])).out), { services: STATUS.services });
    });

    it('events: oldest first, relative times, actor and address of audit entries; options passed on', async () => {
      const r = await run(['events', '--since', '7d', '--type', 'disk.low', '--limit', '5']);
      assert.equal(r.code, 0, r.err);
      assert.equal(
        r.out,
        [
          'WHEN     SEVERITY  TYPE           SUBJECT  MESSAGE',
          '3 h ago  warn      disk.low       /data    disk /data is 92% full',
          '1 h ago  info      token.created           token ci created (admin from 127.0.0.1)',
          '',
        ].join('\n'),
      );
      assert.deepEqual(
        agent.calls.slice(-2),
        [
          { method: 'events.list', params: { since: '7d', type: 'disk.low', limit: 5 } },
          { method: 'events.list', params: { since: '7d', type: 'disk.low', limit: 4, cursor: '2' } },
        ],
        'pages followed with `next` until the limit or the end',
      );
      assert.deepEqual((await run(['events'])).code, 0);
      assert.deepEqual(agent.calls.at(-1)?.params, { since: '24h', limit: 999, cursor: '2' }, '--since defaults to 24h, --limit to 1000');
      const one = await run(['events', '--limit', '1', '--json']);
      assert.deepEqual(JSON.parse(one.out), { events: [{ id: 2, ts: ago(1 * H), type: 'token.created', severity: 'info', message: 'token ci created', actor: 'admin', address: '127.0.0.1' }], next: '2' }, '--json keeps `next` when more remain');
      assert.equal((await run(['events', '--since', 'yesterday'])).code, 2);
      assert.equal((await run(['events', '--limit', '0'])).code, 2);
    });

    it('metrics cpu: plain numbers off a terminal, a chart on one', async () => {
      const plain = await run(['metrics', 'cpu', '--since', '2h']);
      assert.equal(plain.code, 0, plain.err);
      const lines = plain.out.trimEnd().split('\n');
      assert.equal(lines[0], 'host.cpu on web-1, last 2h (step 1m, 120 points)');
      assert.match(lines[1]!, /^TIME\s+MIN \(%\)\s+AVG \(%\)\s+MAX \(%\)$/);
      assert.match(lines[2]!, /^2025-06-01T10:00:00\.000Z\s+15\s+20\s+25$/);
      assert.equal(lines.length, 2 + 120);
      assert.deepEqual(agent.calls.at(-1), { method: 'metrics.query', params: { series: 'host.cpu', from: '2h' } });

      const tty = await run(['metrics', 'cpu'], { tty: true, columns: 80, env: { NO_COLOR: '1' } });
      assert.equal(tty.code, 0);
      const chart = tty.out.split('\n');
      assert.match(chart[1]!, /^now [\d.]+%  min [\d.]+%  avg [\d.]+%  max [\d.]+%$/);
      assert.ok(/[\u2801-\u28ff]/.test(tty.out), 'braille line');
      assert.ok(chart.every((l) => [...l].length <= 80), 'fits the terminal');
      assert.match(tty.out, /2 h ago .* now\n/);
    });

    it('metrics net: both directions; --json {rx, tx}', async () => {
      const r = await run(['metrics', 'net', '--json']);
      const doc = JSON.parse(r.out);
      assert.equal(doc.rx.series, 'host.net.rx');
      assert.equal(doc.tx.series, 'host.net.tx');
    });

    it('metrics aliases and series names', async () => {
      for (const [alias, series] of [
        ['mem', 'host.mem.used'],
        ['disk', 'host.disk.used:/'],
        ['service.mem:web', 'service.mem:web'],
      ]) {
        await run(['metrics', alias!]);
        assert.equal((agent.calls.find((c) => c.method === 'metrics.query' && (c.params as { series: string }).series === series) ?? null) !== null, true, alias);
      }
    });

    it('metrics: an unknown series is exit 1 with the near names; bad params from the agent are exit 2', async () => {
      const r = await run(['metrics', 'host.disk.used:/nope']);
      assert.equal(r.code, 1);
      assert.match(r.err, /keeps no series host\.disk\.used:\/nope; did you mean host\.disk\.used:\/\?/);
      const empty = await run(['metrics', 'service.mem:web']);
      assert.equal(empty.code, 0, 'a kept series without points in the window is no error');
      assert.match(empty.out, /no data in this window/);
      const bad = await run(['metrics', 'bad.series']);
      assert.equal(bad.code, 2);
      assert.match(bad.err, /web-1 refused the request to read the metric bad\.series: invalid params: series: no such thing/);
      assert.ok(!bad.err.includes('no such thing: series'), 'the detail is not said twice');
    });

    it('metrics without a series lists them', async () => {
      const r = await run(['metrics']);
      assert.equal(r.code, 0);
      assert.match(r.out, /^host\.cpu\nhost\.mem\.used\n/);
    });
  });

  describe('token', () => {
    it('list, create (the token alone on stdout), revoke with an admin token', async () => {
      await addHost('web-1');
      const list = await run(['token', 'list']);
      assert.equal(list.code, 0);
      assert.match(list.out, /^NAME\s+SCOPE\s+CREATED\s+LAST USED\n/);
      assert.match(list.out, /admin-token\s+admin\s+2 d ago\s+1 min ago/);
      const created = await run(['token', 'create', 'ci', '--scope', 'operate']);
      assert.equal(created.code, 0);
      assert.equal(created.out, 'dh_ci_secret\n');
      assert.match(created.err, /shown only this once/);
      assert.deepEqual(JSON.parse((await run(['token', 'create', 'ci', '--scope', 'read', '--json'])).out), { name: 'ci', scope: 'read', token: 'dh_ci_secret' });
      assert.equal((await run(['token', 'revoke', 'ci'])).code, 0);
      const missing = await run(['token', 'revoke', 'nope']);
      assert.equal(missing.code, 1);
      assert.match(missing.err, /cannot revoke the token nope on web-1: no token named nope/);
      assert.equal((await run(['token', 'create', 'ci', '--scope', 'root'])).code, 2);
    });

    it('a read token calling token.create: exit 3, naming the scope needed', async () => {
      await addHost('web-1', 'read-token');
      const r = await run(['token', 'create', 'ci', '--scope', 'read']);
      assert.equal(r.code, 3);
      assert.match(r.err, /token lacks the scope to create the token ci on web-1 \(needs admin\); create one with `deckhand-agent token create --name NAME --scope admin` on web-1/);
      const json = JSON.parse((await run(['token', 'list', '--json'])).out);
      assert.equal(json.error.exitCode, 3);
      assert.equal(json.error.code, ERROR.forbidden);
    });
  });

  describe('logs', () => {
    beforeEach(async () => void (await addHost('web-1')));

    it('prints `service | text`, padded; the stream ends by itself without -f', async () => {
      const r = await run(['logs', '--tail', '10']);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out, 'web | listening on :8000\nworker | job 1 done\n');
      assert.deepEqual(agent.calls.at(-1), { method: 'stack.logs', params: { tail: 10 } });
    });

    it('--json: one event per line', async () => {
      const r = await run(['logs', 'web', '--json']);
      const events = r.out.trimEnd().split('\n').map((l) => JSON.parse(l));
      assert.equal(events[0].text, 'listening on :8000');
      assert.deepEqual(agent.calls.at(-1)?.params, { service: 'web' });
    });

    it('-f until Ctrl-C, which cancels the stream on the agent; exit 130', async () => {
      const c = captureIo(env);
      const running = runCli(['logs', '-f'], c.io);
      // Following for real before Ctrl-C: the stream's first line is out.
      for (const deadline = Date.now() + 5000; !/web +\| tick\n/.test(c.out()); ) {
        assert.ok(Date.now() < deadline, `no line while following: ${c.out()}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      const t0 = Date.now();
      c.interrupt();
      assert.equal(await running, 130);
      assert.ok(Date.now() - t0 < 1000, 'no waiting for an end the agent never sends');
      assert.match(c.out(), /web +\| tick\n/);
      const cancel = agent.calls.find((x) => x.method === 'stream.cancel');
      assert.ok(cancel, 'stream.cancel sent');
      assert.ok(agent.cancelled.includes((cancel.params as { stream: number }).stream));
    });
  });

  describe('auth failures', () => {
    it('after repeated failures the agent answers 429: exit 3, "wait a minute"', async () => {
      await addHost('web-1');
      const file = JSON.parse(readFileSync(hostsFile(), 'utf8'));
      file.hosts['web-1'].token = 'revoked';
      writeFileSync(hostsFile(), JSON.stringify(file), { mode: 0o600 });
      let last = { code: 0, err: '' };
      for (let i = 0; i < 11; i++) last = await run(['ps']);
      assert.equal(last.code, 3);
      assert.match(last.err, /too many failed attempts; wait a minute/);
    });
  });

  describe('a certificate a trusted CA vouches for', () => {
    let caAgent: FakeAgent;
    let ca: ReturnType<typeof makeCaSigned>;
    before(async () => {
      ca = makeCaSigned(mkdtempSync(join(dir, 'ca-')));
      caAgent = await new FakeAgent(ca).listen();
    });
    after(() => caAgent.close());

    it('needs no pin: host add saves none without asking, and commands connect', async () => {
      const trusted = { ...env, NODE_EXTRA_CA_CERTS: ca.caFile };
      const add = await runCliProcess(['host', 'add', 'ca-host', caAgent.url, '--token', 'read-token'], trusted);
      assert.equal(add.code, 0, add.err);
      assert.match(add.out, /certificate verified by a trusted CA \(no pin\)/);
      assert.deepEqual(JSON.parse(readFileSync(hostsFile(), 'utf8')).hosts['ca-host'], { url: `${caAgent.url}/v1`, token: 'read-token' });
      const status = await runCliProcess(['status', '--json'], trusted);
      assert.equal(status.code, 0, status.err);
      assert.deepEqual(JSON.parse(status.out), STATUS);
    });

    it('without the pin, a certificate this machine does not trust is refused (exit 3) before the token is sent', async () => {
      const trusted = { ...env, NODE_EXTRA_CA_CERTS: ca.caFile };
      assert.equal((await runCliProcess(['host', 'add', 'ca-host', caAgent.url, '--token', 'read-token'], trusted)).code, 0);
      const upgrades = caAgent.upgrades;
      const r = await runCliProcess(['status'], env);
      assert.equal(r.code, 3);
      assert.match(r.err, /the certificate of ca-host .* is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\) and no fingerprint is pinned/);
      assert.equal(caAgent.upgrades, upgrades);
    });

    it('a trusted certificate for another name is refused too (exit 3)', async () => {
      const r = await runCliProcess(['status'], { ...env, NODE_EXTRA_CA_CERTS: ca.caFile, DECKHAND_URL: `wss://localhost:${caAgent.port}`, DECKHAND_TOKEN: 'read-token' });
      assert.equal(r.code, 3);
      assert.match(r.err, /not trusted \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
    });
  });

  describe('usage', () => {
    it('unknown commands and options are exit 2; --help and --version exit 0', async () => {
      assert.equal((await run(['frobnicate'])).code, 2);
      assert.equal((await run(['status', '--bogus'])).code, 2);
      assert.equal((await run(['--help'])).code, 0);
      assert.equal((await run(['--version'])).code, 0);
      assert.equal((await run(['logs', '--tail', '-1'])).code, 2);
    });
  });
});
