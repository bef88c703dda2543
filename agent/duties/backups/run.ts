// One backup run, start to end: free space, the dump into `.partial`,
// verification of the complete file, the rename, and the record. The record
// is written before the first byte (an agent killed mid-dump leaves it
// `running`, which the next start turns into `interrupted`) and finished
// whatever happens; only a verified run has a file under its final name.
import { mkdir, statfs } from 'node:fs/promises';
import type { BackupEvent, BackupStep } from '../../api/protocol.js';
import { DomainError, failed, type Progress } from '../../errors.js';
import { hasFreeSpace, isSizeDrop, requiredFreeBytes } from './checks.js';
import { backupFilePath } from './commands.js';
import { writeDumpFile, type DumpSource } from './dump-file.js';
import type { BackupConfig } from './config.js';
import type { BackupStore, StoredBackup, Trigger } from './store.js';

export interface ByteProgress {
  bytes: number;
  total?: number;
  bytesPerSecond: number;
  elapsedMs: number;
}

/** What a run needs of PostgreSQL, whichever side (container or host) it is on. */
export interface RunTools {
  source: DumpSource;
  /** pg_restore reads the whole file; rejects with pg_restore's own words. */
  verifyRead(file: string, o: { signal: AbortSignal; onProgress: (p: ByteProgress) => void }): Promise<void>;
  /** `verify: restore`: restore into a throwaway container and count rows. */
  verifyByRestore?(file: string, o: { signal: AbortSignal; onProgress: (p: ByteProgress) => void }): Promise<Record<string, number>>;
  /** pg_database_size of the backup's database, for the first run's space check; undefined when unknown. */
  databaseSize(): Promise<number | undefined>;
}

export interface RunRequest {
  config: BackupConfig;
  dir: string;
  trigger: Trigger;
  actor: string;
}

export interface RunDeps {
  store: BackupStore;
  tools: RunTools;
  progress: Progress<BackupEvent>;
  /** The agent stopping: the run ends at once and is recorded as interrupted. */
  signal: AbortSignal;
  now?: () => number;
  /** Free bytes for the backup directory (statfs by default; the tests' tmpfs is real, this is for the unit tests). */
  freeBytes?: (dir: string) => Promise<number>;
}

const MiB = 1024 * 1024;
const mib = (n: number) => `${(n / MiB).toFixed(n < 10 * MiB ? 1 : 0)} MiB`;

async function statfsFree(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/** The newest verified backup of this name before the run, for the space check and the size drop. */
function previousVerified(store: BackupStore, name: string): StoredBackup | undefined {
  return store.all(name).find((b) => b.status === 'verified' && b.size !== undefined);
}

/**
 * Runs one backup and resolves with its finished record, verified or not:
 * a failure is an outcome (recorded, returned), not a rejection. It rejects
 * only when the store itself fails.
 */
export async function runBackup(req: RunRequest, deps: RunDeps): Promise<StoredBackup> {
  const { store, tools, progress, signal } = deps;
  const now = deps.now ?? Date.now;
  const { config } = req;
  const startedAt = now();
  const file = backupFilePath(req.dir, config.name, startedAt);
  const record = store.begin({ name: config.name, startedAt, trigger: req.trigger, actor: req.actor, file, verify: config.verify });
  const t0 = performance.now();
  let step = 'space' as BackupStep;
  const stepStarted = new Map<BackupStep, number>();
  const begin = (s: BackupStep, detail?: string) => {
    step = s;
    stepStarted.set(s, performance.now());
    progress({ type: 'step', step: s, status: 'started', ...(detail ? { detail } : {}) });
  };
  const ok = (s: BackupStep, detail?: string) => progress({ type: 'step', step: s, status: 'ok', ms: Math.round(performance.now() - (stepStarted.get(s) ?? t0)), ...(detail ? { detail } : {}) });
  const timings: { dumpMs?: number; verifyMs?: number } = {};

  try {
    begin('space');
    await mkdir(req.dir, { recursive: true, mode: 0o700 });
    const prev = previousVerified(store, config.name);
    const sizing = prev ? { lastVerifiedSize: prev.size! } : { databaseSize: await tools.databaseSize().catch(() => undefined) };
    const free = await (deps.freeBytes ?? statfsFree)(req.dir);
    if (!hasFreeSpace(free, sizing)) {
      const need = requiredFreeBytes(sizing);
      const basis = prev ? `twice the last backup's ${mib(prev.size!)}` : sizing.databaseSize !== undefined ? "the database's size" : 'no earlier backup to go by';
      throw failed(`not enough free space in ${req.dir}: ${mib(free)} free, ${mib(need)} needed (${basis}); nothing was written`, { dir: req.dir, freeBytes: free, neededBytes: need });
    }
    ok('space', `${mib(free)} free`);

    begin('dump', tools.source.what);
    let rows: Record<string, number> | undefined;
    const dump = await writeDumpFile(file, tools.source, {
      signal,
      onProgress: (p) => {
        if (!p.done) progress({ type: 'progress', step: 'dump', bytes: p.bytes, bytesPerSecond: p.bytesPerSecond, elapsedMs: p.elapsedMs });
      },
      beforeRename: async (partial, written) => {
        timings.dumpMs = Math.round(written.dumpMs);
        ok('dump', `${mib(written.bytes)}, sha256 ${written.sha256.slice(0, 12)}`);
        begin('verify', config.verify === 'restore' ? 'restore into a throwaway container' : 'pg_restore reads the whole file');
        const v0 = performance.now();
        const onProgress = (p: ByteProgress) => progress({ type: 'progress', step: 'verify', ...p });
        if (config.verify === 'restore') {
          if (!tools.verifyByRestore) throw failed('verify: restore needs source.service (a throwaway container of its image)');
          rows = await tools.verifyByRestore(partial, { signal, onProgress });
        } else {
          await tools.verifyRead(partial, { signal, onProgress });
        }
        timings.verifyMs = Math.round(performance.now() - v0);
        ok('verify', rows ? `${Object.keys(rows).length} tables, ${Object.values(rows).reduce((a, b) => a + b, 0)} rows` : undefined);
        begin('commit');
      },
    });
    ok('commit', dump.path);
    const done: StoredBackup = {
      ...record,
      status: 'verified',
      finishedAt: now(),
      size: dump.bytes,
      sha256: dump.sha256,
      timings,
      ...(rows ? { rows } : {}),
      ...(isSizeDrop(dump.bytes, prev?.size) ? { sizeDrop: true } : {}),
    };
    store.finish(done);
    return done;
  } catch (err) {
    const interrupted = signal.aborted;
    const message = interrupted ? 'the agent stopped during the run; nothing was kept' : err instanceof DomainError ? err.message : `${(err as Error).message ?? String(err)}`;
    progress({ type: 'step', step, status: 'failed', detail: message });
    const done: StoredBackup = { ...record, status: interrupted ? 'interrupted' : 'failed', finishedAt: now(), timings, error: message };
    store.finish(done);
    return done;
  }
}
