import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import { DomainError } from '../../agent/errors.js';
import { run } from '../../agent/exec/runner.js';
import {
  checkDatabaseName, createDatabaseSql, createRoleSql, databaseExistsSql, databaseSizeSql, freshRestoreArgs,
  hostRestoreArgs, hostVerifyArgs, missingRole, parseRowCounts, pgIsReadyArgs, psqlArgs, quoteIdent, quoteLiteral, restoreErrorLine, ROW_COUNTS_SQL, THROWAWAY_LABEL, throwawaySpec,
} from '../../agent/duties/backups/pg-commands.js';
import { ByteCounter, openCounted } from '../../agent/duties/backups/pg-feed.js';
import type { BytesProgress } from '../../agent/duties/backups/pg-target.js';
import { hostConnection, withPassfile } from '../../agent/duties/backups/source-host.js';

const dir = mkdtempSync(join(tmpdir(), 'dhtest-pgtarget-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const isInvalid = (e: unknown) => e instanceof DomainError && e.kind === 'invalid';

describe('database names and SQL quoting', () => {
  it('accepts plain identifiers and refuses everything else', () => {
    for (const ok of ['app', 'App_2', '_x', 'a-b', 'a$b', 'x'.repeat(63)]) assert.equal(checkDatabaseName(ok), ok);
    for (const bad of ['', '1app', 'a b', 'a"b', "a'b", 'a;b', 'x'.repeat(64), 'a\nb', 'é']) assert.throws(() => checkDatabaseName(bad), isInvalid, bad);
  });

  it('quotes identifiers and literals by doubling their quotes', () => {
    assert.equal(quoteIdent('app'), '"app"');
    assert.equal(quoteIdent('a"b'), '"a""b"');
    assert.equal(quoteLiteral("it's"), "'it''s'");
  });

  it('builds the statements with the name quoted, and refuses bad names there too', () => {
    assert.equal(databaseExistsSql('app-2'), "SELECT count(*) FROM pg_database WHERE datname = 'app-2'");
    assert.equal(databaseSizeSql('app'), "SELECT pg_database_size('app')");
    assert.equal(createDatabaseSql('app-2'), 'CREATE DATABASE "app-2"');
    assert.equal(createDatabaseSql('app', 'owner$1'), 'CREATE DATABASE "app" OWNER "owner$1"');
    assert.equal(createRoleSql('app'), 'CREATE ROLE "app"');
    assert.throws(() => createDatabaseSql('x"; DROP DATABASE y; --'), isInvalid);
    assert.throws(() => databaseExistsSql("x' OR '1'='1"), isInvalid);
  });

  it('counts rows with the table names quoted by format(%I), outside the system schemas', () => {
    assert.match(ROW_COUNTS_SQL, /format\('SELECT count\(\*\) AS c FROM %I\.%I', n\.nspname, c\.relname\)/);
    assert.match(ROW_COUNTS_SQL, /NOT IN \('pg_catalog', 'information_schema'\)/);
  });

  it('parses the row counts, and refuses anything else', () => {
    assert.deepEqual(parseRowCounts('{"public.items" : 3, "s2.odd \\"name|x" : 0}\n'), { 'public.items': 3, 's2.odd "name|x': 0 });
    assert.deepEqual(parseRowCounts('{}'), {});
    for (const bad of ['', 'ERROR', '[]', '{"a": -1}', '{"a": "3"}', '{"a": 1.5}']) assert.throws(() => parseRowCounts(bad), Error, bad);
  });
});

describe('pg_restore and psql argument lists', () => {
  it('throwaway: restore into a fresh database, nothing to clean, in one transaction', () => {
    assert.deepEqual(freshRestoreArgs({ user: 'postgres', database: 'app' }), ['pg_restore', '--single-transaction', '--no-password', '--username=postgres', '--dbname=app']);
    assert.throws(() => freshRestoreArgs({ user: 'postgres', database: '--help' }), isInvalid);
  });

  it('psql reads no psqlrc, stops at the first error and never prompts', () => {
    assert.deepEqual(psqlArgs({ user: 'u', database: 'postgres', sql: 'SELECT 1' }), [
      'psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '--no-password', '--username=u', '--dbname=postgres', '-c', 'SELECT 1',
    ]);
    assert.deepEqual(pgIsReadyArgs(), ['pg_isready', '-q', '-h', '127.0.0.1']);
  });

  it('host: the URL carries no password; one that does is refused', () => {
    const conn = hostConnection({ url: 'postgres://app:s3cr%3At@127.0.0.1:5432/ignored', database: 'app2' });
    const argv = hostRestoreArgs({ pgRestore: 'pg_restore', url: conn.url });
    assert.deepEqual(argv, ['pg_restore', '--clean', '--if-exists', '--single-transaction', '--no-password', '--dbname=postgres://app@127.0.0.1:5432/app2']);
    assert.ok(!argv.join(' ').includes('s3cr'));
    assert.throws(() => hostRestoreArgs({ pgRestore: 'pg_restore', url: 'postgres://app:pw@h/app' }), /password/);
    assert.deepEqual(hostVerifyArgs('/usr/bin/pg_restore'), ['/usr/bin/pg_restore', '-f', '/dev/null']);
  });

  it('the throwaway container has no network, no ports, trust auth and the label', () => {
    const s = throwawaySpec({ image: 'postgres:16', password: 'abc' });
    assert.equal(s.Image, 'postgres:16');
    assert.equal(s.HostConfig.NetworkMode, 'none');
    assert.deepEqual(s.HostConfig.PortBindings, {});
    assert.deepEqual(s.ExposedPorts, {});
    assert.equal(s.Labels[THROWAWAY_LABEL], 'backup-verify');
    assert.ok(s.Env.includes('POSTGRES_HOST_AUTH_METHOD=trust'));
    assert.ok(s.Env.includes('POSTGRES_PASSWORD=abc'));
    assert.equal(s.Tty, false);
  });

  it("pg_restore's error line is its last `pg_restore: error:` line, not the SQL after it", () => {
    const stderr = 'pg_restore: error: could not execute query: ERROR:  role "x" does not exist\nCommand was: ALTER TABLE public.t OWNER TO x;\n\n';
    assert.equal(restoreErrorLine(stderr), 'pg_restore: error: could not execute query: ERROR:  role "x" does not exist');
    assert.equal(restoreErrorLine('pg_restore: error: could not read from input file: end of file\n'), 'pg_restore: error: could not read from input file: end of file');
    assert.equal(restoreErrorLine('something else\r\n'), 'something else');
    assert.equal(restoreErrorLine(''), '');
  });

  it('names the role a restore missed, when that is the reason', () => {
    assert.equal(missingRole('pg_restore: error: could not execute query: ERROR:  role "reader" does not exist'), 'reader');
    assert.equal(missingRole('pg_restore: error: could not execute query: ERROR:  role "a b" does not exist'), undefined);
    assert.equal(missingRole('pg_restore: error: could not read from input file: end of file'), undefined);
  });
});

describe('feeding a file to a program', () => {
  it('counts every byte, reports throttled and once at the end', async () => {
    const events: BytesProgress[] = [];
    const c = new ByteCounter(30, (e) => events.push(e), 60_000);
    const out: Buffer[] = [];
    c.on('data', (b: Buffer) => out.push(b));
    await pipeline(Readable.from([Buffer.alloc(10), Buffer.alloc(20)]), c);
    assert.equal(Buffer.concat(out).length, 30);
    assert.equal(events.length, 2, 'the first chunk, then the end');
    assert.deepEqual({ bytes: events[1]!.bytes, total: events[1]!.total }, { bytes: 30, total: 30 });
  });

  it('openCounted refuses a missing file and a directory as failed', async () => {
    await assert.rejects(openCounted(join(dir, 'nope'), 'x'), (e: unknown) => e instanceof DomainError && e.kind === 'failed' && /no such file/.test(e.message));
    await assert.rejects(openCounted(dir, 'x'), (e: unknown) => e instanceof DomainError && /not a regular file/.test(e.message));
  });

  it('the runner streams a file into stdin with end of file after it', async () => {
    const f = join(dir, 'data');
    writeFileSync(f, Buffer.alloc(5 << 20, 7));
    const { stream, counter } = await openCounted(f, 'x');
    const r = await run({ argv: ['wc', '-c'], inputStream: stream });
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), String(5 << 20));
    assert.equal(counter.bytes, statSync(f).size);
  });

  it('a program that stops reading early is no error of the run: its exit status tells', async () => {
    const f = join(dir, 'big');
    writeFileSync(f, Buffer.alloc(16 << 20, 1));
    const { stream } = await openCounted(f, 'x');
    const r = await run({ argv: ['sh', '-c', 'head -c 10 >/dev/null; exit 3'], inputStream: stream });
    assert.equal(r.code, 3);
  });

  it('a failing input stream rejects the run', async () => {
    const broken = new Readable({
      read() {
        this.destroy(new Error('disk went away'));
      },
    });
    await assert.rejects(run({ argv: ['cat'], inputStream: broken }), /cannot read the input of cat: disk went away/);
  });

  it('withPassfile writes a 0600 file in a private directory and removes both', async () => {
    let seen = '';
    await withPassfile('pw:x', async (env) => {
      seen = env.PGPASSFILE!;
      assert.equal(statSync(seen).mode & 0o777, 0o600);
      assert.equal(statSync(join(seen, '..')).mode & 0o777, 0o700);
    });
    assert.equal(existsSync(seen), false);
    assert.equal(existsSync(join(seen, '..')), false);
    assert.deepEqual(await withPassfile(undefined, async (env) => env), {});
  });
});
