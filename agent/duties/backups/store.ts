// The backups duty's tables: one row per run (written when it starts, so an
// agent killed mid-dump finds it and records it as interrupted), one row
// per restore, and per configured backup the facts that outlive rotation
// (since when one is expected, the failure counter).
import type { Db, Migration } from '../../store/db.js';
import { migrate } from '../../store/db.js';
import type { BackupRecord, BackupStatus } from './record.js';

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    sql: `CREATE TABLE backups (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      name TEXT NOT NULL,
      started_at INTEGER NOT NULL,
      finished_at INTEGER,
      status TEXT NOT NULL,
      trigger TEXT NOT NULL,
      actor TEXT NOT NULL,
      file TEXT NOT NULL,
      size INTEGER,
      sha256 TEXT,
      verify TEXT NOT NULL,
      rows TEXT,
      timings TEXT,
      error TEXT,
      size_drop INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX backups_name ON backups (name, id);
    CREATE TABLE backup_restores (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      backup_id INTEGER NOT NULL,
      name TEXT NOT NULL,
      database TEXT NOT NULL,
      new_database INTEGER NOT NULL,
      actor TEXT NOT NULL,
      started_at INTEGER NOT NULL,
      finished_at INTEGER,
      status TEXT NOT NULL,
      safety_backup_id INTEGER,
      error TEXT
    );
    CREATE TABLE backup_state (
      name TEXT PRIMARY KEY,
      expected_since INTEGER NOT NULL,
      failures_total INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;`,
  },
];

export type Trigger = 'schedule' | 'catchup' | 'manual' | 'deploy' | 'safety';
export type StoredStatus = Exclude<BackupStatus, 'partial'> | 'running';

export interface StoredBackup extends Omit<BackupRecord, 'status'> {
  status: StoredStatus;
  trigger: Trigger;
  actor: string;
  verify: 'read' | 'restore';
  sha256?: string;
  rows?: Record<string, number>;
  timings?: { dumpMs?: number; verifyMs?: number };
  error?: string;
  sizeDrop?: boolean;
}

export type RestoreStatus = 'running' | 'succeeded' | 'failed' | 'interrupted';

export interface StoredRestore {
  id: number;
  backupId: number;
  name: string;
  database: string;
  newDatabase: boolean;
  actor: string;
  startedAt: number;
  finishedAt?: number;
  status: RestoreStatus;
  safetyBackupId?: number;
  error?: string;
}

interface BackupRow {
  id: number;
  name: string;
  started_at: number;
  finished_at: number | null;
  status: StoredStatus;
  trigger: Trigger;
  actor: string;
  file: string;
  size: number | null;
  sha256: string | null;
  verify: 'read' | 'restore';
  rows: string | null;
  timings: string | null;
  error: string | null;
  size_drop: number;
}

interface RestoreRow {
  id: number;
  backup_id: number;
  name: string;
  database: string;
  new_database: number;
  actor: string;
  started_at: number;
  finished_at: number | null;
  status: RestoreStatus;
  safety_backup_id: number | null;
  error: string | null;
}

/** JSON columns written by this code; a damaged one reads as absent rather than failing the whole list. */
function parseJson<T>(text: string | null): T | undefined {
  if (text === null) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

function toBackup(r: BackupRow): StoredBackup {
  const rows = parseJson<Record<string, number>>(r.rows);
  const timings = parseJson<{ dumpMs?: number; verifyMs?: number }>(r.timings);
  return {
    id: r.id,
    name: r.name,
    startedAt: r.started_at,
    ...(r.finished_at !== null ? { finishedAt: r.finished_at } : {}),
    status: r.status,
    trigger: r.trigger,
    actor: r.actor,
    file: r.file,
    ...(r.size !== null ? { size: r.size } : {}),
    ...(r.sha256 !== null ? { sha256: r.sha256 } : {}),
    verify: r.verify,
    ...(rows ? { rows } : {}),
    ...(timings ? { timings } : {}),
    ...(r.error !== null ? { error: r.error } : {}),
    ...(r.size_drop ? { sizeDrop: true } : {}),
  };
}

function toRestore(r: RestoreRow): StoredRestore {
  return {
    id: r.id,
    backupId: r.backup_id,
    name: r.name,
    database: r.database,
    newDatabase: r.new_database === 1,
    actor: r.actor,
    startedAt: r.started_at,
    ...(r.finished_at !== null ? { finishedAt: r.finished_at } : {}),
    status: r.status,
    ...(r.safety_backup_id !== null ? { safetyBackupId: r.safety_backup_id } : {}),
    ...(r.error !== null ? { error: r.error } : {}),
  };
}

/** The longest error kept: pg_dump's line plus our words, never a whole stderr. */
const ERROR_MAX = 2000;
const cut = (t: string | undefined) => (t === undefined ? null : t.length <= ERROR_MAX ? t : `${t.slice(0, ERROR_MAX)}…`);

export class BackupStore {
  constructor(private readonly db: Db) {
    migrate(db, 'backups', MIGRATIONS);
  }

  /** A run begins: its row exists before the first byte is written. */
  begin(b: { name: string; startedAt: number; trigger: Trigger; actor: string; file: string; verify: 'read' | 'restore' }): StoredBackup {
    const info = this.db
      .prepare("INSERT INTO backups (name, started_at, status, trigger, actor, file, verify) VALUES (?, ?, 'running', ?, ?, ?, ?)")
      .run(b.name, b.startedAt, b.trigger, b.actor, b.file, b.verify);
    return this.get(Number(info.lastInsertRowid))!;
  }

  /** Writes a finished run; a failure also counts towards failures_total, in the same transaction. */
  finish(b: StoredBackup): void {
    this.db.transaction(() => {
      this.db
        .prepare('UPDATE backups SET finished_at = ?, status = ?, size = ?, sha256 = ?, rows = ?, timings = ?, error = ?, size_drop = ?, file = ? WHERE id = ?')
        .run(
          b.finishedAt ?? null,
          b.status,
          b.size ?? null,
          b.sha256 ?? null,
          b.rows ? JSON.stringify(b.rows) : null,
          b.timings ? JSON.stringify(b.timings) : null,
          cut(b.error),
          b.sizeDrop ? 1 : 0,
          b.file,
          b.id,
        );
      if (b.status === 'failed' || b.status === 'interrupted') {
        this.db.prepare('UPDATE backup_state SET failures_total = failures_total + 1 WHERE name = ?').run(b.name);
      }
    })();
  }

  get(id: number): StoredBackup | undefined {
    const row = this.db.prepare('SELECT * FROM backups WHERE id = ?').get(id) as BackupRow | undefined;
    return row ? toBackup(row) : undefined;
  }

  /** Every record of one backup, newest first (a backup keeps tens, not thousands: rotation drops old ones). */
  all(name: string): StoredBackup[] {
    return (this.db.prepare('SELECT * FROM backups WHERE name = ? ORDER BY id DESC').all(name) as BackupRow[]).map(toBackup);
  }

  /** Newest first from below `before` on, of one backup or all. */
  *iterate(name: string | undefined, before = Number.MAX_SAFE_INTEGER): Generator<StoredBackup> {
    const stmt = name === undefined
      ? this.db.prepare('SELECT * FROM backups WHERE id < ? ORDER BY id DESC')
      : this.db.prepare('SELECT * FROM backups WHERE id < ? AND name = ? ORDER BY id DESC');
    const rows = (name === undefined ? stmt.iterate(before) : stmt.iterate(before, name)) as IterableIterator<BackupRow>;
    for (const row of rows) yield toBackup(row);
  }

  running(): StoredBackup[] {
    return (this.db.prepare("SELECT * FROM backups WHERE status = 'running' ORDER BY id").all() as BackupRow[]).map(toBackup);
  }

  setStatus(ids: readonly number[], status: StoredStatus): void {
    const stmt = this.db.prepare('UPDATE backups SET status = ? WHERE id = ?');
    this.db.transaction(() => ids.forEach((id) => stmt.run(status, id)))();
  }

  drop(ids: readonly number[]): void {
    const stmt = this.db.prepare('DELETE FROM backups WHERE id = ?');
    this.db.transaction(() => ids.forEach((id) => stmt.run(id)))();
  }

  /** Since when a backup of this name has been expected: set the first time the duty runs with it configured. */
  expectedSince(name: string, now: number): number {
    this.db.prepare('INSERT OR IGNORE INTO backup_state (name, expected_since) VALUES (?, ?)').run(name, now);
    return (this.db.prepare('SELECT expected_since FROM backup_state WHERE name = ?').pluck().get(name) as number) ?? now;
  }

  failuresTotal(name: string): number {
    return (this.db.prepare('SELECT failures_total FROM backup_state WHERE name = ?').pluck().get(name) as number | undefined) ?? 0;
  }

  beginRestore(r: { backupId: number; name: string; database: string; newDatabase: boolean; actor: string; startedAt: number }): StoredRestore {
    const info = this.db
      .prepare("INSERT INTO backup_restores (backup_id, name, database, new_database, actor, started_at, status) VALUES (?, ?, ?, ?, ?, ?, 'running')")
      .run(r.backupId, r.name, r.database, r.newDatabase ? 1 : 0, r.actor, r.startedAt);
    return this.getRestore(Number(info.lastInsertRowid))!;
  }

  saveRestore(r: StoredRestore): void {
    this.db
      .prepare('UPDATE backup_restores SET finished_at = ?, status = ?, safety_backup_id = ?, error = ? WHERE id = ?')
      .run(r.finishedAt ?? null, r.status, r.safetyBackupId ?? null, cut(r.error), r.id);
  }

  getRestore(id: number): StoredRestore | undefined {
    const row = this.db.prepare('SELECT * FROM backup_restores WHERE id = ?').get(id) as RestoreRow | undefined;
    return row ? toRestore(row) : undefined;
  }

  runningRestores(): StoredRestore[] {
    return (this.db.prepare("SELECT * FROM backup_restores WHERE status = 'running' ORDER BY id").all() as RestoreRow[]).map(toRestore);
  }
}
