// Every program a backup runs, as data: pg_dump and pg_restore argument lists
// built by small pure functions and run by the one runner (or, inside a
// container, by the engine's exec API), plus the backup file names.
import { join } from 'node:path';

export const DUMP_EXTENSION = '.dump';
export const PARTIAL_SUFFIX = '.partial';

// ---------------------------------------------------------------------------
// File names: `<name>-<UTC time>.dump`, written first as `<...>.dump.partial`.
// The time is fixed-width basic ISO 8601 with milliseconds, so the names of
// one backup sort in time order as plain strings, carry no `:` (which scp,
// rsync and some file systems read as something else), and two runs in the
// same second still get different names.

/** `20260301T020000.000Z` */
export function fileTimestamp(t: number): string {
  const iso = new Date(t).toISOString(); // 2026-03-01T02:00:00.000Z (fixed width for years 0000-9999)
  return iso.replace(/[-:]/g, '');
}

export function backupFileName(name: string, startedAt: number): string {
  return `${name}-${fileTimestamp(startedAt)}${DUMP_EXTENSION}`;
}

export function backupFilePath(dir: string, name: string, startedAt: number): string {
  return join(dir, backupFileName(name, startedAt));
}

/** Where the run writes before the file counts: the final path plus `.partial`. */
export function partialPath(finalPath: string): string {
  return finalPath + PARTIAL_SUFFIX;
}

export interface ParsedBackupFileName {
  name: string;
  startedAt: number;
  partial: boolean;
}

const FILE_NAME = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z\.dump(\.partial)?$/;

/** The inverse of backupFileName (with or without `.partial`); null for any other name, including impossible dates. */
export function parseBackupFileName(fileName: string): ParsedBackupFileName | null {
  const m = FILE_NAME.exec(fileName);
  if (!m) return null;
  const [, name, y, mo, d, h, mi, s, ms, partial] = m;
  const t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), Number(ms));
  // Date.UTC rolls 2026-02-30 over into March: such a name was not written by us.
  if (fileTimestamp(t) !== `${y}${mo}${d}T${h}${mi}${s}.${ms}Z`) return null;
  return { name: name!, startedAt: t, partial: partial !== undefined };
}

// ---------------------------------------------------------------------------
// pg_dump inside a compose service's container.

export interface DumpTarget {
  database: string;
  user?: string;
}

const connectionArgs = (t: DumpTarget) => ['--dbname', t.database, ...(t.user ? ['--username', t.user] : [])];

/** Reads the whole dump from stdin and throws the output away: catches truncation, which `--list` alone does not. */
export function pgRestoreVerifyInContainerCmd(): string[] {
  return ['pg_restore', '-f', '/dev/null'];
}

/**
 * Restore from stdin into `database`. `--clean --if-exists` drops what the
 * dump recreates; `--single-transaction` makes a failed restore leave the
 * database as it was instead of half-replaced.
 */
export function pgRestoreInContainerCmd(t: DumpTarget): string[] {
  return ['pg_restore', '--clean', '--if-exists', '--single-transaction', '--no-password', ...connectionArgs(t)];
}

// ---------------------------------------------------------------------------
// Limits of the host's programs, and URLs in messages.

export const VERIFY_TIMEOUT_MS = 6 * 3600_000;
export const RESTORE_TIMEOUT_MS = 12 * 3600_000;

/** The URL for logs and errors: the password replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
