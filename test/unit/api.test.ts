import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { normalizeFingerprint, parseTimeParam, scopeAllows } from '../../agent/api/protocol.js';
import { FailedAuthLimiter } from '../../agent/api/ratelimit.js';
import { dispatch, RpcFailure, type CallContext, type MethodTable } from '../../agent/api/rpc.js';
import { conflict, failed, invalid, notFound } from '../../agent/errors.js';
import { hashToken, TokenStore } from '../../agent/api/tokens.js';
import { AuditLog, verifyAudit } from '../../agent/events/audit.js';
import { EventLog } from '../../agent/events/log.js';
import { LogDemuxer, splitTimestamp } from '../../agent/duties/stack/logframes.js';
import { openStore, type Db } from '../../agent/store/db.js';

describe('protocol helpers', () => {
  it('scopes are ordered read < operate < admin', () => {
    assert.equal(scopeAllows('admin', 'read'), true);
    assert.equal(scopeAllows('operate', 'operate'), true);
    assert.equal(scopeAllows('read', 'operate'), false);
    assert.equal(scopeAllows('operate', 'admin'), false);
  });
  it('time params: durations back from now, or ISO times', () => {
    assert.equal(parseTimeParam('24h', 100_000_000), 100_000_000 - 86_400_000);
    assert.equal(parseTimeParam('2026-01-01T00:00:00Z'), Date.UTC(2026, 0, 1));
    assert.equal(parseTimeParam('soon'), null);
  });
  it('fingerprints ignore colons, case and a SHA256: prefix', () => {
    const hex = 'ab'.repeat(32);
    assert.equal(normalizeFingerprint(`SHA256:${'AB:'.repeat(31)}AB`), hex);
    assert.equal(normalizeFingerprint(hex.toUpperCase()), hex);
    assert.equal(normalizeFingerprint('abc'), null);
  });
});

describe('failed-auth limiter', () => {
  it('blocks an address for a minute after 10 failures within a minute', () => {
    const l = new FailedAuthLimiter();
    for (let i = 0; i < 9; i++) assert.equal(l.fail('a', 1000 + i), false);
    assert.equal(l.isBlocked('a', 2000), false);
    assert.equal(l.fail('a', 2000), true);
    assert.equal(l.isBlocked('a', 2001), true);
    assert.equal(l.isBlocked('b', 2001), false, 'other addresses unaffected');
    assert.equal(l.isBlocked('a', 62_001), false, 'a minute later it may try again');
  });
  it('failures older than the window do not count', () => {
    const l = new FailedAuthLimiter();
    for (let i = 0; i < 9; i++) l.fail('a', i);
    assert.equal(l.fail('a', 70_000), false);
  });
});

describe('with a database', () => {
  let dir: string;
  let db: Db;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dh-api-'));
    db = openStore(dir);
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const pick = (i: { name: string; scope: string } | null) => (i ? { name: i.name, scope: i.scope } : null);

  it('tokens: 256 random bits, verified by hash, revocable', () => {
    const store = new TokenStore(db);
    const { token } = store.create('ops', 'admin');
    assert.match(token, /^dh_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(pick(store.verify(token)), { name: 'ops', scope: 'admin' });
    assert.equal(store.verify(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')), null);
    assert.equal(store.verify(''), null);
    assert.throws(() => store.create('ops', 'read'), /exists/);
    store.revoke('ops');
    assert.equal(store.verify(token), null);
    assert.throws(() => store.revoke('ops'), /no token named "ops"/);
  });

  it('tokens revoked through another connection are seen (the token CLI)', () => {
    const store = new TokenStore(db);
    const { token } = store.create('ci', 'read');
    const identity = store.verify(token)!;
    assert.deepEqual(pick(identity), { name: 'ci', scope: 'read' });
    const other = openStore(dir);
    new TokenStore(other).revoke('ci');
    other.close();
    assert.equal(store.verify(token), null);
    assert.equal(store.isActive(identity), false);
  });

  it('a token created again under a revoked name is a new identity', () => {
    const store = new TokenStore(db);
    const old = store.verify(store.create('ops', 'admin').token)!;
    const other = openStore(dir);
    const cli = new TokenStore(other);
    cli.revoke('ops');
    const fresh = store.verify(cli.create('ops', 'read').token)!;
    other.close();
    assert.notEqual(fresh.id, old.id);
    assert.equal(store.isActive(old), false, 'the old admin session must not survive under the new name');
    assert.equal(store.isActive(fresh), true);
    assert.equal(fresh.scope, 'read');
  });

  it('tokens made before ids existed keep working and get ids', () => {
    db.exec(`CREATE TABLE api_tokens (name TEXT PRIMARY KEY, scope TEXT NOT NULL, hash BLOB NOT NULL, created_at INTEGER NOT NULL, last_used_at INTEGER)`);
    db.prepare("INSERT INTO schema_migrations (owner, version, applied_at) VALUES ('api', 1, 0)").run();
    const secret = 'dh_' + 'x'.repeat(43);
    db.prepare("INSERT INTO api_tokens VALUES ('old', 'operate', ?, 1, NULL)").run(hashToken(secret));
    const store = new TokenStore(db);
    const identity = store.verify(secret);
    assert.deepEqual(pick(identity), { name: 'old', scope: 'operate' });
    assert.equal(typeof identity!.id, 'number');
  });

  it('token ids are never reused, even for the newest one deleted', () => {
    const store = new TokenStore(db);
    store.create('a', 'read');
    const b = store.verify(store.create('b', 'read').token)!;
    store.revoke('b');
    const c = store.verify(store.create('b', 'read').token)!;
    assert.ok(c.id > b.id);
  });

  it('audit chain: intact, then each kind of tampering named', () => {
    const audit = new AuditLog(new EventLog(db));
    for (let i = 0; i < 5; i++) audit.append({ actor: 'ops', address: '127.0.0.1', action: 'stack.restart', ok: true, message: `call ${i}` });
    assert.deepEqual(verifyAudit(db), { ok: true, entries: 5, oldestTs: db.prepare('SELECT min(ts) FROM events WHERE hash IS NOT NULL').pluck().get() as number, pruned: 0 });
    const ids = db.prepare('SELECT id FROM events WHERE hash IS NOT NULL ORDER BY id').pluck().all() as number[];

    db.prepare('DELETE FROM events WHERE id = ?').run(ids[4]); // the newest
    const tail = verifyAudit(db);
    assert.equal(tail.ok, false);
    assert.match((tail as { reason: string }).reason, /newest entries were removed/);
  });

  it('audit chain: a changed actor is found', () => {
    const audit = new AuditLog(new EventLog(db));
    for (let i = 0; i < 3; i++) audit.append({ actor: 'ops', address: '10.0.0.1', action: 'deploy.start', ok: true, message: 'deploy' });
    const ids = db.prepare('SELECT id FROM events WHERE hash IS NOT NULL ORDER BY id').pluck().all() as number[];
    db.prepare("UPDATE events SET actor = 'someone-else' WHERE id = ?").run(ids[0]);
    const r = verifyAudit(db);
    assert.deepEqual(r.ok ? null : [r.badId, r.reason], [ids[0], `entry ${ids[0]} was changed after it was written`]);
  });

  describe('dispatch', () => {
    const methods: MethodTable = {
      'status.get': () => ({ ok: 'yes' }) as never,
      'token.revoke': ({ name }) => {
        if (name === 'ghost') throw new RpcFailure(-32001, 'no token named "ghost"');
        return { ok: true };
      },
      'token.list': () => {
        throw new Error('disk on fire');
      },
      'token.create': ({ name }) => {
        // A duty's domain errors, as a duty raises them: the API alone picks the code.
        if (name === 'nf') throw notFound('no such thing');
        if (name === 'busy') throw conflict('a deploy is already running');
        if (name === 'bad') throw failed('pg_dump: connection refused', { step: 'dump' });
        throw invalid('from is after to');
      },
    };
    const call = (scope: 'read' | 'admin'): CallContext => ({
      actor: 't',
      scope,
      address: '127.0.0.1',
      openStream: () => assert.fail('no streams here'),
      cancelStream: () => false,
    });
    const run = (text: string, scope: 'read' | 'admin' = 'admin') => {
      const internal: unknown[] = [];
      return dispatch(text, call(scope), { methods: () => methods, audit: new AuditLog(new EventLog(db)), onInternalError: (_m, e) => internal.push(e) });
    };
    const code = async (text: string, scope?: 'read' | 'admin') => (await run(text, scope))?.error?.code;

    it('maps each kind of bad request to its JSON-RPC error', async () => {
      assert.equal(await code('{"jsonrpc":"2.0",'), -32700);
      assert.equal(await code('[{"jsonrpc":"2.0","id":1,"method":"status.get"}]'), -32600);
      assert.equal(await code('"hello"'), -32600);
      assert.equal(await code('{"id":1,"method":"status.get"}'), -32600);
      assert.equal(await code('{"jsonrpc":"2.0","id":{},"method":"status.get"}'), -32600);
      assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"shell.exec"}'), -32601);
      assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"__proto__"}'), -32601);
      assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"token.revoke","params":{"name":"../../etc/passwd"}}'), -32602);
      assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"token.revoke","params":{"name":"x","extra":1}}'), -32602);
      assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"token.revoke","params":{"name":"x"}}', 'read'), -32003);
      assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"token.revoke","params":{"name":"ghost"}}'), -32001);
      assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"token.list"}'), -32603);
      assert.equal(await code('{"jsonrpc":"2.0","id":1,"method":"metrics.query","params":{"series":"x"}}'), -32601, 'no handler: duty not configured');
    });

    it('maps domain errors from duties to their codes, keeping message and details', async () => {
      const err = async (name: string) => (await run(`{"jsonrpc":"2.0","id":1,"method":"token.create","params":{"name":"${name}","scope":"read"}}`))?.error;
      assert.deepEqual(await err('nf'), { code: -32001, message: 'no such thing' });
      assert.deepEqual(await err('busy'), { code: -32002, message: 'a deploy is already running' });
      assert.deepEqual(await err('bad'), { code: -32004, message: 'pg_dump: connection refused', data: { step: 'dump' } });
      assert.deepEqual(await err('other'), { code: -32602, message: 'from is after to' });
      const audited = db.prepare("SELECT message FROM events WHERE type = 'audit' AND message LIKE 'token.create failed%' ORDER BY id").pluck().all();
      assert.deepEqual(audited, ['token.create failed: no such thing', 'token.create failed: a deploy is already running', 'token.create failed: pg_dump: connection refused', 'token.create failed: from is after to']);
    });

    it('answers with the request id; a notification gets no answer', async () => {
      assert.deepEqual(await run('{"jsonrpc":"2.0","id":"abc","method":"status.get"}'), { jsonrpc: '2.0', id: 'abc', result: { ok: 'yes' } });
      assert.equal(await run('{"jsonrpc":"2.0","method":"status.get"}'), null);
    });

    it('audits operate/admin calls, allowed or refused, but not reads', async () => {
      await run('{"jsonrpc":"2.0","id":1,"method":"status.get"}');
      await run('{"jsonrpc":"2.0","id":1,"method":"token.revoke","params":{"name":"x"}}');
      await run('{"jsonrpc":"2.0","id":1,"method":"token.revoke","params":{"name":"x"}}', 'read');
      const rows = db.prepare("SELECT subject, message FROM events WHERE type = 'audit' ORDER BY id").all() as { subject: string; message: string }[];
      assert.deepEqual(rows.map((r) => r.message), ['token.revoke ok', 'token.revoke refused: token scope read < admin']);
      assert.deepEqual(verifyAudit(db), { ok: true, entries: 2, oldestTs: db.prepare('SELECT min(ts) FROM events WHERE hash IS NOT NULL').pluck().get() as number, pruned: 0 });
    });
  });
});

describe('docker log frames', () => {
  const frame = (kind: number, text: string) => {
    const payload = Buffer.from(text);
    const head = Buffer.alloc(8);
    head[0] = kind;
    head.writeUInt32BE(payload.length, 4);
    return Buffer.concat([head, payload]);
  };
  it('splits frames into lines per stream, across chunk boundaries', () => {
    const d = new LogDemuxer();
    const all = Buffer.concat([frame(1, 'one\ntw'), frame(2, 'err\n'), frame(1, 'o\n')]);
    const out = [...d.push(all.subarray(0, 5)), ...d.push(all.subarray(5, 13)), ...d.push(all.subarray(13))];
    assert.deepEqual(out, [
      { stream: 'stdout', line: 'one' },
      { stream: 'stderr', line: 'err' },
      { stream: 'stdout', line: 'two' },
    ]);
    assert.deepEqual(d.flush(), []);
  });
  it('a TTY container is one raw stream', () => {
    const d = new LogDemuxer(true);
    assert.deepEqual(d.push(Buffer.from('a\r\nb')), [{ stream: 'stdout', line: 'a' }]);
    assert.deepEqual(d.flush(), [{ stream: 'stdout', line: 'b' }]);
  });
  it('reads the timestamp docker puts in front', () => {
    assert.deepEqual(splitTimestamp('2026-11-23T17:00:00.123456789Z hello world'), { ts: '2026-11-23T17:00:00.123Z', text: 'hello world' });
    assert.equal(splitTimestamp('no stamp here').text, 'no stamp here');
  });
});
