// What the backups duty shows, from kept summaries: the health check's words
// after a failed run, the gauges, and status.get's source without a password.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackupConfig } from '../../agent/duties/backups/config.js';
import type { StoredBackup } from '../../agent/duties/backups/store.js';
import { backupGauges, backupStatus, healthChecks, type Summary } from '../../agent/duties/backups/view.js';

const H = 3600_000;
const NOW = Date.UTC(2026, 5, 1, 12);
const config = (name: string, source: BackupConfig['source']): BackupConfig => ({ name, schedule: '0 2 * * *', source, retention: { days: 30, minKeep: 3 }, verify: 'read' });
const record = (over: Partial<StoredBackup>): StoredBackup => ({ id: 1, name: 'db', startedAt: NOW - 2 * H, finishedAt: NOW - 2 * H + 60_000, status: 'verified', trigger: 'schedule', actor: 'schedule', file: '/b/db.dump', verify: 'read', size: 1000, ...over });

describe('backups view', () => {
  const db = config('db', { service: 'postgres', database: 'app' });
  const url = config('remote', { url: 'postgres://app:s3cret@127.0.0.1:5432/app', database: 'app' });

  it('a failed run after the last verified one is named in the output; the status still follows the age', () => {
    const summaries = new Map<string, Summary>([['db', { lastVerified: record({}), lastRun: record({ id: 2, status: 'failed', error: 'pg_dump: error: connection refused' }), expectedSince: NOW - 100 * H, failuresTotal: 1 }]]);
    const [check] = healthChecks([db], summaries, NOW)['backup:db']!;
    assert.equal(check!.status, 'pass');
    assert.match(check!.output!, /last verified backup is 2h old; the last run \(2\) failed: pg_dump: error: connection refused/);
  });

  it('no verified backup for longer than twice the interval fails', () => {
    const summaries = new Map<string, Summary>([['db', { expectedSince: NOW - 49 * H, failuresTotal: 0 }]]);
    assert.equal(healthChecks([db], summaries, NOW)['backup:db']![0]!.status, 'fail');
  });

  it('gauges carry the last verified backup, and nothing for a backup without one', () => {
    const summaries = new Map<string, Summary>([['db', { lastVerified: record({ size: 4096 }), expectedSince: 0, failuresTotal: 3 }], ['remote', { expectedSince: 0, failuresTotal: 0 }]]);
    const byName = Object.fromEntries(backupGauges([db, url], summaries).map((g) => [g.name, g.samples()]));
    assert.deepEqual(byName.deckhand_backup_last_size_bytes, [{ labels: { backup: 'db' }, value: 4096 }]);
    assert.deepEqual(byName.deckhand_backup_last_duration_seconds, [{ labels: { backup: 'db' }, value: 60 }]);
    assert.deepEqual(byName.deckhand_backup_failures_total, [{ labels: { backup: 'db' }, value: 3 }, { labels: { backup: 'remote' }, value: 0 }]);
    assert.deepEqual(byName.deckhand_backup_last_success_timestamp_seconds, [{ labels: { backup: 'db' }, value: (NOW - 2 * H + 60_000) / 1000 }]);
  });

  it('status names the source without the password, and the next run in host local time', () => {
    const summaries = new Map<string, Summary>([['remote', { expectedSince: NOW, failuresTotal: 0 }]]);
    const [s] = backupStatus([url], summaries, () => true, NOW);
    assert.equal(s!.source, 'postgres://app:***@127.0.0.1:5432/app');
    assert.equal(s!.running, true);
    assert.equal(new Date(s!.nextRunAt!).getHours(), 2);
    assert.ok(!JSON.stringify(s).includes('s3cret'));
  });
});
