// Which backup files to delete and which records to change, decided from the
// records and what is on disk. Pure: the duty lists the directory, calls
// planRotation, then unlinks and updates the store.
//
// The rules (SPEC "Backups:", plus where it is silent):
//  1. A verified backup is deleted only when it is older than `retention.days`
//     (strictly: exactly `days` old stays) AND at least `minKeep` newer
//     verified backups whose files are present remain.
//  2. After a failed run nothing verified is deleted: the latest run failed
//     when the caller says so or when the newest record (by creation order)
//     is failed, partial or interrupted.
//  3. Failed, partial and interrupted runs never count; their files (final
//     name or `.partial`) are removed. A `.partial` file of this backup with
//     no record (the agent died before recording) is removed too, except the
//     file of a run in progress.
//  4. A verified record whose file is gone (deleted by hand) is marked
//     missing and does not count as one of the minKeep.
//  5. Clock jumps. "Newer" means created later (the record id), never a later
//     timestamp: a backup dated in the future by a clock that ran ahead and
//     was corrected would otherwise outrank every real one and let the real
//     newest be deleted in its place. Its age is negative, so a backup dated
//     after `now` is never deleted by age (it still counts, for the backups created before it, as newer: it was
//     made after them). A clock behind the truth only makes backups look
//     younger, which deletes less. A clock ahead of the truth looks exactly
//     like a real outage followed by a run; no rule over the records can
//     tell them apart, so the guarantee there is rule 1's floor: the
//     `minKeep` newest verified backups are never deleted by rotation.
//  6. Records that no longer describe a file (expired ones just deleted, and
//     failed/partial/interrupted/missing ones older than `retention.days`)
//     are dropped; newer failures stay listed so the operator sees them.
//  7. Files not named as this backup's (`<name>-<UTC time>.dump[.partial]`)
//     are never touched: a shared `dir` may hold other backups, and a `.dump`
//     without a record may be one an operator copied back in.
import { basename } from 'node:path';
import { parseBackupFileName, partialPath } from './commands.js';
import { newestFirst, type BackupRecord, type BackupStatus } from './record.js';

export const DAY_MS = 24 * 3600_000;

export interface Retention {
  days: number;
  minKeep: number;
}

export interface RotationInput {
  /** This backup's name: only its records and files are considered. */
  name: string;
  records: readonly BackupRecord[];
  /** The paths that exist: every record's file and `.partial`, and the directory's listing. */
  present: ReadonlySet<string>;
  retention: Retention;
  now: number;
  latestRunFailed: boolean;
  /** The `.partial` file of a run still writing, if any: never a leftover. */
  activeFile?: string;
}

export type DeletionReason = 'expired' | 'failed' | 'partial' | 'interrupted' | 'leftover';

export interface Deletion {
  path: string;
  reason: DeletionReason;
  /** The record it belongs to; absent for a leftover with no record. */
  id?: number;
}

export interface RotationPlan {
  delete: Deletion[];
  /** Verified records whose file is gone: set their status to missing. */
  markMissing: number[];
  /** Records to remove from the store once their files (if any) are deleted. */
  dropRecords: number[];
  /** Verified backups that remain, newest first. */
  keep: number[];
  /** Whether rule 2 held back deletions of verified backups. */
  heldBack: boolean;
}

const NOT_COUNTED: ReadonlySet<BackupStatus> = new Set(['failed', 'partial', 'interrupted']);

export function planRotation(input: RotationInput): RotationPlan {
  const { present, retention, now } = input;
  const records = newestFirst(input.records.filter((r) => r.name === input.name));
  const newest = records[0];
  const heldBack = input.latestRunFailed || (newest !== undefined && NOT_COUNTED.has(newest.status));
  const cutoff = now - retention.days * DAY_MS;
  // Strictly older than `days`; a record dated after `now` (clock moved back) has a negative age and never qualifies.
  const expiredByAge = (r: BackupRecord) => r.startedAt < cutoff;

  const plan: RotationPlan = { delete: [], markMissing: [], dropRecords: [], keep: [], heldBack };
  const claimed = new Set<string>();
  const remove = (path: string, reason: DeletionReason, id?: number) => {
    claimed.add(path);
    if (present.has(path) && path !== input.activeFile) plan.delete.push({ path, reason, ...(id === undefined ? {} : { id }) });
  };

  let newerVerified = 0;
  for (const r of records) {
    const partial = partialPath(r.file);
    claimed.add(r.file);
    claimed.add(partial);
    if (r.status === 'verified') {
      // A verified run renamed its `.partial`; one left beside it is debris of an earlier attempt.
      remove(partial, 'partial', r.id);
      if (!present.has(r.file)) {
        plan.markMissing.push(r.id);
        continue;
      }
      if (!heldBack && newerVerified >= retention.minKeep && expiredByAge(r)) {
        remove(r.file, 'expired', r.id);
        plan.dropRecords.push(r.id);
      } else {
        plan.keep.push(r.id);
        newerVerified += 1;
      }
      continue;
    }
    if (r.status === 'missing') {
      if (expiredByAge(r)) plan.dropRecords.push(r.id);
      continue;
    }
    // failed, partial, interrupted: whatever they left is not a backup.
    remove(r.file, r.status, r.id);
    remove(partial, r.status, r.id);
    if (expiredByAge(r)) plan.dropRecords.push(r.id);
  }

  // `.partial` files of this backup that no record claims.
  for (const path of [...present].sort()) {
    if (claimed.has(path)) continue;
    const parsed = parseBackupFileName(basename(path));
    if (parsed?.partial && parsed.name === input.name) remove(path, 'leftover');
  }
  return plan;
}
