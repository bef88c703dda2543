// What the backups duty remembers about each run. Times are epoch
// milliseconds; `id` is assigned by the store in creation order and is what
// "newer" means, because the wall clock can jump and ids cannot.

export type BackupStatus = 'verified' | 'failed' | 'partial' | 'interrupted' | 'missing';

export interface BackupRecord {
  /** Increasing in the order runs began (the store's row id). */
  id: number;
  name: string;
  startedAt: number;
  finishedAt?: number;
  status: BackupStatus;
  /** The final path `<dir>/<name>-<UTC time>.dump`; while running, the file is this plus `.partial`. */
  file: string;
  /** Bytes of the finished file; absent when the run produced none. */
  size?: number;
}

/** Newest first, by creation order. */
export function newestFirst<T extends Pick<BackupRecord, 'id'>>(records: readonly T[]): T[] {
  return [...records].sort((a, b) => b.id - a.id);
}

/** The newest verified record (by creation order), or null. */
export function latestVerified<T extends Pick<BackupRecord, 'id' | 'status'>>(records: readonly T[]): T | null {
  return newestFirst(records).find((r) => r.status === 'verified') ?? null;
}
