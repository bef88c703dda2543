// Rotation as data: which files go, which records change, under gaps,
// failures, clock jumps, hand-deleted files and retention boundaries.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backupFilePath, partialPath } from '../../agent/duties/backups/commands.js';
import type { BackupRecord, BackupStatus } from '../../agent/duties/backups/record.js';
import { DAY_MS, planRotation, type RotationInput } from '../../agent/duties/backups/rotation.js';

const DIR = '/var/backups/deckhand/db';
const NOW = Date.UTC(2026, 5, 1, 2, 0, 0);
const retention = { days: 30, minKeep: 3 };

let nextId = 1;
function rec(daysAgo: number, status: BackupStatus = 'verified', o: Partial<BackupRecord> = {}): BackupRecord {
  const startedAt = NOW - daysAgo * DAY_MS;
  return { id: nextId++, name: 'db', startedAt, finishedAt: startedAt + 60_000, status, file: backupFilePath(DIR, 'db', startedAt), size: 1000, ...o };
}
/** Records in creation order, one per entry of `daysAgo` (oldest first). */
function series(daysAgo: number[], status: BackupStatus = 'verified') {
  return daysAgo.map((d) => rec(d, status));
}
const filesOf = (rs: BackupRecord[]) => new Set(rs.filter((r) => r.status !== 'missing').map((r) => r.file));
function plan(records: BackupRecord[], o: Partial<RotationInput> = {}) {
  return planRotation({ name: 'db', records, present: filesOf(records), retention, now: NOW, latestRunFailed: false, ...o });
}
const deletedIds = (p: ReturnType<typeof plan>) => p.delete.map((d) => d.id).sort((a, b) => (a ?? 0) - (b ?? 0));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => to - i); // days ago, oldest first

describe('rotation: age and minKeep', () => {
  it('daily backups for 40 days: deletes exactly those older than 30 days', () => {
    const rs = series(range(0, 39));
    const p = plan(rs);
    const expired = rs.filter((r) => NOW - r.startedAt > 30 * DAY_MS).map((r) => r.id);
    assert.equal(expired.length, 9);
    assert.deepEqual(deletedIds(p), expired);
    assert.ok(p.delete.every((d) => d.reason === 'expired'));
    assert.deepEqual(p.dropRecords.sort((a, b) => a - b), expired);
    assert.equal(p.keep.length, 31);
    assert.deepEqual(p.markMissing, []);
    assert.equal(p.heldBack, false);
  });

  it('a backup exactly `days` old is kept; one millisecond older is deleted', () => {
    const exact = rec(30);
    const older = rec(30, 'verified', { startedAt: NOW - 30 * DAY_MS - 1, file: backupFilePath(DIR, 'db', NOW - 30 * DAY_MS - 1) });
    // creation order: older first
    older.id = 0;
    const rs = [older, exact, ...series([2, 1, 0])];
    const p = plan(rs);
    assert.deepEqual(deletedIds(p), [0]);
    assert.ok(p.keep.includes(exact.id));
  });

  it('a long gap in the schedule: old backups stay until minKeep newer verified exist', () => {
    // agent off for 60 days: two old backups, then one new one.
    const rs = series([100, 99, 98, 97, 0]);
    const p = plan(rs);
    // The four old ones are all expired; 97 has 1 newer, 98 has 2, 99 has 3, 100 has 4.
    assert.deepEqual(deletedIds(p), [rs[0]!.id, rs[1]!.id]);
    assert.deepEqual(p.keep, [rs[4]!.id, rs[3]!.id, rs[2]!.id]);
  });

  it('minKeep larger than what exists: nothing is deleted, however old', () => {
    const rs = series([400, 300, 200]);
    const p = plan(rs, { retention: { days: 30, minKeep: 5 } });
    assert.deepEqual(p.delete, []);
    assert.equal(p.keep.length, 3);
  });

  it('the minKeep newest verified are never deleted even if all are old', () => {
    const rs = series([90, 80, 70, 60, 50]);
    const p = plan(rs, { retention: { days: 1, minKeep: 3 } });
    assert.deepEqual(p.keep, [rs[4]!.id, rs[3]!.id, rs[2]!.id]);
    assert.deepEqual(deletedIds(p), [rs[0]!.id, rs[1]!.id]);
  });

  it('many backups a day: minKeep counts backups, not days', () => {
    // 24 hourly backups 40 days ago, nothing since but three today.
    const old = Array.from({ length: 24 }, (_, h) => rec(40 - h / 24));
    const today = series([0.2, 0.1, 0]);
    const p = plan([...old, ...today]);
    assert.equal(p.delete.length, 24);
    assert.deepEqual(p.keep, today.map((r) => r.id).reverse());
  });

  it('only the backup of this name is considered', () => {
    const other = rec(100, 'verified', { name: 'other', file: backupFilePath(DIR, 'other', NOW - 100 * DAY_MS) });
    const rs = [other, ...series([100, 3, 2, 1])];
    const p = plan(rs);
    assert.ok(!p.delete.some((d) => d.id === other.id));
    assert.equal(p.delete.length, 1);
  });
});

describe('rotation: failures', () => {
  it('a failed latest run (flag) keeps every verified backup', () => {
    const rs = series(range(0, 39));
    const p = plan(rs, { latestRunFailed: true });
    assert.deepEqual(p.delete, []);
    assert.equal(p.keep.length, 40);
    assert.equal(p.heldBack, true);
  });

  for (const status of ['failed', 'partial', 'interrupted'] as const) {
    it(`a newest record that is ${status} holds back deletion of verified ones, but its own file goes`, () => {
      const rs = [...series(range(1, 39)), rec(0, status)];
      const p = plan(rs);
      assert.equal(p.heldBack, true);
      assert.deepEqual(
        p.delete.map((d) => [d.id, d.reason]),
        [[rs.at(-1)!.id, status]],
      );
    });
  }

  it('failed files never count toward minKeep and are removed', () => {
    const rs = [...series([50, 40]), ...series([3, 2, 1], 'failed'), rec(0)];
    const p = plan(rs);
    assert.deepEqual(p.keep, [rs[5]!.id, rs[1]!.id, rs[0]!.id]);
    assert.deepEqual(
      p.delete.map((d) => d.reason),
      ['failed', 'failed', 'failed'],
    );
  });

  it('a failed run\'s .partial file is removed as well as its final name', () => {
    const f = rec(1, 'failed');
    const rs = [f, rec(0)];
    const p = plan(rs, { present: new Set([f.file, partialPath(f.file), rs[1]!.file]) });
    assert.deepEqual(p.delete.map((d) => d.path).sort(), [f.file, partialPath(f.file)].sort());
  });

  it('a failed record without a file deletes nothing; an old one is dropped, a recent one stays listed', () => {
    const old = rec(45, 'failed');
    const recent = rec(2, 'failed');
    const rs = [old, recent, ...series([1, 0])];
    const p = plan(rs, { present: new Set(rs.slice(2).map((r) => r.file)) });
    assert.deepEqual(p.delete, []);
    assert.deepEqual(p.dropRecords, [old.id]);
  });

  it('an orphan .partial of this backup is a leftover; another backup\'s and the active run\'s are not touched', () => {
    const rs = series([1, 0]);
    const orphan = partialPath(backupFilePath(DIR, 'db', NOW - 5 * DAY_MS));
    const active = partialPath(backupFilePath(DIR, 'db', NOW + 1000));
    const others = partialPath(backupFilePath(DIR, 'db-x', NOW - 5 * DAY_MS));
    const stray = `${DIR}/notes.txt`;
    const unrecordedDump = backupFilePath(DIR, 'db', NOW - 90 * DAY_MS);
    const p = plan(rs, { present: new Set([...filesOf(rs), orphan, active, others, stray, unrecordedDump]), activeFile: active });
    assert.deepEqual(p.delete, [{ path: orphan, reason: 'leftover' }]);
  });

  it('a .partial left beside a verified file is removed without touching the backup', () => {
    const rs = series([2, 1, 0]);
    const p = plan(rs, { present: new Set([...filesOf(rs), partialPath(rs[0]!.file)]) });
    assert.deepEqual(p.delete, [{ path: partialPath(rs[0]!.file), reason: 'partial', id: rs[0]!.id }]);
    assert.equal(p.keep.length, 3);
  });
});

describe('rotation: files deleted by hand', () => {
  it('a verified record whose file is gone is marked missing and does not count', () => {
    const rs = series([40, 3, 2, 1]);
    // the newest was deleted by hand: the 40-day-old one has only 2 present newer ones.
    const present = new Set(rs.slice(0, 3).map((r) => r.file));
    const p = plan(rs, { present });
    assert.deepEqual(p.markMissing, [rs[3]!.id]);
    assert.deepEqual(p.delete, []);
    assert.deepEqual(p.keep, [rs[2]!.id, rs[1]!.id, rs[0]!.id]);
  });

  it('with enough present newer ones the old one goes even when some newer are missing', () => {
    const rs = series([40, 5, 4, 3, 2, 1]);
    const present = new Set([rs[0]!, rs[2]!, rs[3]!, rs[5]!].map((r) => r.file));
    const p = plan(rs, { present });
    assert.deepEqual(p.markMissing.sort(), [rs[1]!.id, rs[4]!.id].sort());
    assert.deepEqual(deletedIds(p), [rs[0]!.id]);
  });

  it('records already marked missing never count, are not deleted, and are dropped once past retention', () => {
    const rs = [rec(45, 'missing'), rec(10, 'missing'), ...series([40, 2, 1])];
    const p = plan(rs);
    assert.deepEqual(p.delete, []); // 40-day-old has only 2 newer verified
    assert.deepEqual(p.dropRecords, [rs[0]!.id]);
  });
});

describe('rotation: clock jumps', () => {
  it('a backup dated in the future is never deleted and does not outrank backups created after it', () => {
    // Clock ran a year ahead for one run (id 2), was corrected, then daily runs continued.
    const beforeJump = rec(35);
    const future = rec(-365);
    const after = series(range(0, 33));
    const rs = [beforeJump, future, ...after];
    const p = plan(rs);
    assert.ok(p.keep.includes(future.id), 'the future-dated one is kept');
    // The three newest by creation are kept whatever their dates say.
    for (const r of after.slice(-3)) assert.ok(p.keep.includes(r.id));
    // Expired ones: beforeJump (35 d) and after's 33, 32, 31 days old.
    const expected = [beforeJump, ...after.filter((r) => NOW - r.startedAt > 30 * DAY_MS)].map((r) => r.id);
    assert.deepEqual(deletedIds(p), expected);
  });

  it('with the future-dated backup the newest by timestamp, the real newest minKeep still stay', () => {
    // By timestamp the future one would count as the newest, leaving only 2 real recent ones; by creation order it is not.
    const rs = [rec(-100), ...series([45, 44, 43, 42])];
    const p = plan(rs, { retention: { days: 30, minKeep: 3 } });
    assert.deepEqual(p.keep.slice(0, 3), [rs[4]!.id, rs[3]!.id, rs[2]!.id]);
    assert.deepEqual(deletedIds(p), [rs[1]!.id]);
    assert.ok(p.keep.includes(rs[0]!.id));
  });

  it('clock moved back: every backup looks newer than now, nothing is deleted', () => {
    const rs = series(range(0, 39));
    const p = plan(rs, { now: NOW - 365 * DAY_MS });
    assert.deepEqual(p.delete, []);
    assert.equal(p.keep.length, 40);
  });

  it('timestamps out of creation order (clock stepped back between runs): newer means created later', () => {
    // created in order a, b, c, d, e; b..e carry dates 40+ days ago because the clock was set back after a.
    const a = rec(35);
    const rs = [a, rec(45), rec(44), rec(43), rec(0)];
    const p = plan(rs);
    // a (35 d) has four newer; b (45 d) has three newer (c, d, e); c (44 d) only two.
    assert.deepEqual(deletedIds(p), [a.id, rs[1]!.id]);
  });

  it('clock jumped forward: the floor of minKeep newest verified holds', () => {
    const rs = series(range(0, 29));
    const p = plan(rs, { now: NOW + 365 * DAY_MS });
    assert.equal(p.keep.length, 3);
    assert.deepEqual(p.keep, rs.slice(-3).map((r) => r.id).reverse());
  });

  it('input order does not matter: creation order comes from the ids', () => {
    const rs = series(range(0, 39));
    const shuffled = [...rs].reverse();
    assert.deepEqual(plan(shuffled).delete.map((d) => d.id).sort(), plan(rs).delete.map((d) => d.id).sort());
  });
});
