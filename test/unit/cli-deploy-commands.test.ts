// deckhand deploy / rollback / deploys / restart / stop / start, run in-process
// (runCli with a captured Io) against a fake agent: a real WSS server with an
// openssl-made self-signed certificate that speaks the API contract
// (agent/api/protocol.ts) and plays scripted deploy streams. The real agent
// is exercised by test/integration/cli-deploy.test.ts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { ERROR, METHOD_SCOPES, paramsSchemas, scopeAllows, type DeployEvent, type DeployInfo, type MethodName, type Scope } from '../../agent/api/protocol.js';
import { runCli } from '../../server-cli/cli.js';
import { fingerprintOf } from '../../server-cli/fingerprint.js';
import type { Io } from '../../server-cli/io.js';

const NOW = Date.parse('2025-06-01T12:00:00Z');
const IMG1 = `sha256:3f2a1b0c9d8e${'a'.repeat(52)}`;
const IMG2 = `sha256:9a8b7c6d5e4f${'b'.repeat(52)}`;

function record(over: Partial<DeployInfo> = {}): DeployInfo {
  return {
    id: 7,
    kind: 'deploy',
    actor: 'ops',
    startedAt: new Date(NOW - 20_000).toISOString(),
    finishedAt: new Date(NOW - 5_800).toISOString(),
    durationMs: 14_200,
    result: 'succeeded',
    services: [],
    ref: {},
    envKeys: ['WEB_TAG'],
    images: { before: { web: IMG1 }, after: { web: IMG2 } },
    steps: [],
    ...over,
  };
}

const GOOD: DeployEvent[] = [
  { type: 'step', step: 'record', status: 'started' },
  { type: 'step', step: 'record', status: 'ok', ms: 210, detail: '1 services' },
  { type: 'step', step: 'env', status: 'started' },
  { type: 'step', step: 'env', status: 'ok', ms: 3, detail: 'set WEB_TAG' },
  { type: 'step', step: 'validate', status: 'started' },
  { type: 'step', step: 'validate', status: 'ok', ms: 400 },
  { type: 'step', step: 'up', status: 'started' },
  { type: 'step', step: 'up', status: 'ok', ms: 1_100 },
  { type: 'step', step: 'health', status: 'started' },
  { type: 'waiting', detail: 'web: healthcheck not passed yet' },
  { type: 'step', step: 'health', status: 'ok', ms: 3_200, detail: '1 services healthy' },
];

const BAD: DeployEvent[] = [
  { type: 'step', step: 'record', status: 'ok', ms: 210, detail: '1 services' },
  { type: 'step', step: 'up', status: 'ok', ms: 1_100 },
  { type: 'step', step: 'health', status: 'started' },
  { type: 'step', step: 'health', status: 'failed', ms: 4_000, detail: 'web: healthcheck failing' },
  { type: 'step', step: 'rollback', status: 'started' },
  { type: 'step', step: 'rollback', status: 'ok', ms: 2_500, detail: 'previous version healthy' },
];

/** What the next deploy stream does. */
interface Script {
  events: DeployEvent[];
  /** The end event's fields; none: the stream never ends (a deploy still running). */
  end?: Record<string, unknown>;
  /** Drop the connection after the events. */
  dropAfter?: boolean;
}

class RpcFailure extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

class FakeAgent {
  readonly https: Server;
  readonly wss = new WebSocketServer({ noServer: true });
  readonly tokens = new Map<string, Scope>([
    ['read-token', 'read'],
    ['operate-token', 'operate'],
  ]);
  readonly calls: { method: string; params: unknown }[] = [];
  script: Script = { events: GOOD, end: { ok: true, deploy: record() } };
  busy = false;
  private nextStream = 1;
  port = 0;

  constructor(cert: { cert: string; key: string }) {
    this.https = createServer({ cert: cert.cert, key: cert.key }, (_req, res) => res.writeHead(426).end());
    this.https.on('upgrade', (req, socket, head) => {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const scope = token ? this.tokens.get(token) : undefined;
      if (!scope) return void socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      this.wss.handleUpgrade(req, socket, head, (ws) => this.serve(ws, scope));
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((res) => this.https.listen(0, '127.0.0.1', res));
    this.port = (this.https.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
    this.https.closeAllConnections();
    await new Promise((res) => this.https.close(res));
  }

  private deployStream(ws: WebSocket): { stream: number } {
    if (this.busy) throw new RpcFailure(ERROR.conflict, 'a deploy or rollback is already running; wait for it (deckhand deploys)');
    const stream = this.nextStream++;
    const { events, end, dropAfter } = this.script;
    const notify = (event: unknown) => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'stream', params: { stream, event } }));
    // Answer first, then the events, a little apart as a real deploy sends them.
    setImmediate(async () => {
      for (const e of events) {
        notify(e);
        await new Promise((r) => setTimeout(r, 2));
      }
      if (dropAfter) ws.terminate();
      else if (end) notify({ type: 'end', ...end });
    });
    return { stream };
  }

  private handle(method: MethodName, params: Record<string, unknown>, ws: WebSocket): unknown {
    switch (method) {
      case 'deploy.start':
      case 'deploy.rollback':
        return this.deployStream(ws);
      case 'deploy.list':
        return { deploys: [record({ id: 8, result: 'rolled_back', error: 'health: x', envKeys: ['WEB_HEALTHY'], images: { before: { web: IMG2 } } }), record()] };
      case 'stack.restart':
      case 'stack.stop':
      case 'stack.start':
        if (params.service !== 'web') throw new RpcFailure(ERROR.notFound, `no service "${String(params.service)}" in stack app (services: web)`);
        return { ok: true };
      case 'stream.cancel':
        return { ok: true };
      default:
        throw new RpcFailure(ERROR.methodNotFound, 'method not found');
    }
  }

  private serve(ws: WebSocket, scope: Scope): void {
    ws.on('message', (data) => {
      const req = JSON.parse(data.toString()) as { id: number; method: MethodName; params: unknown };
      this.calls.push({ method: req.method, params: req.params });
      const reply = (body: object) => ws.send(JSON.stringify({ jsonrpc: '2.0', id: req.id, ...body }));
      const schema = paramsSchemas[req.method];
      if (!schema) return reply({ error: { code: ERROR.methodNotFound, message: 'method not found' } });
      if (!scopeAllows(scope, METHOD_SCOPES[req.method])) return reply({ error: { code: ERROR.forbidden, message: 'forbidden', data: { needs: METHOD_SCOPES[req.method], have: scope } } });
      const parsed = schema.safeParse(req.params ?? {});
      if (!parsed.success) return reply({ error: { code: ERROR.invalidParams, message: 'invalid params', data: { issues: parsed.error.issues } } });
      try {
        reply({ result: this.handle(req.method, parsed.data as Record<string, unknown>, ws) });
      } catch (err) {
        const e = err as RpcFailure;
        reply({ error: { code: e.code ?? ERROR.internal, message: e.message } });
      }
    });
  }
}

function captureIo(env: NodeJS.ProcessEnv, tty: boolean) {
  let out = '';
  let err = '';
  const handlers = new Set<() => void>();
  const io: Io = {
    env,
    stdout: { write: (t) => void (out += t), isTTY: tty, columns: 100 },
    stderr: { write: (t) => void (err += t), isTTY: tty, columns: 100 },
    stdin: Object.assign(new PassThrough(), { isTTY: tty }),
    now: () => NOW,
    onInterrupt: (h) => {
      handlers.add(h);
      return () => handlers.delete(h);
    },
  };
  return { io, out: () => out, err: () => err, interrupt: () => handlers.forEach((h) => h()), handlers };
}

describe('deploy commands against a fake agent', () => {
  let dir: string;
  let agent: FakeAgent;
  let env: NodeJS.ProcessEnv;

  const run = async (args: string[], opts: { tty?: boolean; token?: string; onStart?: (c: ReturnType<typeof captureIo>) => void } = {}) => {
    const c = captureIo({ ...env, ...(opts.token ? { DECKHAND_TOKEN: opts.token } : {}) }, opts.tty === true);
    opts.onStart?.(c);
    const code = await runCli(args, c.io);
    return { code, out: c.out(), err: c.err(), handlers: c.handlers };
  };
  const callsOf = (method: string) => agent.calls.filter((c) => c.method === method);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dhtest-cli-deploy-'));
    const key = join(dir, 'agent.key');
    const crt = join(dir, 'agent.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', crt, '-days', '2', '-subj', '/CN=agent', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const pem = readFileSync(crt, 'utf8');
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    agent = await new FakeAgent({ cert: pem, key: readFileSync(key, 'utf8') }).listen();
    env = { PATH: process.env.PATH, HOME: dir, XDG_CONFIG_HOME: dir, DECKHAND_URL: `wss://127.0.0.1:${agent.port}/v1`, DECKHAND_TOKEN: 'operate-token', DECKHAND_FINGERPRINT: fingerprintOf(der) };
  });
  after(async () => {
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    agent.calls.length = 0;
    agent.busy = false;
    agent.script = { events: GOOD, end: { ok: true, deploy: record() } };
  });

  describe('deploy', () => {
    it('sends ref, env (values with "=") and services; plain step lines, then the summary; exit 0', async () => {
      const r = await run(['deploy', '--ref', 'v1.2.0', '--set', 'WEB_TAG=v2', '--set', 'DSN=a=b', '--service', 'web', '--service', 'worker']);
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(callsOf('deploy.start')[0]!.params, { ref: 'v1.2.0', env: { WEB_TAG: 'v2', DSN: 'a=b' }, services: ['web', 'worker'] });
      assert.equal(
        r.out,
        [
          '[  0.2s] record ok: 1 services',
          '[  0.0s] env ok: set WEB_TAG',
          '[  0.4s] validate ok',
          '[  1.1s] up ok',
          '         waiting: web: healthcheck not passed yet',
          '[  3.2s] health ok: 1 services healthy',
          '',
          'result  succeeded',
          'deploy  7 by ops, 14.2s',
          'env     WEB_TAG',
          'images  web  3f2a1b0c9d8e → 9a8b7c6d5e4f',
          '',
        ].join('\n'),
      );
      assert.equal(r.err, '');
      assert.equal(r.handlers.size, 0, 'the Ctrl-C handler is removed at the end');
    });

    it('without options: empty params', async () => {
      assert.equal((await run(['deploy'])).code, 0);
      assert.deepEqual(callsOf('deploy.start')[0]!.params, {});
    });

    it('rolled back: exit 1, the summary says why', async () => {
      agent.script = { events: BAD, end: { ok: false, deploy: record({ id: 8, result: 'rolled_back', error: 'health: web: healthcheck failing', images: { before: { web: IMG1 } } }) } };
      const r = await run(['deploy', '--set', 'WEB_HEALTHY=0']);
      assert.equal(r.code, 1);
      assert.match(r.out, /\[ {2}4\.0s\] health failed: web: healthcheck failing\n\[ {2}2\.5s\] rollback ok: previous version healthy\n/);
      assert.match(r.out, /\nresult {2}rolled back: health: web: healthcheck failing\ndeploy {2}8 by ops, 14\.2s\n/);
      assert.match(r.out, /\nimages {2}web {2}3f2a1b0c9d8e \(unchanged\)\n$/);
    });

    it('failed before anything ran: exit 1', async () => {
      agent.script = { events: [{ type: 'step', step: 'validate', status: 'failed', ms: 300, detail: 'compose config: bad' }], end: { ok: false, deploy: record({ result: 'failed', error: 'validate: compose config: bad' }) } };
      const r = await run(['deploy']);
      assert.equal(r.code, 1);
      assert.match(r.out, /\nresult {2}failed: validate: compose config: bad\n/);
    });

    it('an end without a deploy record: exit 1 with the agent\'s reason', async () => {
      agent.script = { events: [], end: { ok: false, error: 'internal error: disk on fire' } };
      const r = await run(['deploy']);
      assert.equal(r.code, 1);
      assert.match(r.err, /deploy on 127\.0\.0\.1:\d+ failed: internal error: disk on fire/);
    });

    it('--json: one document on stdout ({ok, deploy}), the steps on stderr; the exit code still tells', async () => {
      const good = await run(['deploy', '--json']);
      assert.equal(good.code, 0);
      const doc = JSON.parse(good.out);
      assert.equal(doc.ok, true);
      assert.equal(doc.deploy.id, 7);
      assert.equal(doc.deploy.result, 'succeeded');
      assert.match(good.err, /^\[ {2}0\.2s\] record ok: 1 services\n/);
      agent.script = { events: BAD, end: { ok: false, deploy: record({ id: 8, result: 'rolled_back', error: 'health: x' }) } };
      const bad = await run(['deploy', '--json']);
      assert.equal(bad.code, 1);
      assert.equal(JSON.parse(bad.out).deploy.result, 'rolled_back');
    });

    it('a deploy already running (-32002): exit 1 with the agent\'s message', async () => {
      agent.busy = true;
      const r = await run(['deploy']);
      assert.equal(r.code, 1);
      assert.match(r.err, /cannot start a deploy on 127\.0\.0\.1:\d+: a deploy or rollback is already running; wait for it \(deckhand deploys\)/);
      const json = await run(['deploy', '--json']);
      assert.equal(JSON.parse(json.out).error.code, ERROR.conflict);
    });

    it('a read token: exit 3 naming the scope needed', async () => {
      const r = await run(['deploy'], { token: 'read-token' });
      assert.equal(r.code, 3);
      assert.match(r.err, /token lacks the scope to start a deploy on [^ ]+ \(needs operate, this token is read\)/);
    });

    it('bad --set, --ref or --service: exit 2 before anything is sent', async () => {
      for (const args of [['--set', 'NOPE'], ['--set', '9X=1'], ['--set', 'A-B=1'], ['--set', 'PASSWORD=s3cr3t${HOME}'], ['--ref', '--evil'], ['--ref', 'a..b'], ['--service', '../x']]) {
        const r = await run(['deploy', ...args]);
        assert.equal(r.code, 2, args.join(' '));
        assert.match(r.err, /invalid/, r.err);
        assert.ok(!r.err.includes('s3cr3t'), `a refused value is not echoed: ${r.err}`);
      }
      assert.equal(agent.calls.length, 0);
    });

    it('Ctrl-C while watching: says the deploy continues and how to follow it, exit 130; the deploy is not cancelled', async () => {
      agent.script = { events: GOOD.slice(0, 3) }; // and then nothing: still running
      const r = await run(['deploy'], {
        onStart: (c) => {
          const t = setInterval(() => {
            if (c.out().includes('record ok')) {
              clearInterval(t);
              c.interrupt();
            }
          }, 2);
        },
      });
      assert.equal(r.code, 130);
      assert.match(r.out, /record ok/);
      assert.match(r.err, /stopped watching: the deploy continues on 127\.0\.0\.1:\d+; see how it ends with `deckhand deploys`/);
      assert.deepEqual(
        agent.calls.map((c) => c.method),
        ['deploy.start'],
        'no stream.cancel, nothing else',
      );
      const named = await run(['deploy', '-H', 'nope']);
      assert.equal(named.code, 2, 'an unknown host is still a usage error');
    });

    it('on a terminal: a live list (spinner, ticks, redraws) and the summary', async () => {
      const r = await run(['deploy'], { tty: true });
      assert.equal(r.code, 0);
      assert.ok(r.out.includes('\x1b[J'), 'live lines are redrawn');
      assert.ok(/✓.*record/.test(r.out), r.out);
      assert.ok(r.out.includes('waiting: web: healthcheck not passed yet'));
      assert.ok(r.out.includes('succeeded'));
    });

    it('the connection dropping mid-deploy: exit 3, and the deploy continues', async () => {
      agent.script = { events: GOOD.slice(0, 2), dropAfter: true };
      const r = await run(['deploy']);
      assert.equal(r.code, 3);
      assert.match(r.err, /the connection to 127\.0\.0\.1:\d+ closed.*before the stream ended; the deploy continues on 127\.0\.0\.1:\d+: see how it ends with `deckhand deploys`/);
    });
  });

  describe('rollback', () => {
    it('to a given id or the previous good deploy; same rendering and exit codes', async () => {
      agent.script = { events: [{ type: 'step', step: 'restore-files', status: 'ok', ms: 5 }], end: { ok: true, deploy: record({ id: 9, kind: 'rollback', targetId: 7, envKeys: [] }) } };
      const r = await run(['rollback', '7']);
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(callsOf('deploy.rollback')[0]!.params, { id: 7 });
      assert.match(r.out, /^\[ {2}0\.0s\] restore-files ok\n\nresult {4}succeeded\nrollback {2}9 to deploy 7 by ops, 14\.2s\n/);
      agent.script = { events: [], end: { ok: false, deploy: record({ id: 10, kind: 'rollback', result: 'rolled_back', error: 'health: x' }) } };
      assert.equal((await run(['rollback'])).code, 1);
      assert.deepEqual(callsOf('deploy.rollback')[1]!.params, {});
    });

    it('a bad id is exit 2', async () => {
      for (const id of ['abc', '0', '-1', '1.5']) assert.equal((await run(['rollback', id])).code, 2, id);
      assert.equal(agent.calls.length, 0);
    });
  });

  describe('deploys', () => {
    it('a table, --json, --limit', async () => {
      const r = await run(['deploys', '--limit', '5']);
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(callsOf('deploy.list')[0]!.params, { limit: 5 });
      assert.match(r.out, /^ID +WHEN +WHO +KIND +RESULT +CHANGE +DURATION\n 8 +20 s ago +ops +deploy +rolled back +env WEB_HEALTHY +14\.2s\n 7 +20 s ago +ops +deploy +succeeded +env WEB_TAG +14\.2s\n$/);
      const json = JSON.parse((await run(['deploys', '--json'])).out);
      assert.deepEqual(
        json.deploys.map((d: DeployInfo) => d.result),
        ['rolled_back', 'succeeded'],
      );
      assert.deepEqual(callsOf('deploy.list')[1]!.params, { limit: 20 }, 'the last 20 by default');
      assert.equal((await run(['deploys', '--limit', '0'])).code, 2);
      assert.equal((await run(['deploys'], { token: 'read-token' })).code, 0, 'reading needs only read');
    });
  });

  describe('restart, stop, start', () => {
    it('one-line confirmations; --json prints the result; an unknown service is exit 1; a read token exit 3', async () => {
      const restart = await run(['restart', 'web']);
      assert.equal(restart.code, 0, restart.err);
      assert.match(restart.out, /^restarted web on 127\.0\.0\.1:\d+\n$/);
      const stop = await run(['stop', 'web']);
      assert.match(stop.out, /^stopped web on 127\.0\.0\.1:\d+; it stays down until `deckhand start web`\n$/);
      const start = await run(['start', 'web', '--json']);
      assert.deepEqual(JSON.parse(start.out), { ok: true });
      assert.deepEqual(
        agent.calls.map((c) => [c.method, c.params]),
        [
          ['stack.restart', { service: 'web' }],
          ['stack.stop', { service: 'web' }],
          ['stack.start', { service: 'web' }],
        ],
      );
      const unknown = await run(['restart', 'nope']);
      assert.equal(unknown.code, 1);
      assert.match(unknown.err, /no service "nope" in stack app/);
      assert.equal((await run(['stop', 'web'], { token: 'read-token' })).code, 3);
      assert.equal((await run(['restart', 'bad/name'])).code, 2);
      assert.equal((await run(['restart'])).code, 2);
    });
  });
});
