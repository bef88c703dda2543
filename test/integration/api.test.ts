// The WebSocket API against a real agent process over real TLS: auth on the
// upgrade, scopes, audit log, revocation, methods, streams.
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_BIN, freePort, removeDir, waitFor } from '../helpers/agent.js';
import { CONDITION_TYPES } from '../../agent/events/catalog.js';
import { connect, startApiAgent, type ApiAgent, type Refusal } from '../helpers/api.js';
import { containerState } from '../helpers/observe.js';
import { requireDocker, TestStack } from '../helpers/stack.js';

async function refused(p: Promise<unknown>): Promise<Refusal> {
  try {
    await p;
  } catch (err) {
    return err as Refusal;
  }
  assert.fail('expected the upgrade to be refused');
}

function agentCli(a: ApiAgent, ...args: string[]) {
  return spawnSync(process.execPath, [AGENT_BIN, ...args, '--config', a.agent.configFile], { encoding: 'utf8' });
}

describe('API: authentication, scopes and audit', { timeout: 120_000 }, () => {
  let a: ApiAgent;
  before(async () => {
    // Failed authentications are audited as counts when their window closes: a short one here.
    a = await startApiAgent({ config: { host: { name: 'api-host' } }, env: { DECKHAND_AUTH_AUDIT_WINDOW_MS: '300' } });
  });
  after(async () => {
    await a.agent.stop();
    removeDir(a.agent.dir);
  });

  it('refuses a missing or wrong token with 401 before any upgrade', async () => {
    assert.equal((await refused(connect(a.url, undefined))).status, 401);
    assert.equal((await refused(connect(a.url, 'dh_not-a-real-token'))).status, 401);
    assert.equal((await refused(connect(a.url.replace('/v1', '/v2'), a.token('path', 'read')))).status, 404);
  });

  it('a read token reads and cannot do anything above read (-32003), and that is audited', async () => {
    const c = await connect(a.url, a.token('reader', 'read'));
    const status = await c.call('status.get');
    assert.equal(status.result.host.name, 'api-host');
    assert.equal(status.result.agent.version, '0.1.0');
    for (const [method, params] of [['token.create', { name: 'x', scope: 'admin' }], ['token.list', {}], ['token.revoke', { name: 'reader' }]] as const) {
      const r = await c.call(method, params);
      assert.equal(r.error?.code, -32003, method);
      assert.match(r.error.message, /needs a token of scope admin/);
    }
    c.close();
    const admin = await connect(a.url, a.token('auditor', 'admin'));
    await new Promise((r) => setTimeout(r, 700)); // the failed-auth window of the tests before closes
    const events = (await admin.call('events.list', { type: 'audit', limit: 100 })).result.events;
    const refusedCreate = events.find((e: any) => e.subject === 'token.create' && e.actor === 'reader');
    assert.ok(refusedCreate, 'the refused admin call is in the audit log');
    assert.equal(refusedCreate.address, '127.0.0.1');
    assert.equal(refusedCreate.data.ok, false);
    assert.ok(events.some((e: any) => e.subject === 'auth' && e.actor === '-' && e.data.ok === false), 'failed auth is audited');
    admin.close();
  });

  it('an admin token manages tokens; the secret is shown once and never listed', async () => {
    const c = await connect(a.url, a.token('boss', 'admin'));
    const created = (await c.call('token.create', { name: 'ci', scope: 'operate' })).result;
    assert.match(created.token, /^dh_[A-Za-z0-9_-]{43}$/, '256 bits, base64url');
    assert.equal((await c.call('token.create', { name: 'ci', scope: 'read' })).error.code, -32002);
    const list = (await c.call('token.list')).result.tokens;
    assert.deepEqual(list.find((t: any) => t.name === 'ci'), { name: 'ci', scope: 'operate', createdAt: list.find((t: any) => t.name === 'ci').createdAt });
    assert.ok(!JSON.stringify(list).includes(created.token));
    // The new token works, then is revoked: its open connection is closed.
    const ci = await connect(a.url, created.token);
    assert.equal((await ci.call('status.get')).result?.host.name, 'api-host');
    // Of scope operate: an operate method passes the scope check (this agent has no stack to
    // restart), an admin one does not.
    const operateCall = await ci.call('stack.restart', { service: 'web' });
    assert.equal(operateCall.error?.code, -32601, JSON.stringify(operateCall));
    assert.match(operateCall.error.message, /not available on this agent/);
    assert.equal((await ci.call('token.list')).error?.code, -32003);
    assert.deepEqual((await c.call('token.revoke', { name: 'ci' })).result, { ok: true });
    assert.equal((await ci.closed).code, 4001);
    assert.equal((await refused(connect(a.url, created.token))).status, 401);
    assert.equal((await c.call('token.revoke', { name: 'ci' })).error.code, -32001);
    c.close();
  });

  it('a token revoked on the server with the CLI closes its open connections', async () => {
    const token = a.token('laptop', 'read');
    const c = await connect(a.url, token);
    const t0 = Date.now();
    const r = agentCli(a, 'token', 'revoke', 'laptop');
    assert.equal(r.status, 0, r.stderr);
    assert.equal((await c.closed).code, 4001);
    assert.ok(Date.now() - t0 < 3000);
  });

  it('token create prints the token alone on stdout, and only its hash is stored', () => {
    const r = agentCli(a, 'token', 'create', '--name', 'script', '--scope', 'read');
    assert.equal(r.status, 0);
    const token = r.stdout.trim();
    assert.match(r.stdout, /^dh_[A-Za-z0-9_-]{43}\n$/);
    const db = new Database(join(a.agent.dataDir, 'deckhand.db'), { readonly: true });
    const dump = JSON.stringify(db.prepare('SELECT * FROM api_tokens').all());
    const events = JSON.stringify(db.prepare('SELECT * FROM events').all());
    db.close();
    assert.ok(!dump.includes(token) && !events.includes(token), 'the secret is nowhere in the database');
    assert.ok(!a.agent.output.includes(token), 'nor in the log');
    const list = agentCli(a, 'token', 'list');
    assert.match(list.stdout, /^script\s+read\s/m);
    assert.equal(agentCli(a, 'token', 'create', '--name', 'script', '--scope', 'read').status, 1);
    assert.equal(agentCli(a, 'token', 'create', '--name', '../x', '--scope', 'read').status, 2);
    assert.equal(agentCli(a, 'token', 'create', '--name', 'y', '--scope', 'root').status, 2);
  });

  it('the audit chain verifies, and tampering is found and named', () => {
    assert.equal(agentCli(a, 'audit', 'verify').status, 0);
    const file = join(a.agent.dataDir, 'deckhand.db');
    const ids = () => {
      const db = new Database(file, { readonly: true });
      const r = db.prepare('SELECT id FROM events WHERE hash IS NOT NULL ORDER BY id').pluck().all() as number[];
      db.close();
      return r;
    };
    const edit = (sql: string, ...args: unknown[]) => {
      const db = new Database(file);
      db.prepare(sql).run(...args);
      db.close();
    };
    const [first, second, third] = ids();
    // Changed entry.
    edit("UPDATE events SET message = 'nothing happened' WHERE id = ?", second);
    let r = agentCli(a, 'audit', 'verify');
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`BROKEN at entry ${second}: entry ${second} was changed`));
    // Removed entry: the next one no longer follows.
    edit('DELETE FROM events WHERE id = ?', second);
    r = agentCli(a, 'audit', 'verify');
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`BROKEN at entry ${third}: entry ${third} does not follow`));
    assert.ok(first! < third!);
  });
});

describe('API: methods and streams on a real stack', { timeout: 180_000 }, () => {
  let a: ApiAgent;
  let stack: TestStack;
  before(async () => {
    requireDocker();
    stack = TestStack.unique('api', {
      web: { environment: { PORT: String(await freePort()) } },
      // "$$" is compose's escape for a literal "$".
      // 10,000 lines of 1 kB, then quiet: enough to swamp a client that stops reading.
      chatty: {
        image: 'deckhand-test/busybox:latest',
        command: ['sh', '-c', 'l=$$(head -c 1000 /dev/zero | tr "\\0" x); i=0; while [ $$i -lt 10000 ]; do echo "$$i $$l"; i=$$((i+1)); done; exec sleep 86400'],
      },
      talker: { image: 'deckhand-test/busybox:latest', command: ['sh', '-c', 'i=0; while true; do i=$$((i+1)); echo "tick $$i"; echo "warn $$i" >&2; sleep 0.2; done'] },
    });
    await stack.up();
    // diskLowPercent 1: every disk is "low", so status.get has an open alert to report.
    a = await startApiAgent({ config: { stack: { project: stack.project, dir: stack.dir }, alerts: { diskLowPercent: 1 } }, env: { DECKHAND_API_HEARTBEAT_MS: '1500' } });
  });
  after(async () => {
    await a?.agent.stop();
    await stack?.down();
    if (a) removeDir(a.agent.dir);
    if (stack) removeDir(stack.dir);
  });

  it('stack.ps lists services with state, health, image, restarts and start time', async () => {
    const c = await connect(a.url, a.token('ps', 'read'));
    await waitFor(async () => (await c.call('stack.ps')).result.services.length === 3, 10_000);
    const { services } = (await c.call('stack.ps')).result;
    const web = services.find((s: any) => s.service === 'web');
    assert.equal(web.state, 'running');
    assert.match(web.image, /^deckhand-test\/web/);
    assert.match(web.imageId, /^sha256:/);
    assert.equal(web.restarts, 0);
    const id = (await stack.docker('inspect', '-f', '{{.Id}}', await stack.containerId('web'))).trim();
    assert.equal(web.containerId, id);
    assert.equal(web.imageId, (await stack.docker('inspect', '-f', '{{.Image}}', id)).trim());
    assert.equal(web.startedAt, (await containerState(id)).startedAt, 'the start time the engine gives');
    c.close();
  });

  it('metrics.series and metrics.query (default step, bad input)', async () => {
    const c = await connect(a.url, a.token('metrics', 'read'));
    await waitFor(async () => {
      const { series } = (await c.call('metrics.series')).result;
      return ['service.mem:talker', 'host.cpu'].every((n) => series.includes(n));
    }, 15_000);
    const q = (await c.call('metrics.query', { series: 'host.mem.used', from: '10m' })).result;
    assert.equal(q.step, 'raw');
    assert.ok(q.points.length >= 1);
    const [ts, min, avg, max] = q.points[0];
    assert.ok(ts > Date.now() - 600_000 && min === avg && avg === max && min > 0);
    const month = await c.call('metrics.query', { series: 'host.cpu', from: '30d' });
    assert.equal(month.result?.step, '1h', JSON.stringify(month));
    assert.equal((await c.call('metrics.query', { series: 'nope.nothing' })).error.code, -32001);
    assert.equal((await c.call('metrics.query', { series: 'host.cpu', from: 'yesterday-ish' })).error.code, -32602);
    assert.equal((await c.call('metrics.query', { series: 'host.cpu', step: '5m' })).error.code, -32602);
    c.close();
  });

  it('stack.logs: a tail that ends, both streams, one service', async () => {
    const c = await connect(a.url, a.token('logs', 'read'));
    // More than six lines on each stream exist, so a tail of 6 has to cut.
    const lastTick = async () => Number(/tick (\d+)/.exec(await stack.docker('logs', '--tail', '1', await stack.containerId('talker')))?.[1] ?? 0);
    await waitFor(async () => (await lastTick()) > 6, 10_000, () => 'talker printed 7 ticks');
    const started = await c.call('stack.logs', { service: 'talker', tail: 6 });
    const id = started.result.stream;
    assert.equal(typeof id, 'number');
    await waitFor(() => c.notifications.some((n) => n.stream === id && n.event.type === 'end'), 10_000);
    const events = c.notifications.filter((n) => n.stream === id).map((n) => n.event);
    const end = events.pop();
    assert.equal(end.ok, true);
    assert.equal(events.length, 6);
    assert.ok(events.every((e) => e.type === 'line' && e.service === 'talker'));
    assert.ok(events.some((e) => e.stream === 'stderr' && /^warn \d+$/.test(e.text)));
    assert.ok(events.some((e) => e.stream === 'stdout' && /^tick \d+$/.test(e.text)));
    const times = events.map((e) => e.ts);
    assert.deepEqual([...times].sort(), times, 'in time order');
    assert.equal((await c.call('stack.logs', { service: 'ghost' })).error.code, -32001);
    assert.equal((await c.call('stack.logs', { service: '../etc' })).error.code, -32602);
    c.close();
  });

  it('stack.logs follow: new lines arrive, survive a container restart, and stream.cancel stops them', async () => {
    const c = await connect(a.url, a.token('follow', 'read'));
    const id = (await c.call('stack.logs', { service: 'talker', tail: 0, follow: true })).result.stream;
    const count = () => c.notifications.filter((n) => n.stream === id).length;
    await waitFor(() => count() >= 5, 10_000, () => 'live lines');
    // Remove the container: deckhand recreates it, and the stream follows the successor.
    await stack.docker('rm', '-f', await stack.containerId('talker'));
    // No `compose up` here: deckhand's supervisor recreates the missing container itself.
    const before = c.notifications.filter((n) => n.stream === id && n.event.text === 'tick 1').length;
    await waitFor(() => c.notifications.filter((n) => n.stream === id && n.event.text === 'tick 1').length > before, 45_000, () => `lines of the new container; last: ${JSON.stringify(c.notifications.at(-1))}`);
    assert.deepEqual((await c.call('stream.cancel', { stream: id })).result, { ok: true });
    const n = count();
    // The control: a second follow on the same connection. Once it has lines printed well
    // after the cancel, the first stream would have had them too, had it still run.
    const tick = (e: { text?: string }) => Number(/^tick (\d+)$/.exec(e.text ?? '')?.[1] ?? -1);
    // The last line it had: of the successor container, whose ticks count from 1 again.
    const lastTick = tick(c.notifications.filter((x) => x.stream === id && tick(x.event) >= 0).at(-1)!.event);
    const control = (await c.call('stack.logs', { service: 'talker', tail: 0, follow: true })).result.stream;
    await waitFor(() => c.notifications.some((x) => x.stream === control && tick(x.event) > lastTick + 5), 15_000, () => `the control stream past tick ${lastTick + 5}`);
    assert.equal(count(), n, 'nothing after cancel');
    await c.call('stream.cancel', { stream: control });
    assert.deepEqual(c.notifications.filter((x) => x.stream === id).at(-1).event, { type: 'end', ok: true, cancelled: true });
    assert.equal((await c.call('stream.cancel', { stream: id })).error.code, -32001);
    c.close();
  });

  it('status.get carries services, resources and open alerts', async () => {
    const c = await connect(a.url, a.token('status', 'read'));
    const s = (await c.call('status.get')).result;
    assert.deepEqual(s.services.map((x: any) => x.service).sort(), ['chatty', 'talker', 'web']);
    assert.ok(s.resources.memTotal > 0 && s.resources.disks.some((d: any) => d.mount === '/'));
    const health = (await a.agent.get('/health')).json();
    assert.equal(s.health.status, health.status, 'the status /health gives');
    // diskLowPercent 1: disk.low is open for /, with the message of the event that raised it.
    const root = s.alerts.find((x: any) => x.type === 'disk.low' && x.subject === '/');
    assert.match(root?.message ?? '', /^disk \/ is [\d.]+% full \(threshold 1%\)$/, JSON.stringify(s.alerts));
    assert.ok(Date.parse(root.since) <= Date.now());
    // And the open alerts are exactly the conditions whose latest event is not a .resolved.
    const events = (await c.call('events.list', { limit: 1000 })).result.events as { type: string; subject?: string }[];
    const latest = new Map<string, string>();
    for (const e of events) {
      const base = e.type.replace(/\.resolved$/, '');
      if ((CONDITION_TYPES as readonly string[]).includes(base) && !latest.has(`${base} ${e.subject}`)) latest.set(`${base} ${e.subject}`, e.type);
    }
    const open = [...latest].filter(([, type]) => !type.endsWith('.resolved')).map(([key]) => key).sort();
    assert.deepEqual(s.alerts.map((x: any) => `${x.type} ${x.subject}`).sort(), open);
    c.close();
  });

  it('a client that stops reading its stream is dropped, and the agent says so', async () => {
    const c = await connect(a.url, a.token('slow', 'read'));
    const other = await connect(a.url, a.token('other', 'read'));
    const socket = (c.ws as any)._socket as import('node:net').Socket;
    // The 10,000 lines must all be there, or the backlog might stay under the limit.
    await waitFor(async () => (await stack.docker('logs', '--tail', '1', await stack.containerId('chatty'))).startsWith('9999 '), 60_000, () => 'chatty done printing');
    socket.pause(); // read nothing more: the agent's send buffer for us only grows
    c.sendRaw(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'stack.logs', params: { service: 'chatty', tail: 10000, follow: true } }));
    await waitFor(() => a.agent.logLines().some((l) => l.msg === 'dropped a client that did not keep up with its streams' && l.actor === 'slow'), 45_000, () => 'slow client dropped');
    assert.ok((await other.call('status.get')).result, 'others still served');
    socket.resume();
    await c.closed;
    other.close();
  });

  it('heartbeats drop a connection that stops answering pings', async () => {
    const c = await connect(a.url, a.token('silent', 'read'));
    const socket = (c.ws as any)._socket as import('node:net').Socket;
    socket.pause(); // no pongs from here on: two heartbeats (1.5 s each) and it is gone
    await new Promise((r) => setTimeout(r, 4000));
    socket.resume();
    const closed = await Promise.race([c.closed, new Promise((r) => setTimeout(() => r('still open'), 3000))]);
    assert.notEqual(closed, 'still open');
  });
});
