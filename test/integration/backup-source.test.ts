// The two dump sources against a real PostgreSQL: pg_dump inside the compose
// service's container (engine exec API) and the host's pg_dump against the
// container's port on 127.0.0.1, each written through the dump file.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { DockerEngine } from '../../agent/docker/engine.js';
import { DomainError } from '../../agent/errors.js';
import { run, runChecked } from '../../agent/exec/runner.js';
import { writeDumpFile, type DumpProgress } from '../../agent/duties/backups/dump-file.js';
import { containerSource } from '../../agent/duties/backups/source-container.js';
import { hostSource } from '../../agent/duties/backups/source-host.js';
import { freePort, removeDir, tempDir, waitFor } from '../helpers/agent.js';
import { POSTGRES_IMAGE, requireDocker, TestStack } from '../helpers/stack.js';

// A password with the characters pgpass(5) must escape, and one a URL must encode.
const PASSWORD = 'pw:with\\odd@chars';

const isFailed = (pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof DomainError, `expected a domain error, got ${String(e)}`);
  assert.equal(e.kind, 'failed');
  assert.match(e.message, pattern);
  return true;
};

describe('backup sources against a real PostgreSQL', { timeout: 120_000 }, () => {
  let stack: TestStack;
  let port: number;
  let dir: string;
  let client: pg.Client;
  const engine = new DockerEngine();
  const url = () => `postgres://app:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}/app`;
  const files = () => readdirSync(dir);
  const dumpBackends = async () =>
    (await client.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'deckhand-backup%'")).rows[0]!.n;
  const pgDumpsInContainer = async () => (await stack.docker('top', await stack.containerId('db'))).split('\n').filter((l) => /pg_dump/.test(l)).length;

  before(async () => {
    requireDocker();
    port = await freePort();
    dir = tempDir('backups');
    stack = TestStack.unique('backup', {
      db: { image: POSTGRES_IMAGE, environment: { PGPORT: String(port), POSTGRES_LISTEN_ADDRESSES: '127.0.0.1', POSTGRES_USER: 'app', POSTGRES_PASSWORD: PASSWORD, POSTGRES_DB: 'app' } },
    });
    await stack.up();
    await waitFor(
      async () => {
        const c = new pg.Client({ connectionString: url() });
        c.on('error', () => undefined);
        try {
          await c.connect();
          await c.query('SELECT 1');
          client = c;
          return true;
        } catch {
          await c.end().catch(() => undefined);
          return false;
        }
      },
      60_000,
      () => `PostgreSQL on 127.0.0.1:${port}`,
    );
    client.on('error', () => undefined);
    // Random text compresses badly: a dump of several MB, long enough to abort in the middle.
    await client.query("CREATE TABLE items AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 150000) g");
    await client.query('CREATE TABLE notes (id int PRIMARY KEY, body text)');
    await client.query("INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')");
  });

  after(async () => {
    await client?.end().catch(() => undefined);
    await stack?.down();
    if (stack) removeDir(stack.dir);
    if (dir) removeDir(dir);
  });

  it('dumps inside the service container, and pg_restore reads the whole file', async () => {
    const final = join(dir, 'container.dump');
    const events: DumpProgress[] = [];
    const res = await writeDumpFile(final, containerSource(engine, { project: stack.project, service: 'db', database: 'app', user: 'app' }), { onProgress: (e) => events.push(e) });
    assert.ok(res.bytes > 1_000_000, `${res.bytes} bytes`);
    assert.deepEqual(files(), ['container.dump']);
    const list = await runChecked({ argv: ['pg_restore', '--list', final] });
    assert.match(list.stdout, /TABLE public items app/);
    assert.match(list.stdout, /TABLE DATA public notes app/);
    await runChecked({ argv: ['pg_restore', '-f', '/dev/null', final] });
    assert.equal(events.at(-1)?.bytes, res.bytes);
    const sha = await runChecked({ argv: ['sha256sum', final] });
    assert.equal(sha.stdout.split(' ')[0], res.sha256);
  });

  it("a wrong database fails with pg_dump's own error line and leaves no file", async () => {
    const final = join(dir, 'wrongdb.dump');
    await assert.rejects(
      writeDumpFile(final, containerSource(engine, { project: stack.project, service: 'db', database: 'nope', user: 'app' })),
      isFailed(/^pg_dump: error: .*database "nope" does not exist$/),
    );
    assert.deepEqual(
      files().filter((f) => f.startsWith('wrongdb')),
      [],
    );
  });

  it('a service without a running container is refused by name', async () => {
    await assert.rejects(
      writeDumpFile(join(dir, 'nosvc.dump'), containerSource(engine, { project: stack.project, service: 'cache', database: 'app', user: 'app' })),
      isFailed(/service cache of project .* has no running container/),
    );
    assert.deepEqual(
      files().filter((f) => f.startsWith('nosvc')),
      [],
    );
  });

  it('an abort in the middle of a container dump stops pg_dump and leaves no partial', async () => {
    const final = join(dir, 'abort.dump');
    const ac = new AbortController();
    let seen = 0;
    await assert.rejects(
      writeDumpFile(final, containerSource(engine, { project: stack.project, service: 'db', database: 'app', user: 'app' }), {
        signal: ac.signal,
        progressIntervalMs: 0,
        onProgress: (e) => {
          seen = e.bytes;
          if (e.bytes > 0) ac.abort();
        },
      }),
      isFailed(/aborted; nothing kept/),
    );
    assert.ok(seen > 0, 'aborted after the first bytes');
    assert.deepEqual(
      files().filter((f) => f.startsWith('abort')),
      [],
    );
    await waitFor(async () => (await dumpBackends()) === '0' && (await pgDumpsInContainer()) === 0, 10_000, () => 'pg_dump gone');
  });

  it('an abort while pg_dump waits for a lock ends it inside the container', async () => {
    const locker = new pg.Client({ connectionString: url() });
    locker.on('error', () => undefined);
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE notes IN ACCESS EXCLUSIVE MODE');
      const final = join(dir, 'locked.dump');
      const ac = new AbortController();
      const dump = writeDumpFile(final, containerSource(engine, { project: stack.project, service: 'db', database: 'app', user: 'app' }), { signal: ac.signal });
      const outcome = dump.then(
        () => null,
        (e: unknown) => e,
      );
      await waitFor(
        async () => (await client.query("SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'deckhand-backup%' AND wait_event_type = 'Lock'")).rowCount === 1,
        15_000,
        () => 'pg_dump waiting for the lock',
      );
      assert.deepEqual(files().filter((f) => f.startsWith('locked')), ['locked.dump.partial']);
      const t0 = Date.now();
      ac.abort();
      const err = await outcome;
      assert.ok(err instanceof DomainError && /aborted/.test(err.message), String(err));
      assert.ok(Date.now() - t0 < 8_000, `abort took ${Date.now() - t0} ms`);
      assert.deepEqual(
        files().filter((f) => f.startsWith('locked')),
        [],
      );
      await waitFor(async () => (await dumpBackends()) === '0' && (await pgDumpsInContainer()) === 0, 10_000, () => 'pg_dump gone');
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end().catch(() => undefined);
    }
  });

  it("dumps with the host's pg_dump against the published port, the password in a passfile only", async () => {
    // The host's pg_dump is part of the test environment (postgresql-client, scripts/test-env.sh up).
    const probe = await run({ argv: ['pg_dump', '--version'] }).catch((e: Error) => ({ code: -1, stdout: e.message }));
    assert.equal(probe.code, 0, `no pg_dump on this host (${probe.stdout.trim()}): install postgresql-client (scripts/test-env.sh up does); this case cannot run without it`);
    // A wrapper that records what pg_dump was given, then runs the real one.
    const seen = join(dir, 'seen');
    const wrapper = join(dir, 'pg_dump-wrapper');
    writeFileSync(
      wrapper,
      `#!/bin/sh\nif [ -n "$PGPASSFILE" ]; then { echo "argv: $*"; echo "passfile: $PGPASSFILE $(stat -c %a "$PGPASSFILE") $(stat -c %a "$(dirname "$PGPASSFILE")")"; } >${seen}; fi\nexec pg_dump "$@"\n`,
    );
    chmodSync(wrapper, 0o755);
    const final = join(dir, 'host.dump');
    const res = await writeDumpFile(final, hostSource({ url: url(), database: 'app', pgDump: wrapper }));
    assert.ok(res.bytes > 1_000_000);
    const record = readFileSync(seen, 'utf8');
    rmSync(seen);
    assert.ok(!record.includes(PASSWORD) && !record.includes(encodeURIComponent(PASSWORD)), record);
    const [, passfile, fileMode, dirMode] = /^passfile: (\S+) (\d+) (\d+)$/m.exec(record) ?? [];
    assert.equal(fileMode, '600');
    assert.equal(dirMode, '700');
    assert.equal(existsSync(passfile!), false, 'passfile removed');
    const list = await runChecked({ argv: ['pg_restore', '--list', final] });
    assert.match(list.stdout, /TABLE DATA public items app/);
    await runChecked({ argv: ['pg_restore', '-f', '/dev/null', final] });
  });

  it('the host source refuses a pg_dump older than the server, and a wrong password, before writing', async () => {
    const fake = join(dir, 'old-pg_dump');
    writeFileSync(fake, '#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n');
    chmodSync(fake, 0o755);
    await assert.rejects(writeDumpFile(join(dir, 'old.dump'), hostSource({ url: url(), database: 'app', pgDump: fake })), isFailed(/host's pg_dump \(9\.6\) is older than the server \(PostgreSQL 15\)/));
    await assert.rejects(
      writeDumpFile(join(dir, 'badpw.dump'), hostSource({ url: `postgres://app:wrong@127.0.0.1:${port}/app`, database: 'app' })),
      (e: unknown) => isFailed(/password authentication failed/)(e) && !(e as Error).message.includes('wrong'),
    );
    assert.deepEqual(
      files().filter((f) => f.startsWith('old.') || f.startsWith('badpw')),
      [],
    );
  });
});
