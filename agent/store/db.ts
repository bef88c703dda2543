// The agent's SQLite file: WAL mode, full sync on commit, and numbered
// migrations that each duty owns. A kill -9 at any point leaves either the
// last committed transaction or the one before it, never a torn file.
import Database from 'better-sqlite3';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Db = Database.Database;

export interface Migration {
  /** 1, 2, 3 ... in order; never renumber or edit one that has shipped. */
  version: number;
  sql: string;
  /** Work SQL cannot do (moving data out to files), in the same transaction, after `sql`. */
  run?: (db: Db) => void;
}

export function openStore(dataDir: string, file = 'deckhand.db'): Db {
  mkdirSync(dataDir, { recursive: true, mode: 0o750 });
  const path = join(dataDir, file);
  const db = new Database(path);
  // The file will hold token hashes and the audit log: owner only.
  for (const f of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      chmodSync(f, 0o600);
    } catch {
      /* -wal/-shm appear later; SQLite creates them with the main file's mode */
    }
  }
  db.pragma('journal_mode = WAL');
  // FULL: a committed transaction survives power loss too; commits are few
  // (one per metrics tick), so the fsync costs nothing that matters.
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  // SQLite's page cache grows to its limit (2 MB by default) as a long-lived
  // connection touches pages and never shrinks; the agent writes far more
  // than it reads, and its reads are short ranges that the OS page cache
  // serves, so 512 KiB keeps its resident memory flat over weeks.
  db.pragma('cache_size = -512');
  db.pragma('foreign_keys = ON');
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    owner TEXT NOT NULL,
    version INTEGER NOT NULL,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (owner, version)
  ) WITHOUT ROWID`);
  return db;
}

/** Applies the owner's migrations not yet applied, each in its own transaction. */
export function migrate(db: Db, owner: string, migrations: readonly Migration[]): number {
  const applied = new Set(
    (db.prepare('SELECT version FROM schema_migrations WHERE owner = ?').all(owner) as { version: number }[]).map((r) => r.version),
  );
  const record = db.prepare('INSERT INTO schema_migrations (owner, version, applied_at) VALUES (?, ?, ?)');
  let count = 0;
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      m.run?.(db);
      record.run(owner, m.version, Date.now());
    })();
    count++;
  }
  return count;
}
