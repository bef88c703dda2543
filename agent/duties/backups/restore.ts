// One restore, start to end. Nothing is touched until the backup's file is
// proven to be the one that was verified (its SHA-256) and a safety backup
// of the database as it is now has itself been verified; the restore is one
// transaction, so a failure part-way leaves the database as it was. The
// record names the safety backup: restoring that one undoes this restore.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import type { BackupEvent, BackupStep } from '../../api/protocol.js';
import { DomainError, failed, type Progress } from '../../errors.js';
import type { ByteProgress } from './run.js';
import type { BackupStore, StoredBackup, StoredRestore } from './store.js';

/** What a restore needs of PostgreSQL, on the backup's side (container or host). */
export interface RestoreTools {
  restore(file: string, database: string, o: { signal: AbortSignal; onProgress: (p: ByteProgress) => void }): Promise<void>;
  databaseExists(database: string): Promise<boolean>;
  createDatabase(database: string): Promise<void>;
}

export interface RestoreRequest {
  backup: StoredBackup;
  /** The backup's own database (config source.database). */
  database: string;
  /** Restore into this new database instead. */
  to?: string;
  actor: string;
}

export interface RestoreDeps {
  store: BackupStore;
  tools: RestoreTools;
  /** Takes the safety backup of `database` (a full backup run, verified) and resolves with its record. */
  safetyBackup(): Promise<StoredBackup>;
  progress: Progress<BackupEvent>;
  signal: AbortSignal;
}

/** SHA-256 of a file, streamed, with progress. */
export async function fileSha256(path: string, onProgress?: (p: ByteProgress) => void, signal?: AbortSignal): Promise<string> {
  const total = (await stat(path)).size;
  const hash = createHash('sha256');
  const t0 = performance.now();
  let bytes = 0;
  let last = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20, ...(signal ? { signal } : {}) })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
    const now = performance.now();
    if (onProgress && now - last > 250) {
      last = now;
      const elapsedMs = Math.round(now - t0);
      onProgress({ bytes, total, elapsedMs, bytesPerSecond: elapsedMs ? Math.round((bytes * 1000) / elapsedMs) : 0 });
    }
  }
  return hash.digest('hex');
}

/** Refusals that need no work: checked before the restore's record exists. */
export function restoreRefusal(b: StoredBackup | undefined, id: number): DomainError | null {
  if (!b) return new DomainError('not_found', `no backup ${id} (deckhand backup list)`);
  if (b.status === 'missing') return failed(`backup ${id}'s file ${b.file} is gone (deleted outside deckhand); choose another (deckhand backup list ${b.name})`);
  if (b.status !== 'verified' || !b.sha256) return failed(`backup ${id} is not a verified backup (${b.status}${b.error ? `: ${b.error}` : ''}); only verified backups can be restored`);
  return null;
}

export async function runRestore(req: RestoreRequest, deps: RestoreDeps): Promise<StoredRestore> {
  const { store, tools, progress, signal } = deps;
  const { backup } = req;
  const database = req.to ?? req.database;
  const record = store.beginRestore({ backupId: backup.id, name: backup.name, database, newDatabase: req.to !== undefined, actor: req.actor, startedAt: Date.now() });
  let step = 'checksum' as BackupStep;
  let touched = false;
  let t = performance.now();
  const begin = (s: BackupStep, detail?: string) => {
    step = s;
    t = performance.now();
    progress({ type: 'step', step: s, status: 'started', ...(detail ? { detail } : {}) });
  };
  const ok = (detail?: string) => progress({ type: 'step', step, status: 'ok', ms: Math.round(performance.now() - t), ...(detail ? { detail } : {}) });

  try {
    begin('checksum', backup.file);
    let sha: string;
    try {
      sha = await fileSha256(backup.file, (p) => progress({ type: 'progress', step: 'verify', ...p }), signal);
    } catch (err) {
      throw failed(`cannot read backup ${backup.id}'s file ${backup.file}: ${(err as Error).message}; nothing was touched`);
    }
    if (sha !== backup.sha256) {
      throw failed(`backup ${backup.id}'s file ${backup.file} has changed since it was verified (SHA-256 ${sha.slice(0, 16)}…, recorded ${backup.sha256!.slice(0, 16)}…); refusing to restore it, nothing was touched`, { sha256: sha, recorded: backup.sha256 });
    }
    ok('SHA-256 matches the verified backup');

    if (req.to !== undefined && (await tools.databaseExists(req.to))) {
      throw failed(`database ${req.to} already exists; --to restores into a new database (choose another name, or restore without --to to replace ${req.database})`);
    }

    begin('safety', `a backup of ${req.database} as it is now`);
    const safety = await deps.safetyBackup();
    if (safety.status !== 'verified') throw failed(`the safety backup of ${req.database} failed (${safety.error ?? safety.status}); nothing was touched`, { safetyBackupId: safety.id });
    record.safetyBackupId = safety.id;
    store.saveRestore(record);
    ok(`backup ${safety.id}`);

    begin('restore', req.to !== undefined ? `into the new database ${req.to}` : `replacing ${database}`);
    if (req.to !== undefined) await tools.createDatabase(req.to);
    touched = true;
    await tools.restore(backup.file, database, { signal, onProgress: (p) => progress({ type: 'progress', step: 'restore', ...p }) });
    ok();
    const done: StoredRestore = { ...record, status: 'succeeded', finishedAt: Date.now() };
    store.saveRestore(done);
    return done;
  } catch (err) {
    const why = signal.aborted ? 'the agent stopped during the restore' : err instanceof DomainError ? err.message : (err as Error).message;
    // pg_restore runs in one transaction: a failure in it leaves the database as it was.
    const state = touched ? `; pg_restore ran in one transaction, so ${database} was left as it was` : '';
    const undo = record.safetyBackupId !== undefined ? `; the safety backup ${record.safetyBackupId} is kept` : '';
    const message = step === 'restore' ? `restore failed: ${why}${state}${undo}` : why;
    progress({ type: 'step', step, status: 'failed', detail: message });
    const done: StoredRestore = { ...record, status: signal.aborted ? 'interrupted' : 'failed', finishedAt: Date.now(), error: message };
    store.saveRestore(done);
    return done;
  }
}
