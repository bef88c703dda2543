// The backups duty's judgements, pure: free space before a run, the size
// drop after it, and the `backup:NAME` health check (SPEC section 4).
import type { CheckResult } from '../../duty.js';
import { scheduleIntervalAt } from './schedule.js';

const MiB = 1024 * 1024;
/** Never start a dump with less than this free, whatever the estimate: logs, WAL and the dump's own metadata need room too. */
export const FREE_SPACE_FLOOR_BYTES = 64 * MiB;
/** With no verified backup to go by and no database size, assume this much. */
export const FIRST_BACKUP_FREE_BYTES = 1024 * MiB;

export interface FreeSpaceInput {
  /** Size of the newest verified backup; undefined when there is none. */
  lastVerifiedSize?: number;
  /** `pg_database_size()` if the duty could ask for it (first run only). */
  databaseSize?: number;
}

/**
 * Bytes that must be free in the backup directory before a run. SPEC: twice
 * the last backup's size (the new dump plus room for it to grow before
 * rotation frees the old one). With no verified backup yet: the database's
 * own size, since a custom-format dump is compressed and, in practice, not
 * larger than the data it dumps; without that either, 1 GiB. Never under the
 * 64 MiB floor.
 */
export function requiredFreeBytes(i: FreeSpaceInput): number {
  const estimate = i.lastVerifiedSize !== undefined ? 2 * i.lastVerifiedSize : (i.databaseSize ?? FIRST_BACKUP_FREE_BYTES);
  return Math.max(FREE_SPACE_FLOOR_BYTES, estimate);
}

export function hasFreeSpace(freeBytes: number, i: FreeSpaceInput): boolean {
  return freeBytes >= requiredFreeBytes(i);
}

/** A new verified backup under half the previous verified one: kept, but `backup.size_drop` is raised. No previous one, no drop. */
export function isSizeDrop(newSize: number, previousVerifiedSize: number | undefined): boolean {
  if (previousVerifiedSize === undefined || previousVerifiedSize <= 0) return false;
  return newSize * 2 < previousVerifiedSize;
}

// ---------------------------------------------------------------------------
// backup:NAME

export const WARN_GRACE_MS = 2 * 3600_000;
/** A backup dated later than this after now means the clock moved back. */
export const CLOCK_SKEW_TOLERANCE_MS = 5 * 60_000;

export interface BackupCheckInput {
  schedule: string;
  /** The newest verified backup (by creation order), if any. */
  lastVerified?: { startedAt: number; finishedAt?: number };
  /**
   * With no verified backup: since when one has been expected (the earliest
   * recorded attempt, or when the duty first ran with this backup configured).
   */
  expectedSince: number;
  now: number;
}

const hours = (ms: number) => Math.round((ms / 3600_000) * 10) / 10;

/**
 * SPEC 4: older than twice its interval is fail, older than its interval
 * plus 2 hours is warn. The age is counted from when the backup finished
 * (from then on it exists; the 2 h grace is then for the next run's own
 * duration and lateness). The interval is the schedule's gap between the
 * consecutive run times around the backup's start, in host local time, so a
 * weekday-only schedule's Friday backup lasts until Monday.
 */
export function backupCheck(i: BackupCheckInput): CheckResult {
  const v = i.lastVerified;
  const from = v ? (v.finishedAt ?? v.startedAt) : i.expectedSince;
  const interval = scheduleIntervalAt(i.schedule, v ? v.startedAt : i.expectedSince);
  const age = i.now - from;

  if (age < -CLOCK_SKEW_TOLERANCE_MS) {
    const what = v ? 'last verified backup is dated' : 'backups expected since';
    return { status: 'warn', output: `${what} ${hours(-age)}h in the future: the clock moved back?` };
  }
  const clamped = Math.max(0, age);
  const status = interval === null ? 'pass' : clamped > 2 * interval ? 'fail' : clamped > interval + WARN_GRACE_MS ? 'warn' : 'pass';
  if (!v) {
    return { status, output: status === 'pass' ? 'no verified backup yet' : `no verified backup in ${hours(clamped)}h` };
  }
  return { status, observedValue: hours(clamped), observedUnit: 'h', output: `last verified backup is ${hours(clamped)}h old` };
}
