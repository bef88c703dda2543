// The PostgreSQL a backup goes back into after the dump: reading a file all
// the way through (verify), restoring it over a database, and the small
// checks a restore needs first. Two kinds, like the dump sources: the
// service's own container (its pg_restore matches its server, the file goes
// in through the exec's stdin) and a server at a URL (the host's programs).
import type { Progress } from '../../errors.js';

export interface BytesProgress {
  bytes: number;
  total: number;
  /** Average since the start, bytes per second. */
  bytesPerSecond: number;
  elapsedMs: number;
}

export interface FeedOptions {
  signal?: AbortSignal;
  onProgress?: Progress<BytesProgress>;
}

export interface PgTarget {
  /** "PostgreSQL in service db" / "PostgreSQL at postgres://app@127.0.0.1:5432/app" */
  readonly what: string;
  /** pg_restore -f /dev/null over the whole file (catches truncation; --list alone does not). */
  verifyRead(file: string, o: FeedOptions): Promise<void>;
  /** pg_restore --clean --if-exists --single-transaction into `database`: a failure leaves it as it was. */
  restore(file: string, database: string, o: FeedOptions): Promise<void>;
  databaseExists(database: string): Promise<boolean>;
  /** CREATE DATABASE (for restore --to). */
  createDatabase(database: string): Promise<void>;
  /** pg_database_size, or undefined when it cannot be read. */
  databaseSize(database: string): Promise<number | undefined>;
}

export { containerTarget } from './pg-target-container.js';
export { hostTarget } from './pg-target-host.js';
export { verifyByRestore } from './verify-restore.js';
