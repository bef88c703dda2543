// Bounded state: each table's retention rule against a real SQLite file, with
// rows written at old times through an injected clock.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { parseConfigText } from '../../agent/config/load.js';
import { AlertsDuty, DELIVERY, deleteDeadDeliveries, webhookId } from '../../agent/duties/alerts/duty.js';
import type { DutyContext } from '../../agent/duty.js';
import { AUDIT_RETENTION_MS, AuditChainBroken, AuditLog, describeIntact, readAnchor, verifyAudit } from '../../agent/events/audit.js';
import { Conditions } from '../../agent/events/conditions.js';
import { EVENT_RETENTION_MS, EventLog } from '../../agent/events/log.js';
import { EventRetention } from '../../agent/events/retention.js';
import { OncePerWindow } from '../../agent/events/throttle.js';
import { createLogger } from '../../agent/logger.js';
import { openStore, type Db } from '../../agent/store/db.js';
import { pruneInBatches } from '../../agent/store/prune.js';

const DAY = 24 * 3600_000;
const NOW = Date.UTC(2027, 5, 1);

/** A clock the test moves by hand. */
function clock(start: number) {
  const c = { t: start, now: () => c.t };
  return c;
}

let dir: string;
let db: Db;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dh-retention-'));
  db = openStore(dir);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const count = (sql: string, ...args: unknown[]) => db.prepare(sql).pluck().get(...args) as number;

describe('events: kept 90 days', () => {
  it('prunes events past 90 days, keeps newer ones, audit entries and the events of open conditions', async () => {
    const c = clock(NOW - 200 * DAY);
    const log = new EventLog(db, undefined, c.now);
    const conditions = new Conditions(log);
    const audit = new AuditLog(log);
    for (let i = 0; i < 5; i++) log.record({ type: 'agent.started', severity: 'info', message: `old ${i}` });
    conditions.raise('disk.low', '/', 'warning', 'disk / is full'); // still open: its event must stay
    conditions.raise('service.down', 'web', 'critical', 'web is down');
    conditions.clear('service.down', 'web', 'web is back'); // closed: both go
    audit.append({ actor: 'ops', address: '127.0.0.1', action: 'stack.restart', ok: true, message: 'old call' });
    c.t = NOW - EVENT_RETENTION_MS + 1000; // just inside the window
    log.record({ type: 'deploy.succeeded', severity: 'info', message: 'recent' });

    const retention = new EventRetention(log, (err) => assert.fail(String(err)));
    const pruned = await retention.runOnce(NOW);
    assert.deepEqual(pruned, { events: 7, audit: 0 });
    assert.deepEqual(
      (db.prepare('SELECT type FROM events ORDER BY id').pluck().all() as string[]),
      ['disk.low', 'audit', 'deploy.succeeded'],
    );
    const open = conditions.list()[0]!;
    assert.equal(log.byIds([open.eventId])[0]?.message, 'disk / is full', 'an open alert still shows what raised it');

    // Once it clears, the old raise is an ordinary old event.
    c.t = NOW;
    conditions.clear('disk.low', '/', 'fine again');
    assert.equal((await retention.runOnce(NOW)).events, 1);
    assert.deepEqual(db.prepare('SELECT type FROM events ORDER BY id').pluck().all(), ['audit', 'deploy.succeeded', 'disk.low.resolved']);
  });

  it('a run deletes at most its budget, in batches; the next run carries on', async () => {
    const c = clock(NOW - 100 * DAY);
    const log = new EventLog(db, undefined, c.now);
    for (let i = 0; i < 95; i++) log.record({ type: 'service.restarted', severity: 'info', subject: 'web', message: `restart ${i}` });
    const batches: number[] = [];
    const budget = { batchSize: 10, maxBatches: 4 };
    const deleteBatch = (limit: number) => {
      const n = log.pruneBatch(NOW, limit);
      batches.push(n);
      return n;
    };
    assert.equal(await pruneInBatches(deleteBatch, budget), 40);
    assert.deepEqual(batches, [10, 10, 10, 10]);
    assert.equal(count('SELECT count(*) FROM events'), 55);
    const retention = new EventRetention(log, (err) => assert.fail(String(err)), budget);
    assert.equal((await retention.runOnce(NOW)).events, 40);
    assert.equal((await retention.runOnce(NOW)).events, 15, 'the last run stops at the first short batch');
    assert.equal(count('SELECT count(*) FROM events'), 0);
  });

  it('yields to the event loop between batches', async () => {
    let timerRan = false;
    setImmediate(() => (timerRan = true));
    let batches = 0;
    await pruneInBatches(() => {
      batches++;
      if (batches === 2) assert.equal(timerRan, true, 'a callback queued before the prune ran between its batches');
      return batches < 3 ? 5 : 0;
    }, { batchSize: 5, maxBatches: 10 });
    assert.equal(batches, 3);
  });

  it('a stopping agent ends the run after the current batch', async () => {
    let batches = 0;
    let stopping = false;
    const total = await pruneInBatches(() => {
      batches++;
      stopping = true;
      return 5;
    }, { batchSize: 5, maxBatches: 10 }, () => stopping);
    assert.deepEqual([batches, total], [1, 5]);
  });
});

describe('audit entries: kept 400 days, the chain verifiable after pruning', () => {
  /** 10 entries 500 days ago, 5 just now; returns the clock, the log and the ids. */
  function chain() {
    const c = clock(NOW - 500 * DAY);
    const log = new EventLog(db, undefined, c.now);
    const audit = new AuditLog(log);
    const call = (i: number) => audit.append({ actor: 'ops', address: '10.0.0.1', action: 'deploy.start', ok: true, message: `call ${i}` });
    for (let i = 0; i < 10; i++) {
      c.t += 60_000;
      call(i);
    }
    c.t = NOW - 1000;
    for (let i = 10; i < 15; i++) call(i);
    const ids = db.prepare('SELECT id FROM events WHERE hash IS NOT NULL ORDER BY id').pluck().all() as number[];
    return { c, log, audit, ids };
  }
  const edit = (sql: string, ...args: unknown[]) => db.prepare(sql).run(...args);

  it('prunes the oldest as a prefix, anchors the chain on the last pruned entry, and says from when it is verified', async () => {
    const { log, ids } = chain();
    const lastPrunedHash = db.prepare('SELECT hash FROM events WHERE id = ?').pluck().get(ids[9]) as string;
    const retention = new EventRetention(log, (err) => assert.fail(String(err)), { batchSize: 4, maxBatches: 10 });
    assert.deepEqual(await retention.runOnce(NOW), { events: 0, audit: 10 });
    assert.deepEqual(readAnchor(db), { lastId: ids[9], lastTs: NOW - 500 * DAY + 10 * 60_000, hash: lastPrunedHash, pruned: 10 });
    const result = verifyAudit(db);
    assert.deepEqual(result, { ok: true, entries: 5, oldestTs: NOW - 1000, pruned: 10, anchor: lastPrunedHash });
    assert.equal(
      describeIntact(result as Extract<typeof result, { ok: true }>),
      `audit chain intact: 5 entries from ${new Date(NOW - 1000).toISOString()}; 10 older entries pruned (anchor ${lastPrunedHash})`,
    );
    // New entries chain on as before.
    new AuditLog(log).append({ actor: 'ops', address: '10.0.0.1', action: 'stack.stop', ok: true, message: 'later' });
    assert.equal((verifyAudit(db) as { entries: number }).entries, 6);
  });

  it('keeps entries inside 400 days, and says so without pruning', () => {
    const { ids } = chain();
    assert.equal(new AuditLog(new EventLog(db)).pruneBatch(NOW - 500 * DAY + AUDIT_RETENTION_MS, 100), 0, 'nothing is 400 days old yet');
    assert.equal(count('SELECT count(*) FROM events WHERE hash IS NOT NULL'), ids.length);
    const result = verifyAudit(db);
    assert.ok(result.ok);
    assert.equal(describeIntact(result), `audit chain intact: 15 entries from ${new Date(NOW - 500 * DAY + 60_000).toISOString()}`);
    assert.equal(describeIntact({ ok: true, entries: 0, pruned: 0 }), 'audit chain intact: 0 entries');
  });

  /** verify's answer with `sql` applied, then undone. */
  function tampered(sql: string, ...args: unknown[]) {
    db.exec('SAVEPOINT tamper');
    try {
      edit(sql, ...args);
      return verifyAudit(db);
    } finally {
      db.exec('ROLLBACK TO tamper; RELEASE tamper');
    }
  }
  const reasonOf = (r: ReturnType<typeof verifyAudit>) => (r.ok ? assert.fail('expected a broken chain') : r);

  it('after a prune: a changed entry, the oldest kept entry removed, or the anchor removed, is found', () => {
    const { log, ids } = chain();
    new AuditLog(log).pruneBatch(NOW, 100);
    const firstKept = ids[10]!;

    assert.deepEqual(tampered("UPDATE events SET message = 'nothing to see' WHERE id = ?", ids[12]), {
      ok: false,
      entries: 2,
      badId: ids[12],
      reason: `entry ${ids[12]} was changed after it was written`,
    });

    const oldestRemoved = reasonOf(tampered('DELETE FROM events WHERE id = ?', firstKept));
    assert.equal(oldestRemoved.badId, ids[11]);
    assert.match(oldestRemoved.reason, /does not follow the last pruned entry \(anchor [0-9a-f]{64}\): the oldest kept entries were changed or removed/);

    const anchorRemoved = reasonOf(tampered('DELETE FROM audit_anchor'));
    assert.equal(anchorRemoved.badId, firstKept);

    const anchorMoved = reasonOf(tampered('UPDATE audit_anchor SET hash = (SELECT hash FROM events WHERE id = ?)', firstKept));
    assert.equal(anchorMoved.badId, firstKept);

    const anchorCountChanged = reasonOf(tampered('UPDATE audit_anchor SET pruned = pruned - 1'));
    assert.match(anchorCountChanged.reason, /head says 15 entries .* the chain has 14 .*\(9 of them pruned\)/);

    assert.match(reasonOf(tampered('DELETE FROM events WHERE id = ?', ids[14])).reason, /newest entries were removed/);

    assert.equal(verifyAudit(db).ok, true, 'each edit above was undone');
  });

  it('before a prune: a changed entry in the part due for pruning stops the prune, and verify still names it', async () => {
    const { log, ids } = chain();
    edit("UPDATE events SET actor = 'someone-else' WHERE id = ?", ids[3]);
    const errors: unknown[] = [];
    const retention = new EventRetention(log, (err) => errors.push(err), { batchSize: 2, maxBatches: 10 });
    await assert.rejects(retention.runOnce(NOW), (err: unknown) => err instanceof AuditChainBroken && err.message.includes(`entry ${ids[3]} was changed`));
    assert.equal(count('SELECT count(*) FROM events WHERE hash IS NOT NULL'), 13, 'the batch holding the changed entry was not pruned; the one before it was');
    assert.deepEqual(errors, [], 'runOnce rejects; the loop reports');
    const r = verifyAudit(db);
    assert.deepEqual(r, { ok: false, entries: 1, badId: ids[3], reason: `entry ${ids[3]} was changed after it was written` });
  });

  it('an entry stamped old after a newer one (a clock step) waits for it: only a prefix of the chain goes', () => {
    const c = clock(NOW - 500 * DAY);
    const log = new EventLog(db, undefined, c.now);
    const audit = new AuditLog(log);
    audit.append({ actor: 'a', address: 'l', action: 'x', ok: true, message: '1' });
    c.t = NOW - DAY;
    audit.append({ actor: 'a', address: 'l', action: 'x', ok: true, message: '2' });
    c.t = NOW - 450 * DAY; // the clock stepped back
    audit.append({ actor: 'a', address: 'l', action: 'x', ok: true, message: '3' });
    assert.equal(audit.pruneBatch(NOW, 100), 1);
    assert.deepEqual(db.prepare("SELECT message FROM events WHERE type = 'audit' ORDER BY id").pluck().all(), ['2', '3']);
    assert.equal(verifyAudit(db).ok, true);
  });

  it('the whole chain pruned still verifies against its head', () => {
    const { log } = chain();
    new AuditLog(log).pruneBatch(NOW + 400 * DAY, 100);
    const r = verifyAudit(db);
    assert.deepEqual({ ...r, anchor: undefined }, { ok: true, entries: 0, pruned: 15, anchor: undefined });
    assert.match(describeIntact(r as Extract<typeof r, { ok: true }>), /^audit chain intact: 0 entries; 15 older entries pruned \(anchor [0-9a-f]{64}\)$/);
  });
});

describe('webhook deliveries: kept until delivered or given up', () => {
  const ctxFor = (log: EventLog): DutyContext => ({
    config: parseConfigText('host:\n  name: test-host\n'),
    log: createLogger('silent'),
    db,
    events: log,
    conditions: new Conditions(log),
    reportError: (_duty, err) => assert.fail(String(err)),
    stopping: new AbortController().signal,
  });
  async function receiver(status: number, port = 0): Promise<{ url: string; port: number; hits: () => number; close: () => Promise<void> }> {
    let n = 0;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        n++;
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    const bound = (server.address() as { port: number }).port;
    const close = () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      });
    return { url: `http://127.0.0.1:${bound}/hook`, port: bound, hits: () => n, close };
  }
  const pending = () => count('SELECT count(*) FROM alert_deliveries');
  async function until(cond: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!cond()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('a delivered event leaves no row; an undelivered one stays, across a restart, until delivered', async () => {
    const ok = await receiver(204);
    const down = await receiver(503);
    const log = new EventLog(db);
    const duty = new AlertsDuty({ webhooks: [{ url: ok.url }, { url: down.url }], diskLowPercent: 90 }, ctxFor(log), 'test');
    await duty.start();
    log.record({ type: 'deploy.succeeded', severity: 'info', message: 'deployed' });
    await until(() => ok.hits() === 1 && down.hits() === 1, 'one attempt at each hook');
    await until(() => count('SELECT count(*) FROM alert_deliveries WHERE webhook = ?', webhookId(ok.url)) === 0, 'the delivered row to go');
    await duty.stop();
    assert.deepEqual(db.prepare('SELECT webhook, status, attempts, last_error FROM alert_deliveries').all(), [{ webhook: webhookId(down.url), status: 'pending', attempts: 1, last_error: 'HTTP 503' }]);

    // The hook recovers; a new run (a restart, on the same file) sends it and drops the row.
    await down.close();
    const back = await receiver(200, down.port);
    const again = new AlertsDuty({ webhooks: [{ url: back.url }], diskLowPercent: 90 }, ctxFor(log), 'test');
    await again.start();
    await until(() => back.hits() === 1 && pending() === 0, 'the kept delivery to be sent');
    await again.stop();
    await ok.close();
    await back.close();
  });

  it('a delivery past the 24 h retry window is given up after its next failure, and leaves no row', async () => {
    const down = await receiver(500);
    const c = clock(Date.now() - DELIVERY.giveUpAfterMs - 60_000);
    const log = new EventLog(db, undefined, c.now);
    const duty = new AlertsDuty({ webhooks: [{ url: down.url }], diskLowPercent: 90 }, ctxFor(log), 'test');
    await duty.start();
    log.record({ type: 'backup.failed', severity: 'critical', message: 'pg_dump exited 1' });
    await until(() => down.hits() === 1 && pending() === 0, 'the given-up row to go');
    await duty.stop();
    await down.close();
  });

  it('clears finished rows of older versions, rows whose event is gone, and rows of a removed hook past the retry window', () => {
    const c = clock(NOW - 2 * DAY);
    const log = new EventLog(db, undefined, c.now);
    new AlertsDuty({ webhooks: [], diskLowPercent: 90 }, ctxFor(log), 'test'); // its migrations
    const oldEvent = log.record({ type: 'deploy.started', severity: 'info', message: 'old' }).id;
    c.t = NOW - 60_000;
    const newEvent = log.record({ type: 'deploy.started', severity: 'info', message: 'new' }).id;
    const row = db.prepare('INSERT INTO alert_deliveries (event_id, webhook, status, next_at) VALUES (?, ?, ?, 0)');
    row.run(oldEvent, 'kept-hook', 'pending'); // configured: its worker decides
    row.run(newEvent, 'kept-hook', 'sent'); // done (an older version kept these)
    row.run(oldEvent, 'other-hook', 'failed');
    row.run(newEvent, 'removed-hook', 'pending'); // within 24 h: kept in case the hook comes back
    row.run(oldEvent, 'removed-hook', 'pending'); // past 24 h and no hook: dead
    row.run(999_999, 'kept-hook', 'pending'); // its event was pruned
    assert.equal(deleteDeadDeliveries(db, ['kept-hook'], NOW, 2), 2, 'at most a batch');
    assert.equal(deleteDeadDeliveries(db, ['kept-hook'], NOW, 100), 2);
    assert.deepEqual(db.prepare('SELECT webhook, event_id AS id FROM alert_deliveries ORDER BY webhook').all(), [
      { webhook: 'kept-hook', id: oldEvent },
      { webhook: 'removed-hook', id: newEvent },
    ]);
  });
});

describe("the daemon's error de-duplication", () => {
  it('lets a key through once per window, forgets expired keys, and holds at most its cap', () => {
    const once = new OncePerWindow(10 * 60_000, 3);
    assert.equal(once.allow('metrics:disk full', 0), true);
    assert.equal(once.allow('metrics:disk full', 60_000), false);
    assert.equal(once.allow('stack:engine down', 60_000), true);
    assert.equal(once.allow('metrics:disk full', 10 * 60_000), true, 'again after the window');
    assert.equal(once.size, 2);
    assert.equal(once.allow('api:x', 30 * 60_000), true);
    assert.equal(once.size, 1, 'keys past their window are dropped as new ones come');
    for (let i = 0; i < 10; i++) once.allow(`err ${i}`, 30 * 60_000 + i);
    assert.equal(once.size, 3, 'capped');
    assert.equal(once.allow('err 9', 30 * 60_000 + 20), false, 'the newest keys are the ones kept');
  });
});
