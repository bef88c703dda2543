// Free space, size drop, the backup:NAME health check and the cron run times
// behind it, in a host time zone with daylight saving time.
process.env.TZ = 'Europe/Berlin';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backupCheck, FIRST_BACKUP_FREE_BYTES, FREE_SPACE_FLOOR_BYTES, hasFreeSpace, isSizeDrop, requiredFreeBytes } from '../../agent/duties/backups/checks.js';
import { latestVerified } from '../../agent/duties/backups/record.js';
import { nextRunAfter, previousRunAtOrBefore, scheduleIntervalAt } from '../../agent/duties/backups/schedule.js';

const H = 3600_000;
const MiB = 1024 * 1024;
/** Berlin wall-clock time. */
const local = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0) => new Date(y, mo - 1, d, h, mi, s).getTime();

describe('free space before a run', () => {
  it('twice the last verified backup', () => {
    assert.equal(requiredFreeBytes({ lastVerifiedSize: 500 * MiB }), 1000 * MiB);
    assert.equal(hasFreeSpace(1000 * MiB, { lastVerifiedSize: 500 * MiB }), true);
    assert.equal(hasFreeSpace(1000 * MiB - 1, { lastVerifiedSize: 500 * MiB }), false);
  });
  it('never under the floor, even for a tiny or empty last backup', () => {
    assert.equal(requiredFreeBytes({ lastVerifiedSize: 0 }), FREE_SPACE_FLOOR_BYTES);
    assert.equal(requiredFreeBytes({ lastVerifiedSize: 1 * MiB }), FREE_SPACE_FLOOR_BYTES);
  });
  it('first backup: the database size if known, else 1 GiB', () => {
    assert.equal(requiredFreeBytes({ databaseSize: 3000 * MiB }), 3000 * MiB);
    assert.equal(requiredFreeBytes({}), FIRST_BACKUP_FREE_BYTES);
    assert.equal(requiredFreeBytes({ databaseSize: 1 }), FREE_SPACE_FLOOR_BYTES);
  });
  it('the last verified backup wins over the database size', () => {
    assert.equal(requiredFreeBytes({ lastVerifiedSize: 100 * MiB, databaseSize: 5000 * MiB }), 200 * MiB);
  });
  it('"last" means the newest verified by creation order, not the newest record', () => {
    const rs = [
      { id: 1, status: 'verified' as const, size: 10 },
      { id: 3, status: 'failed' as const, size: 1 },
      { id: 2, status: 'verified' as const, size: 20 },
    ];
    assert.equal(latestVerified(rs)?.size, 20);
    assert.equal(latestVerified([{ id: 1, status: 'failed' as const }]), null);
  });
});

describe('size drop', () => {
  it('under half the previous verified one is a drop; exactly half is not', () => {
    assert.equal(isSizeDrop(49, 100), true);
    assert.equal(isSizeDrop(50, 100), false);
    assert.equal(isSizeDrop(101, 100), false);
    assert.equal(isSizeDrop(0, 100), true);
  });
  it('no previous verified backup (or an empty one): no drop', () => {
    assert.equal(isSizeDrop(1, undefined), false);
    assert.equal(isSizeDrop(0, 0), false);
  });
});

describe('cron run times in host local time', () => {
  it('daily at 02:00 local, not UTC', () => {
    const next = nextRunAfter('0 2 * * *', local(2026, 1, 10, 12));
    assert.equal(next, local(2026, 1, 11, 2));
    assert.equal(new Date(next!).toISOString(), '2026-01-11T01:00:00.000Z');
  });
  it('strictly after; previous is at or before', () => {
    const t = local(2026, 1, 10, 2);
    assert.equal(nextRunAfter('0 2 * * *', t), local(2026, 1, 11, 2));
    assert.equal(previousRunAtOrBefore('0 2 * * *', t), t);
    assert.equal(previousRunAtOrBefore('0 2 * * *', t - 1), local(2026, 1, 9, 2));
  });
  it('intervals: every 15 minutes, hourly, daily, weekly, six-field seconds', () => {
    const at = local(2026, 1, 14, 9, 7);
    assert.equal(scheduleIntervalAt('*/15 * * * *', at), 15 * 60_000);
    assert.equal(scheduleIntervalAt('0 * * * *', at), H);
    assert.equal(scheduleIntervalAt('0 2 * * *', at), 24 * H);
    assert.equal(scheduleIntervalAt('0 3 * * sun', at), 7 * 24 * H);
    assert.equal(scheduleIntervalAt('*/30 * * * * *', at), 30_000);
  });
  it('uneven schedules: the gap around the given time', () => {
    // 02:00 and 14:00 then 20:00: gaps 12 h, 6 h, 6 h.
    assert.equal(scheduleIntervalAt('0 2,14,20 * * *', local(2026, 1, 14, 15)), 6 * H);
    assert.equal(scheduleIntervalAt('0 2,14,20 * * *', local(2026, 1, 14, 3)), 12 * H);
    assert.equal(scheduleIntervalAt('0 2,14,20 * * *', local(2026, 1, 14, 21)), 6 * H);
    // weekdays: a Friday backup lasts until Monday, a Monday one until Tuesday (2026-01-16 is a Friday).
    assert.equal(scheduleIntervalAt('0 2 * * 1-5', local(2026, 1, 16, 2, 5)), 72 * H);
    assert.equal(scheduleIntervalAt('0 2 * * 1-5', local(2026, 1, 17, 11)), 72 * H);
    assert.equal(scheduleIntervalAt('0 2 * * 1-5', local(2026, 1, 19, 2, 5)), 24 * H);
  });
  it('month lengths and L: monthly on the last day', () => {
    assert.equal(nextRunAfter('0 3 L * *', local(2026, 2, 1)), local(2026, 2, 28, 3));
    assert.equal(scheduleIntervalAt('0 3 L * *', local(2026, 3, 1)), local(2026, 3, 31, 3) - local(2026, 2, 28, 3));
    assert.equal(nextRunAfter('0 3 1 * *', local(2026, 12, 15)), local(2027, 1, 1, 3));
  });
  it('nth weekday (#) and last weekday (5L)', () => {
    assert.equal(nextRunAfter('0 4 * * 1#2', local(2026, 1, 1)), local(2026, 1, 12, 4)); // second Monday of January 2026
    assert.equal(nextRunAfter('0 4 * * 5L', local(2026, 1, 1)), local(2026, 1, 30, 4)); // last Friday
  });
  it('day-of-month and day-of-week together: both must match, as node-cron does', () => {
    // the 13th that is a Friday: 2026-02-13, then 2026-03-13
    assert.equal(nextRunAfter('0 0 13 * 5', local(2026, 1, 1)), local(2026, 2, 13));
    assert.equal(nextRunAfter('0 0 13 * 5', local(2026, 2, 14)), local(2026, 3, 13));
  });
  it('leap days: Feb 29 runs every four years', () => {
    assert.equal(nextRunAfter('0 0 29 2 *', local(2026, 1, 1)), local(2028, 2, 29));
    assert.equal(scheduleIntervalAt('0 0 29 2 *', local(2026, 1, 1)), local(2028, 2, 29) - local(2024, 2, 29));
  });
  it('a valid schedule that never fires (the 30th as a first Monday) has no next run and no interval', () => {
    assert.equal(nextRunAfter('0 0 30 * 1#1', local(2026, 1, 1)), null);
    assert.equal(scheduleIntervalAt('0 0 30 * 1#1', local(2026, 1, 1)), null);
  });
  it('daylight saving time: the day of the spring change is 23 h, of the autumn change 25 h', () => {
    // Berlin: 2026-03-29 02:00 -> 03:00; 2026-10-25 03:00 -> 02:00
    assert.equal(scheduleIntervalAt('0 4 * * *', local(2026, 3, 28, 5)), 23 * H);
    assert.equal(scheduleIntervalAt('0 4 * * *', local(2026, 10, 24, 5)), 25 * H);
  });
  it('a run in the skipped hour does not happen that day', () => {
    assert.equal(nextRunAfter('30 2 * * *', local(2026, 3, 28, 12)), local(2026, 3, 30, 2, 30));
  });
  it('agrees with node-cron about the next runs', async () => {
    const { createTask } = await import('node-cron');
    for (const expr of ['0 2 * * *', '*/15 * * * *', '0 2 * * 1-5', '0 3 L * *', '0 4 * * 1#2', '0 0 13 * 5', '15 3 * * 6L']) {
      const task = createTask(expr, () => {});
      try {
        const theirs = task.getNextRuns(5).map((d) => d.getTime());
        const ours: number[] = [];
        let t = Date.now();
        for (let i = 0; i < 5; i++) ours.push((t = nextRunAfter(expr, t)!));
        assert.deepEqual(ours, theirs, expr);
      } finally {
        await task.destroy();
      }
    }
  });
});

describe('backup:NAME health check', () => {
  const schedule = '0 2 * * *';
  const started = local(2026, 1, 14, 2);
  const finished = started + 30 * 60_000;
  const check = (now: number, lastVerified: { startedAt: number; finishedAt?: number } | undefined = { startedAt: started, finishedAt: finished }) =>
    backupCheck({ schedule, lastVerified, expectedSince: local(2026, 1, 1), now });

  it('fresh: pass, with the age in hours since it finished', () => {
    assert.deepEqual(check(finished + 5 * H), { status: 'pass', observedValue: 5, observedUnit: 'h', output: 'last verified backup is 5h old' });
  });
  it('older than interval + 2 h: warn, worded as SPEC shows', () => {
    assert.deepEqual(check(finished + 27.5 * H), { status: 'warn', observedValue: 27.5, observedUnit: 'h', output: 'last verified backup is 27.5h old' });
  });
  it('boundaries: exactly interval + 2 h is pass, exactly twice the interval is warn, beyond is fail', () => {
    assert.equal(check(finished + 26 * H).status, 'pass');
    assert.equal(check(finished + 26 * H + 1).status, 'warn');
    assert.equal(check(finished + 48 * H).status, 'warn');
    assert.equal(check(finished + 48 * H + 1).status, 'fail');
  });
  it('without finishedAt the age counts from the start', () => {
    assert.equal(check(started + 27 * H, { startedAt: started }).observedValue, 27);
  });
  it('the interval comes from the schedule: a weekly backup at 100 h is fine', () => {
    const weekly = backupCheck({ schedule: '0 3 * * sun', lastVerified: { startedAt: local(2026, 1, 11, 3), finishedAt: local(2026, 1, 11, 3) }, expectedSince: 0, now: local(2026, 1, 11, 3) + 100 * H });
    assert.equal(weekly.status, 'pass');
  });
  it('weekdays only: Friday\'s backup on Monday morning is not late', () => {
    const fri = local(2026, 1, 16, 2, 10);
    const r = backupCheck({ schedule: '0 2 * * 1-5', lastVerified: { startedAt: fri, finishedAt: fri }, expectedSince: 0, now: local(2026, 1, 19, 3) });
    assert.equal(r.status, 'pass');
  });
  it('a backup dated in the future (clock moved back): warn, not a negative age', () => {
    const r = check(finished - 3 * H);
    assert.equal(r.status, 'warn');
    assert.match(String(r.output), /3h in the future/);
    assert.equal(r.observedValue, undefined);
  });
  it('a few minutes of skew is tolerated as age 0', () => {
    assert.deepEqual(check(finished - 60_000), { status: 'pass', observedValue: 0, observedUnit: 'h', output: 'last verified backup is 0h old' });
  });
  it('no verified backup yet: pass within the first interval, then warn, then fail, from when one was expected', () => {
    const since = local(2026, 1, 14, 10);
    const r = (now: number) => backupCheck({ schedule, expectedSince: since, now });
    assert.deepEqual(r(since + H), { status: 'pass', output: 'no verified backup yet' });
    assert.deepEqual(r(since + 30 * H), { status: 'warn', output: 'no verified backup in 30h' });
    assert.equal(r(since + 49 * H).status, 'fail');
  });
});
