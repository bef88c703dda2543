// pg_dump and pg_restore invocations as data, the pgpass line, and the
// backup file names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  backupFileName, backupFilePath, containerExecOptions, hostPgDump, hostPgRestore, parseBackupFileName, parsePgUrl, partialPath,
  pgDumpInContainerCmd, pgpassField, pgpassLine, pgRestoreInContainerCmd, pgRestoreVerify, pgRestoreVerifyInContainerCmd, redactUrl,
} from '../../agent/duties/backups/commands.js';

const T = Date.UTC(2026, 2, 1, 2, 0, 0, 7);

describe('backup file names', () => {
  it('<name>-<UTC time>.dump, with .partial while written', () => {
    assert.equal(backupFileName('db', T), 'db-20260301T020000.007Z.dump');
    assert.equal(backupFilePath('/srv/b', 'db', T), '/srv/b/db-20260301T020000.007Z.dump');
    assert.equal(partialPath('/srv/b/db-20260301T020000.007Z.dump'), '/srv/b/db-20260301T020000.007Z.dump.partial');
  });
  it('sorts in time order as strings', () => {
    const times = [Date.UTC(2026, 0, 1), Date.UTC(2025, 11, 31, 23, 59, 59, 999), Date.UTC(2026, 0, 1, 0, 0, 0, 1), Date.UTC(2026, 9, 1)];
    const names = times.map((t) => backupFileName('db', t));
    assert.deepEqual([...names].sort(), [...times].sort((a, b) => a - b).map((t) => backupFileName('db', t)));
  });
  it('parses back, names with - and . included', () => {
    for (const name of ['db', 'db-x', 'a.b_c-1']) {
      assert.deepEqual(parseBackupFileName(backupFileName(name, T)), { name, startedAt: T, partial: false });
      assert.deepEqual(parseBackupFileName(backupFileName(name, T) + '.partial'), { name, startedAt: T, partial: true });
    }
  });
  it('rejects other names and impossible dates', () => {
    for (const f of ['db.dump', 'db-20260301T020000Z.dump', 'db-20260301T020000.007Z.dump.tmp', 'db-20260230T020000.000Z.dump', 'db-20261301T020000.000Z.dump', 'db-20260301T250000.000Z.dump', '-20260301T020000.000Z.dump', 'notes.txt']) {
      assert.equal(parseBackupFileName(f), null, f);
    }
  });
});

describe('pg_dump and pg_restore inside a container', () => {
  it('custom format, no password prompt, database and user', () => {
    assert.deepEqual(pgDumpInContainerCmd({ database: 'app', user: 'app' }), ['pg_dump', '-Fc', '--no-password', '--dbname', 'app', '--username', 'app']);
    assert.deepEqual(pgDumpInContainerCmd({ database: 'app' }), ['pg_dump', '-Fc', '--no-password', '--dbname', 'app']);
  });
  it('exec options never allocate a TTY', () => {
    const o = containerExecOptions(pgDumpInContainerCmd({ database: 'app' }));
    assert.equal(o.Tty, false);
    assert.equal(o.AttachStdout, true);
    assert.equal(o.AttachStdin, false);
    assert.equal(containerExecOptions(pgRestoreVerifyInContainerCmd(), { stdin: true }).AttachStdin, true);
  });
  it('verify reads the whole stream into /dev/null; restore cleans, in one transaction', () => {
    assert.deepEqual(pgRestoreVerifyInContainerCmd(), ['pg_restore', '-f', '/dev/null']);
    assert.deepEqual(pgRestoreInContainerCmd({ database: 'app2', user: 'app' }), ['pg_restore', '--clean', '--if-exists', '--single-transaction', '--no-password', '--dbname', 'app2', '--username', 'app']);
  });
});

describe('pg_dump and pg_restore on the host', () => {
  const PASS = '/run/deckhand/pgpass-1';
  it('the password is neither in argv nor in the environment, only in the passfile', () => {
    const { command, passfile } = hostPgDump({ url: 'postgres://backup:s3cr%3At@127.0.0.1:5433/ignored?sslmode=require', database: 'app' }, '/b/db.dump.partial', PASS);
    assert.deepEqual(command.argv, ['pg_dump', '-Fc', '--no-password', '--file', '/b/db.dump.partial', '--dbname', 'app']);
    assert.deepEqual(command.env, { PGSSLMODE: 'require', PGDATABASE: 'app', PGHOST: '127.0.0.1', PGPORT: '5433', PGUSER: 'backup', PGPASSFILE: PASS });
    assert.ok(!JSON.stringify(command).includes('s3cr'));
    assert.deepEqual(passfile, { path: PASS, content: '*:*:app:backup:s3cr\\:t\n' });
  });
  it('no password in the URL: no passfile, no PGPASSFILE', () => {
    const { command, passfile } = hostPgDump({ url: 'postgres://backup@db.internal/app', database: 'app' }, '/b/x', PASS);
    assert.equal(passfile, null);
    assert.deepEqual(command.env, { PGDATABASE: 'app', PGHOST: 'db.internal', PGUSER: 'backup' });
  });
  it('the config user overrides the URL user, in env and passfile', () => {
    const { command, passfile } = hostPgDump({ url: 'postgres://a:pw@h/app', database: 'app', user: 'b' }, '/b/x', PASS);
    assert.equal(command.env?.PGUSER, 'b');
    assert.equal(passfile?.content, '*:*:app:b:pw\n');
  });
  it('a Unix socket directory and an IPv6 address are decoded', () => {
    assert.equal(parsePgUrl('postgres://u@%2Fvar%2Frun%2Fpostgresql/app').host, '/var/run/postgresql');
    assert.equal(parsePgUrl('postgresql://u@[::1]:5432/app').host, '::1');
    assert.equal(parsePgUrl('postgres://u%40corp:p%40ss@h/app').user, 'u@corp');
    assert.equal(parsePgUrl('postgres://u%40corp:p%40ss@h/app').password, 'p@ss');
  });
  it('an unknown URL parameter is refused by name, with the password redacted', () => {
    assert.throws(() => parsePgUrl('postgres://u:hunter2@h/app?sslmod=require'), (e: Error) => /"sslmod"/.test(e.message) && !e.message.includes('hunter2'));
    assert.throws(() => parsePgUrl('mysql://u@h/app'), /not a PostgreSQL URL/);
  });
  it('redactUrl hides the password only', () => {
    assert.equal(redactUrl('postgres://u:hunter2@h:5432/app'), 'postgres://u:***@h:5432/app');
    assert.equal(redactUrl('postgres://u@h/app'), 'postgres://u@h/app');
  });
  it('verify by reading the file; restore with clean, if-exists, one transaction', () => {
    assert.deepEqual(pgRestoreVerify('/b/db.dump').argv, ['pg_restore', '-f', '/dev/null', '/b/db.dump']);
    const r = hostPgRestore({ url: 'postgres://u:pw@h/app', database: 'app_copy' }, '/b/db.dump', PASS);
    assert.deepEqual(r.command.argv, ['pg_restore', '--clean', '--if-exists', '--single-transaction', '--no-password', '--dbname', 'app_copy', '/b/db.dump']);
    assert.equal(r.command.env?.PGPASSFILE, PASS);
    assert.equal(r.passfile?.content, '*:*:app_copy:u:pw\n');
  });
});

describe('pgpass lines', () => {
  it('escapes \\ and : in every field', () => {
    assert.equal(pgpassField('a:b\\c'), 'a\\:b\\\\c');
    assert.equal(pgpassLine({ host: 'h:1', port: '5432', database: 'd', user: 'u\\x', password: 'p:w\\' }), 'h\\:1:5432:d:u\\\\x:p\\:w\\\\\n');
  });
  it('missing fields are wildcards', () => {
    assert.equal(pgpassLine({ password: 'pw' }), '*:*:*:*:pw\n');
  });
  it('a line break cannot be written and is refused', () => {
    assert.throws(() => pgpassLine({ password: 'a\nb' }), /line break/);
  });
});
