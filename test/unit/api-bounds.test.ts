// What one request may cost and say: bounded walking, bounded errors, capped
// audit entries, pages by count and bytes, replies that cannot be built.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { boundProblems, excerpt, MAX_PARAM_NODES, oversizedParams } from '../../agent/api/bounds.js';
import { REPLY_BUDGET_BYTES, takePage } from '../../agent/api/paging.js';
import { dispatch, type CallContext, type MethodTable } from '../../agent/api/rpc.js';
import { serialize } from '../../agent/api/session.js';
import { eventMethods } from '../../agent/api/methods/events.js';
import { failed } from '../../agent/errors.js';
import { AuditLog, verifyAudit } from '../../agent/events/audit.js';
import { EventLog } from '../../agent/events/log.js';
import { openStore, type Db } from '../../agent/store/db.js';

const call: CallContext = { actor: 'ops', scope: 'admin', address: '127.0.0.1', openStream: () => assert.fail('no streams'), cancelStream: () => false };

describe('bounds of one request', () => {
  let dir: string;
  let db: Db;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'deckhand-bounds-'));
    db = openStore(dir);
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const auditRows = () => db.prepare("SELECT message, data, length(message) + length(data) AS bytes FROM events WHERE type = 'audit' ORDER BY id").all() as { message: string; data: string; bytes: number }[];
  const run = (params: unknown, methods: MethodTable = { 'deploy.start': () => ({ stream: 1 }) }) =>
    dispatch(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'deploy.start', params }), call, { methods: () => methods, audit: new AuditLog(new EventLog(db)), onInternalError: () => {} });

  it('excerpts say how long the rest was', () => {
    assert.equal(excerpt('short'), 'short');
    assert.equal(excerpt('x'.repeat(1000)), `${'x'.repeat(200)}… (1000 characters)`);
    const { shown, more } = boundProblems(Array.from({ length: 50 }, (_, i) => ({ path: `k${i}`, message: 'm'.repeat(500) })));
    assert.equal(shown.length, 20);
    assert.equal(more, 30);
    assert.ok(shown.every((p) => p.message.length < 230));
  });

  it('oversized params are refused before they are walked, at a cost that does not grow with them', () => {
    assert.equal(oversizedParams({ env: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`K${i}`, 'v'])) }), null, 'the largest legal env passes');
    assert.match(oversizedParams({ env: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`K${i}`, 'v'])) }) ?? '', /more than 256 entries/);
    let deep: unknown = 1;
    for (let i = 0; i < 50; i++) deep = { d: deep };
    assert.match(oversizedParams(deep) ?? '', /nested deeper/);
    const wide = Array.from({ length: 20 }, () => Array.from({ length: 200 }, () => 0));
    assert.match(oversizedParams({ a: wide }) ?? '', new RegExp(`more than ${MAX_PARAM_NODES} values`));
  });

  it('80,000 invalid env keys: a short refusal, a short audit entry, in milliseconds', async () => {
    const env = Object.fromEntries(Array.from({ length: 80_000 }, (_, i) => [`bad key ${i}`, 'v']));
    const started = performance.now();
    const reply = await run({ env });
    const ms = performance.now() - started;
    assert.equal(reply?.error?.code, -32602);
    assert.ok(JSON.stringify(reply).length < 2000, `reply of ${JSON.stringify(reply).length} bytes`);
    assert.ok(ms < 200, `took ${ms} ms`);
    const [row] = auditRows();
    assert.ok(row && row.bytes < 8192, `audit entry of ${row?.bytes} bytes`);
  });

  it('many invalid values: at most 20 problems in data and in the audit entry, the rest counted', async () => {
    const env = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`K${i}`, `bad\nvalue`]));
    const reply = await run({ env });
    const data = reply?.error?.data as unknown[];
    assert.equal(data.length, 20);
    assert.match(reply!.error!.message, /\(and 130 more problems\)$/);
    const audited = JSON.parse(auditRows()[0]!.data) as { issues: unknown[]; more: number };
    assert.deepEqual([audited.issues.length, audited.more], [20, 130]);
  });

  it('a 1 MiB unknown key is not echoed: neither in the reply nor the audit log', async () => {
    const key = 'k'.repeat(1 << 20);
    const reply = await run({ [key]: 1 });
    assert.equal(reply?.error?.code, -32602);
    assert.ok(JSON.stringify(reply).length < 2000, `reply of ${JSON.stringify(reply).length} bytes`);
    assert.ok(auditRows()[0]!.bytes < 8192);
  });

  it("a duty's long error keeps to the bounds too: 20 problems in data, the message cut", async () => {
    const reply = await run({}, {
      'deploy.start': () => {
        throw failed('x'.repeat(100_000), Array.from({ length: 50 }, (_, i) => ({ path: `p${i}`, message: 'm' })));
      },
    });
    assert.equal(reply?.error?.code, -32004);
    assert.equal((reply?.error?.data as unknown[]).length, 20);
    assert.ok(reply!.error!.message.length < 4100, `${reply!.error!.message.length} characters`);
  });

  it('an audit entry is capped whatever the caller put in it, and the chain still verifies', () => {
    const audit = new AuditLog(new EventLog(db));
    audit.append({ actor: 'ops', address: '127.0.0.1', action: 'deploy.start', ok: false, message: 'm'.repeat(1 << 20), data: { blob: 'x'.repeat(1 << 20), other: 1 } });
    const [row] = auditRows();
    assert.ok(row!.bytes < 8192, `${row!.bytes} bytes`);
    assert.deepEqual(JSON.parse(row!.data), { ok: false, truncated: true, bytes: Buffer.byteLength(JSON.stringify({ ok: false, blob: 'x'.repeat(1 << 20), other: 1 })), keys: ['blob', 'other'] });
    assert.equal(verifyAudit(db).ok, true);
  });

  it('pages stop at the limit or the byte budget, and say where the next begins', () => {
    const items = Array.from({ length: 10 }, (_, i) => ({ id: 10 - i, text: 'x'.repeat(100) }));
    assert.deepEqual(takePage(items, 3, (e) => String(e.id)).next, '8');
    assert.equal(takePage(items, 10, (e) => String(e.id)).next, undefined);
    const byBytes = takePage(items, 10, (e) => String(e.id), 380); // 3 items of 119 bytes and the brackets
    assert.deepEqual([byBytes.items.length, byBytes.next], [3, '8']);
  });

  it('events.list: 21 rows of 1 MiB written before the cap come back in pages under 4 MiB, every row once', () => {
    const log = new EventLog(db);
    const insert = db.prepare("INSERT INTO events (ts, type, severity, subject, message, data) VALUES (?, 'audit', 'warning', 'deploy.start', ?, ?)");
    for (let i = 0; i < 21; i++) insert.run(Date.now(), 'm'.repeat(1 << 20), JSON.stringify({ blob: 'x'.repeat(1 << 20) }));
    for (let i = 0; i < 30; i++) log.record({ type: 'disk.low', severity: 'warning', subject: '/', message: `small ${i}` });
    const list = eventMethods(log)['events.list']!;
    const seen: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = list({ limit: 1000, ...(cursor ? { cursor } : {}) }, call) as { events: { id: number; data?: unknown }[]; next?: string };
      const bytes = Buffer.byteLength(JSON.stringify(page));
      assert.ok(bytes <= REPLY_BUDGET_BYTES, `a page of ${bytes} bytes`);
      seen.push(...page.events.map((e) => e.id));
      cursor = page.next;
      pages++;
    } while (cursor && pages < 100);
    assert.equal(seen.length, 51);
    assert.equal(new Set(seen).size, 51);
    const big = (list({ limit: 1000 }, call) as { events: { id: number; message: string; data?: unknown }[] }).events.find((e) => e.id === 1)!;
    assert.deepEqual(big.data, { truncated: true, bytes: (1 << 20) + 11 });
    assert.match(big.message, /… \(1048576 characters\)$/);
  });

  it('a reply that cannot be built is an error reply to its id, not a crash', () => {
    const huge = serialize({ jsonrpc: '2.0', id: 3, result: { blob: 'x'.repeat(REPLY_BUDGET_BYTES + 1) } });
    assert.deepEqual(JSON.parse(huge).id, 3);
    assert.equal(JSON.parse(huge).error.code, -32603);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.equal(JSON.parse(serialize({ jsonrpc: '2.0', id: 4, result: cyclic })).error.code, -32603);
    const event = JSON.parse(serialize({ jsonrpc: '2.0', method: 'stream', params: { stream: 2, event: { type: 'line', text: 'x'.repeat(REPLY_BUDGET_BYTES) } } }));
    assert.deepEqual([event.params.stream, event.params.event.type], [2, 'dropped']);
  });
});
