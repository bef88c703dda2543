// After the dump: verify, restore and the database checks against a real
// PostgreSQL, through the service's container (engine exec, the file on
// stdin) and through the host's pg_restore against the published port, plus
// verify-by-restore in a throwaway container that must leave nothing behind.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { DockerEngine } from '../../agent/docker/engine.js';
import { DomainError } from '../../agent/errors.js';
import { runChecked } from '../../agent/exec/runner.js';
import { writeDumpFile } from '../../agent/duties/backups/dump-file.js';
import { containerTarget, hostTarget, verifyByRestore, type BytesProgress, type PgTarget } from '../../agent/duties/backups/pg-target.js';
import { containerSource } from '../../agent/duties/backups/source-container.js';
import { freePort, removeDir, tempDir, waitFor } from '../helpers/agent.js';
import { POSTGRES_IMAGE, requireDocker, TestStack, WEB_IMAGE } from '../helpers/stack.js';

const PASSWORD = 'pw:with\\odd@chars';
const ITEMS = 50_000;

const isFailed = (pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof DomainError, `expected a domain error, got ${String(e)}`);
  assert.equal(e.kind, 'failed');
  assert.match(e.message, pattern);
  return true;
};

/**
 * The engine, recording each container created through it and the volumes it
 * got: what a verify must leave behind is nothing of its own (other files'
 * verifies may run on the same engine meanwhile).
 */
function recordingEngine(real: DockerEngine): { engine: DockerEngine; created: { id: string; volumes: string[] }[] } {
  const created: { id: string; volumes: string[] }[] = [];
  const bound = (t: object, k: string | symbol) => {
    const v = Reflect.get(t, k, t);
    return typeof v === 'function' ? v.bind(t) : v;
  };
  const api = new Proxy(real.api, {
    get(t, k) {
      if (k !== 'createContainer') return bound(t, k);
      return async (...args: Parameters<typeof t.createContainer>) => {
        const c = await t.createContainer(...args);
        const info = await c.inspect();
        created.push({ id: c.id, volumes: info.Mounts.filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name!) });
        return c;
      };
    },
  });
  return { engine: new Proxy(real, { get: (t, k) => (k === 'api' ? api : bound(t, k)) }), created };
}

describe('verify and restore against a real PostgreSQL', { timeout: 120_000 }, () => {
  let stack: TestStack;
  let port: number;
  let dir: string;
  let good: string;
  let truncated: string;
  let flipped: string;
  let garbage: string;
  const engine = new DockerEngine();
  const url = (db = 'app') => `postgres://app:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}/${db}`;
  const query = async <R extends pg.QueryResultRow>(sql: string, db = 'app'): Promise<R[]> => {
    const c = new pg.Client({ connectionString: url(db) });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return (await c.query<R>(sql)).rows;
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  const notes = async (db = 'app') => (await query<{ id: number }>('SELECT id FROM notes ORDER BY id', db)).map((r) => r.id);
  /** What is left of the containers `recorded` created: their IDs and volumes that still exist. */
  const leftovers = async (recorded: ReturnType<typeof recordingEngine>) => {
    assert.ok(recorded.created.length > 0, 'the verify created its throwaway container through the engine');
    const left: string[] = [];
    for (const c of recorded.created) {
      if ((await stack.docker('ps', '-aq', '--no-trunc', '--filter', `id=${c.id}`)).trim()) left.push(`container ${c.id}`);
      for (const v of c.volumes) if ((await stack.docker('volume', 'ls', '-q', '--filter', `name=${v}`)).trim()) left.push(`volume ${v}`);
    }
    return left;
  };
  let container: PgTarget;
  let host: PgTarget;

  before(async () => {
    requireDocker();
    port = await freePort();
    dir = tempDir('pgtarget');
    stack = TestStack.unique('pgtarget', {
      db: { image: POSTGRES_IMAGE, environment: { PGPORT: String(port), POSTGRES_LISTEN_ADDRESSES: '127.0.0.1', POSTGRES_USER: 'app', POSTGRES_PASSWORD: PASSWORD, POSTGRES_DB: 'app' } },
    });
    await stack.up();
    await waitFor(async () => query('SELECT 1').then(() => true, () => false), 60_000, () => `PostgreSQL on 127.0.0.1:${port}`);
    await query(`CREATE TABLE items AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, ${ITEMS}) g`);
    await query("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')");
    // A grantee besides the owner: the throwaway has neither role until it is told.
    await query('CREATE ROLE reader; GRANT SELECT ON notes TO reader');
    await query('CREATE SCHEMA s2; CREATE TABLE s2."odd ""name|x" (x int); INSERT INTO s2."odd ""name|x" VALUES (1), (2)');
    container = containerTarget(engine, { project: stack.project, service: 'db', user: 'app', database: 'app' });
    host = hostTarget({ url: url(), database: 'app' });

    good = join(dir, 'good.dump');
    await writeDumpFile(good, containerSource(engine, { project: stack.project, service: 'db', database: 'app', user: 'app' }));
    const bytes = readFileSync(good);
    truncated = join(dir, 'truncated.dump');
    writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.7)));
    // One bit in the middle of the compressed table data.
    const bad = Buffer.from(bytes);
    const at = Math.floor(bytes.length * 0.5);
    bad[at] = bad[at]! ^ 0x10;
    flipped = join(dir, 'flipped.dump');
    writeFileSync(flipped, bad);
    // Not a dump at all, and large: pg_restore gives up while the input still flows.
    garbage = join(dir, 'garbage.dump');
    writeFileSync(garbage, randomBytes(16 << 20));
  });

  after(async () => {
    await stack?.down();
    if (stack) removeDir(stack.dir);
    if (dir) removeDir(dir);
  });

  for (const kind of ['container', 'host'] as const) {
    it(`${kind}: verifyRead reads the whole good file and refuses a truncated and a bit-flipped one`, async () => {
      const t = kind === 'container' ? container : host;
      const events: BytesProgress[] = [];
      await t.verifyRead(good, { onProgress: (e) => events.push(e) });
      const size = statSync(good).size;
      assert.deepEqual({ bytes: events.at(-1)?.bytes, total: events.at(-1)?.total }, { bytes: size, total: size });
      await assert.rejects(t.verifyRead(truncated, {}), isFailed(/^pg_restore: error: /));
      await assert.rejects(t.verifyRead(flipped, {}), isFailed(/^pg_restore: error: /));
      await assert.rejects(t.verifyRead(garbage, {}), isFailed(/^pg_restore: error: input file does not appear to be a valid archive/));
      await assert.rejects(t.verifyRead(join(dir, 'missing.dump'), {}), isFailed(/cannot read .*missing\.dump: no such file/));
    });

    it(`${kind}: restore puts the dumped rows back over changed ones`, async () => {
      const t = kind === 'container' ? container : host;
      await query("DELETE FROM notes WHERE id = 1; INSERT INTO notes VALUES (4, 'four'); DELETE FROM items WHERE id > 100");
      assert.deepEqual(await notes(), [2, 3, 4]);
      const events: BytesProgress[] = [];
      await t.restore(good, 'app', { onProgress: (e) => events.push(e) });
      assert.deepEqual(await notes(), [1, 2, 3]);
      assert.equal((await query<{ n: number }>('SELECT count(*)::int AS n FROM items'))[0]!.n, ITEMS);
      assert.equal(events.at(-1)?.bytes, statSync(good).size);
      // Owners are restored, not replaced by the restoring user's.
      assert.equal((await query<{ o: string }>("SELECT tableowner AS o FROM pg_tables WHERE tablename = 'notes'"))[0]!.o, 'app');
    });

    it(`${kind}: a broken file fails the restore and leaves the database as it was`, async () => {
      const t = kind === 'container' ? container : host;
      await query("INSERT INTO notes VALUES (99, 'after the dump')");
      for (const f of [truncated, flipped]) await assert.rejects(t.restore(f, 'app', {}), isFailed(/^pg_restore: error: /));
      assert.deepEqual(await notes(), [1, 2, 3, 99]);
    });

    it(`${kind}: an abort while the restore waits for a lock ends its session and leaves the database as it was`, async () => {
      const t = kind === 'container' ? container : host;
      const locker = new pg.Client({ connectionString: url() });
      locker.on('error', () => undefined);
      await locker.connect();
      try {
        // An open transaction reading notes: the restore's DROP TABLE waits for it.
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE notes IN ACCESS SHARE MODE');
        const ac = new AbortController();
        const outcome = t.restore(good, 'app', { signal: ac.signal }).then(
          () => null,
          (e: unknown) => e,
        );
        await waitFor(
          async () => (await query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'deckhand-restore%' AND wait_event_type = 'Lock'"))[0]!.n === 1,
          15_000,
          () => 'pg_restore waiting for the lock',
        );
        const t0 = Date.now();
        ac.abort();
        const err = await outcome;
        assert.ok(err instanceof DomainError && err.kind === 'failed' && /aborted/.test(err.message), String(err));
        assert.ok(Date.now() - t0 < 8_000, `abort took ${Date.now() - t0} ms`);
        await waitFor(async () => (await query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'deckhand-restore%'"))[0]!.n === 0, 10_000, () => 'pg_restore gone');
      } finally {
        await locker.query('ROLLBACK').catch(() => undefined);
        await locker.end().catch(() => undefined);
      }
      assert.deepEqual(await notes(), [1, 2, 3, 99]);
      assert.equal((await query<{ n: number }>('SELECT count(*)::int AS n FROM items'))[0]!.n, ITEMS);
      await query('DELETE FROM notes WHERE id = 99');
    });

    it(`${kind}: createDatabase, restore into it, databaseExists and databaseSize`, async () => {
      const t = kind === 'container' ? container : host;
      const db = `copy_${kind}`;
      assert.equal(await t.databaseExists(db), false);
      assert.equal(await t.databaseSize(db), undefined);
      await t.createDatabase(db);
      assert.equal(await t.databaseExists(db), true);
      await assert.rejects(t.createDatabase(db), isFailed(/already exists/));
      await t.restore(good, db, {});
      assert.deepEqual(await notes(db), [1, 2, 3]);
      const size = await t.databaseSize(db);
      assert.ok(size !== undefined && size > 1_000_000, `size ${size}`);
      await assert.rejects(t.databaseExists('bad"name'), (e: unknown) => e instanceof DomainError && e.kind === 'invalid');
    });
  }

  it('verifyByRestore counts the rows of every table and leaves no container or volume', async () => {
    const recorded = recordingEngine(engine);
    const events: BytesProgress[] = [];
    const counts = await verifyByRestore(recorded.engine, { image: POSTGRES_IMAGE, file: good, database: 'app', user: 'app', onProgress: (e) => events.push(e) });
    assert.deepEqual(counts, { 'public.items': ITEMS, 'public.notes': 3, 's2.odd "name|x': 2 });
    assert.equal(events.at(-1)?.bytes, statSync(good).size);
    assert.deepEqual(await leftovers(recorded), []);
  });

  it('verifyByRestore of a broken file fails with the reason and still cleans up', async () => {
    const recorded = recordingEngine(engine);
    await assert.rejects(verifyByRestore(recorded.engine, { image: POSTGRES_IMAGE, file: truncated, database: 'app', user: 'app' }), isFailed(/^pg_restore: error: /));
    await assert.rejects(verifyByRestore(recorded.engine, { image: 'deckhand-test/busybox:latest', file: good, database: 'app' }), isFailed(/busybox.*(stopped|no pg_isready)/));
    await assert.rejects(verifyByRestore(recorded.engine, { image: WEB_IMAGE, file: good, database: 'app' }), isFailed(/has no pg_isready: not a PostgreSQL server image/));
    const ac = new AbortController();
    await assert.rejects(
      verifyByRestore(recorded.engine, { image: POSTGRES_IMAGE, file: good, database: 'app', user: 'app', signal: ac.signal, onProgress: (e) => e.bytes > 0 && ac.abort() }),
      isFailed(/aborted/),
    );
    assert.deepEqual(await leftovers(recorded), []);
  });
});
