// The backups duty end to end against the built agent (as user deckhand), a
// real PostgreSQL in the compose stack, and real WebSocket calls: a run with
// progress that counts only once verified, what list, /health, /metrics and
// status.get say, a second run refused, restore (and its undo through the
// safety backup), restore into a new database, a changed file refused, and
// restore-mode verification with row counts.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, startApiAgent, streamed, type ApiAgent, type RpcClient } from '../helpers/api.js';
import { removeDir, waitFor } from '../helpers/agent.js';
import { startPgStack, type PgStack } from '../helpers/pg.js';
import { requireDocker } from '../helpers/stack.js';

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('backups against a real PostgreSQL in the stack', { timeout: 300_000 }, () => {
  let pg: PgStack;
  let api: ApiAgent;
  let c: RpcClient;
  let dir: string;

  before(async () => {
    requireDocker();
    pg = await startPgStack('backups');
    await pg.query("CREATE TABLE items AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g");
    await pg.query('CREATE TABLE notes (id int PRIMARY KEY, body text)');
    await pg.query("INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')");
    api = await startApiAgent({
      config: {
        stack: { project: pg.stack.project, dir: pg.stack.dir },
        backups: [
          { name: 'db', schedule: '0 3 * * *', source: { service: 'db', database: 'app', user: 'app' }, retention: { days: 30, minKeep: 3 } },
          { name: 'rows', schedule: '0 4 * * *', source: { service: 'db', database: 'app', user: 'app' }, verify: 'restore' },
          { name: 'host', schedule: '0 5 * * *', source: { url: pg.url(), database: 'app' } },
        ],
      },
    });
    dir = join(api.agent.dataDir, 'backups', 'db');
    c = await connect(api.url, api.token('ops', 'admin'));
  });

  after(async () => {
    c?.close();
    await api?.agent.stop();
    await pg?.down();
    if (pg) removeDir(pg.stack.dir);
    if (api) removeDir(api.agent.dir);
  });

  let first: any;

  it('a run streams its steps and bytes and ends with a verified record whose file and SHA-256 are on disk', async () => {
    const before = await api.agent.get('/health');
    assert.match(JSON.stringify(before.json().checks['backup:db']), /no verified backup yet/);

    const { events, end } = await streamed(c, 'backup.run', { name: 'db' });
    assert.equal(end.ok, true, JSON.stringify(end));
    const b = end.backup;
    first = b;
    assert.equal(b.status, 'verified');
    assert.equal(b.verified, true);
    assert.equal(b.trigger, 'manual');
    assert.equal(b.actor, 'ops');
    const steps = events.filter((e) => e.type === 'step' && e.status === 'ok').map((e) => e.step);
    assert.deepEqual(steps, ['space', 'dump', 'verify', 'commit', 'rotate']);
    // verification ran on the complete file before the rename
    const order = events.filter((e) => e.type === 'step').map((e) => `${e.step}:${e.status}`);
    assert.ok(order.indexOf('verify:ok') < order.indexOf('commit:ok'));

    assert.match(b.file, /\/db-\d{8}T\d{6}\.\d{3}Z\.dump$/);
    assert.equal(statSync(b.file).size, b.size);
    assert.equal(statSync(b.file).mode & 0o777, 0o600);
    assert.equal(sha256(b.file), b.sha256);
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.partial')), []);
    assert.ok(b.timings.dumpMs >= 0 && b.timings.verifyMs >= 0);
  });

  it('list, /health, /metrics and status.get tell the same story', async () => {
    const list = await c.call('backup.list', { name: 'db' });
    assert.equal(list.result.backups[0].id, first.id);
    assert.equal(list.result.backups[0].sha256, first.sha256);

    const health = (await api.agent.get('/health')).json();
    assert.equal(health.checks['backup:db'][0].status, 'pass');
    assert.equal(health.checks['backup:db'][0].observedUnit, 'h');
    assert.match(health.checks['backup:db'][0].output, /last verified backup is 0(\.\d)?h old/);

    // renders of /metrics are cached for a second
    await waitFor(async () => /deckhand_backup_last_size_bytes\{backup="db"\} \d+/.test((await api.agent.get('/metrics')).text), 5000);
    const metrics = (await api.agent.get('/metrics')).text;
    assert.match(metrics, new RegExp(`deckhand_backup_last_size_bytes\\{backup="db"\\} ${first.size}\\b`));
    assert.match(metrics, /deckhand_backup_last_success_timestamp_seconds\{backup="db"\} \d/);
    assert.match(metrics, /deckhand_backup_last_duration_seconds\{backup="db"\} \d/);
    assert.match(metrics, /deckhand_backup_failures_total\{backup="db"\} 0/);

    const status = (await c.call('status.get')).result;
    const db = status.backups.find((b: any) => b.name === 'db');
    assert.equal(db.lastVerified.id, first.id);
    assert.equal(db.check, 'pass');
    assert.equal(db.source, 'service db');
    assert.ok(db.nextRunAt);

    const events = (await c.call('events.list', { type: 'backup.succeeded' })).result.events;
    assert.ok(events.some((e: any) => e.data?.id === first.id));
  });

  it('a second run of the same backup while one runs gets -32002; the first still succeeds', async () => {
    const one = await c.call('backup.run', { name: 'db' });
    const two = await c.call('backup.run', { name: 'db' });
    assert.equal(two.error?.code, -32002, JSON.stringify(two));
    assert.match(two.error.message, /already running/);
    await waitFor(() => c.notifications.some((n) => n.stream === one.result.stream && n.event.type === 'end'), 60_000);
    const end = c.notifications.find((n) => n.stream === one.result.stream && n.event.type === 'end').event;
    assert.equal(end.ok, true);
  });

  it('an unknown backup is -32001, a missing confirm is -32602', async () => {
    assert.equal((await c.call('backup.run', { name: 'nope' })).error?.code, -32001);
    assert.equal((await c.call('backup.restore', { id: first.id })).error?.code, -32602);
    assert.equal((await c.call('backup.restore', { id: 999999, confirm: true })).error?.code, -32001);
  });

  it('restore puts the data back, after a safety backup that undoes it', async () => {
    await pg.query("UPDATE notes SET body = 'changed' WHERE id = 1");
    await pg.query('DELETE FROM notes WHERE id = 3');
    const { events, end } = await streamed(c, 'backup.restore', { id: first.id, confirm: true });
    assert.equal(end.ok, true, JSON.stringify(end));
    const r = end.restore;
    assert.equal(r.status, 'succeeded');
    assert.equal(r.database, 'app');
    assert.ok(r.safetyBackupId > first.id);
    const steps = events.filter((e) => e.type === 'step' && e.status === 'ok').map((e) => e.step);
    for (const s of ['checksum', 'safety', 'restore']) assert.ok(steps.includes(s), `${s} in ${steps}`);
    assert.deepEqual(await pg.query('SELECT id, body FROM notes ORDER BY id'), [{ id: 1, body: 'one' }, { id: 2, body: 'two' }, { id: 3, body: 'three' }]);

    const safety = (await c.call('backup.list', { name: 'db' })).result.backups.find((b: any) => b.id === r.safetyBackupId);
    assert.equal(safety.trigger, 'safety');
    assert.equal(safety.verified, true);

    // Undo: the safety backup holds the changed data.
    const undo = await streamed(c, 'backup.restore', { id: r.safetyBackupId, confirm: true });
    assert.equal(undo.end.ok, true, JSON.stringify(undo.end));
    assert.deepEqual(await pg.query('SELECT id, body FROM notes ORDER BY id'), [{ id: 1, body: 'changed' }, { id: 2, body: 'two' }]);
    const restored = (await c.call('events.list', { type: 'backup.restored' })).result.events;
    assert.equal(restored.length, 2);
  });

  it('restore --to creates a new database and leaves the original alone; an existing one is refused', async () => {
    const { end } = await streamed(c, 'backup.restore', { id: first.id, confirm: true, to: 'app_copy' });
    assert.equal(end.ok, true, JSON.stringify(end));
    assert.equal(end.restore.newDatabase, true);
    assert.deepEqual(await pg.query('SELECT count(*)::int AS n FROM notes', [], 'app_copy'), [{ n: 3 }]);
    assert.deepEqual(await pg.query('SELECT count(*)::int AS n FROM notes'), [{ n: 2 }]);
    const again = await streamed(c, 'backup.restore', { id: first.id, confirm: true, to: 'app_copy' });
    assert.equal(again.end.ok, false);
    assert.match(again.end.error, /already exists/);
  });

  it('a file changed after verification is refused by its checksum and the database is untouched', async () => {
    const bytes = readFileSync(first.file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    writeFileSync(first.file, bytes);
    const { end } = await streamed(c, 'backup.restore', { id: first.id, confirm: true });
    assert.equal(end.ok, false);
    assert.match(end.error, /has changed since it was verified/);
    assert.equal(end.restore.safetyBackupId, undefined, 'no safety backup was even needed');
    assert.deepEqual(await pg.query('SELECT id, body FROM notes ORDER BY id'), [{ id: 1, body: 'changed' }, { id: 2, body: 'two' }]);
  });

  it('verify: restore counts the rows of every table in a throwaway container, which is gone afterwards', async () => {
    const { end } = await streamed(c, 'backup.run', { name: 'rows' });
    assert.equal(end.ok, true, JSON.stringify(end));
    assert.equal(end.backup.verify, 'restore');
    assert.deepEqual(end.backup.rows, { 'public.items': 20000, 'public.notes': 2 });
    const left = await pg.stack.docker('ps', '-a', '-q', '--filter', 'label=deckhand.throwaway');
    assert.equal(left.trim(), '');
  });

  it('source.url: the host pg_dump and pg_restore against the URL, the password on no command line and in no log', async () => {
    const { end } = await streamed(c, 'backup.run', { name: 'host' });
    assert.equal(end.ok, true, JSON.stringify(end));
    assert.equal(sha256(end.backup.file), end.backup.sha256);
    await pg.query("INSERT INTO notes VALUES (9, 'nine')");
    const restored = await streamed(c, 'backup.restore', { id: end.backup.id, confirm: true });
    assert.equal(restored.end.ok, true, JSON.stringify(restored.end));
    assert.deepEqual(await pg.query('SELECT id FROM notes ORDER BY id'), [{ id: 1 }, { id: 2 }]);
    const status = (await c.call('status.get')).result.backups.find((b: any) => b.name === 'host');
    assert.equal(status.source, pg.url().replace(`:${encodeURIComponent(pg.password)}@`, ':***@'));
    assert.ok(!api.agent.output.includes(pg.password), 'the password is in the agent output');
  });

  it('a backup under half the size of the one before is kept and raises backup.size_drop; the next normal one clears it', async () => {
    await pg.query('DROP TABLE items');
    const small = await streamed(c, 'backup.run', { name: 'db' });
    assert.equal(small.end.ok, true, JSON.stringify(small.end));
    assert.equal(small.end.backup.sizeDrop, true);
    assert.equal(statSync(small.end.backup.file).size, small.end.backup.size, 'kept');
    const raised = (await c.call('events.list', { type: 'backup.size_drop' })).result.events;
    assert.equal(raised.length, 1);
    assert.match(raised[0].message, /under half the size/);
    const again = await streamed(c, 'backup.run', { name: 'db' });
    assert.equal(again.end.backup.sizeDrop, undefined);
    const cleared = (await c.call('events.list', { type: 'backup.size_drop.resolved' })).result.events;
    assert.equal(cleared.length, 1);
  });
});
