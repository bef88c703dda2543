// pg_restore invocations as data, URLs in messages, and the backup file names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  backupFileName, backupFilePath, parseBackupFileName, partialPath, pgRestoreInContainerCmd, pgRestoreVerifyInContainerCmd, redactUrl,
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

describe('pg_restore inside a container', () => {
  it('verify reads the whole stream into /dev/null; restore cleans, in one transaction', () => {
    assert.deepEqual(pgRestoreVerifyInContainerCmd(), ['pg_restore', '-f', '/dev/null']);
    assert.deepEqual(pgRestoreInContainerCmd({ database: 'app2', user: 'app' }), ['pg_restore', '--clean', '--if-exists', '--single-transaction', '--no-password', '--dbname', 'app2', '--username', 'app']);
  });
});


describe('URLs in messages', () => {
  it('redactUrl hides the password only', () => {
    assert.equal(redactUrl('postgres://u:hunter2@h:5432/app'), 'postgres://u:***@h:5432/app');
    assert.equal(redactUrl('postgres://u@h/app'), 'postgres://u@h/app');
  });
});
