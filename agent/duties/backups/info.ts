// Records as the API shows them: ISO times, and `verified` true only for a
// finished, verified backup (a missing file is not one).
import type { BackupInfo, RestoreInfo } from '../../api/protocol.js';
import type { StoredBackup, StoredRestore } from './store.js';

const iso = (t: number) => new Date(t).toISOString();

export function backupInfo(b: StoredBackup): BackupInfo {
  return {
    id: b.id,
    name: b.name,
    startedAt: iso(b.startedAt),
    ...(b.finishedAt !== undefined ? { finishedAt: iso(b.finishedAt), durationMs: b.finishedAt - b.startedAt } : {}),
    status: b.status,
    verified: b.status === 'verified',
    trigger: b.trigger,
    actor: b.actor,
    file: b.file,
    ...(b.size !== undefined ? { size: b.size } : {}),
    ...(b.sha256 ? { sha256: b.sha256 } : {}),
    verify: b.verify,
    ...(b.rows ? { rows: b.rows } : {}),
    ...(b.timings ? { timings: b.timings } : {}),
    ...(b.error ? { error: b.error } : {}),
    ...(b.sizeDrop ? { sizeDrop: true } : {}),
  };
}

export function restoreInfo(r: StoredRestore): RestoreInfo {
  return {
    id: r.id,
    backupId: r.backupId,
    name: r.name,
    database: r.database,
    newDatabase: r.newDatabase,
    actor: r.actor,
    startedAt: iso(r.startedAt),
    ...(r.finishedAt !== undefined ? { finishedAt: iso(r.finishedAt), durationMs: r.finishedAt - r.startedAt } : {}),
    status: r.status,
    ...(r.safetyBackupId !== undefined ? { safetyBackupId: r.safetyBackupId } : {}),
    ...(r.error ? { error: r.error } : {}),
  };
}
