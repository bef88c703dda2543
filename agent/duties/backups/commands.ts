// Every program a backup runs, as data: pg_dump and pg_restore argument lists
// built by small pure functions and run by the one runner (or, inside a
// container, by the engine's exec API), plus the backup file names.
import { join } from 'node:path';
import type { Command } from '../../exec/runner.js';

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

/**
 * The Cmd for the engine's exec API: the custom-format dump on stdout, which
 * the agent streams into the `.partial` file. `--no-password`: a prompt would
 * hang the run instead of failing it.
 */
export function pgDumpInContainerCmd(t: DumpTarget): string[] {
  return ['pg_dump', '-Fc', '--no-password', ...connectionArgs(t)];
}

/**
 * Exec options for the engine API. Never a TTY: a terminal rewrites line
 * endings and corrupts the binary stream (the `docker exec -t` trap).
 */
export function containerExecOptions(cmd: readonly string[], o: { stdin?: boolean } = {}) {
  return { Cmd: [...cmd], AttachStdin: o.stdin === true, AttachStdout: true, AttachStderr: true, Tty: false } as const;
}

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
// pg_dump on the host against a URL. The password never appears in argv (any
// user can read /proc/PID/cmdline) nor in the environment (PGPASSWORD is
// readable by the same user through /proc/PID/environ and is inherited):
// it goes into a passfile of mode 0600 that the runner writes and removes.

export interface HostConnection {
  url: string;
  database: string;
  /** Overrides the URL's user, as the config's `source.user` does. */
  user?: string;
}

export interface Passfile {
  path: string;
  /** One pgpass line, newline-terminated; write with mode 0600 or libpq ignores it. */
  content: string;
}

export interface HostCommand {
  command: Command;
  /** To write before running and remove after; null when the URL carries no password. */
  passfile: Passfile | null;
}

export const DUMP_TIMEOUT_MS = 6 * 3600_000;
export const VERIFY_TIMEOUT_MS = 6 * 3600_000;
export const RESTORE_TIMEOUT_MS = 12 * 3600_000;

/** URL query parameters passed on to libpq, by the environment variable libpq reads for each. */
const QUERY_ENV: Record<string, string> = {
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslcrl: 'PGSSLCRL',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  application_name: 'PGAPPNAME',
  options: 'PGOPTIONS',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
};

export interface ParsedPgUrl {
  host?: string;
  port?: string;
  user?: string;
  password?: string;
  env: Record<string, string>;
}

/**
 * Splits a postgres:// URL into libpq environment variables and the password.
 * Percent-escapes are decoded (a Unix socket directory is written
 * `%2Fvar%2Frun%2Fpostgresql`); IPv6 brackets are removed. An unknown query
 * parameter is an error rather than silently dropped.
 */
export function parsePgUrl(url: string): ParsedPgUrl {
  const u = new URL(url);
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new Error(`not a PostgreSQL URL: ${redactUrl(url)}`);
  const host = u.hostname ? decodeURIComponent(u.hostname.replace(/^\[(.*)\]$/, '$1')) : undefined;
  const port = u.port || undefined;
  const user = u.username ? decodeURIComponent(u.username) : undefined;
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  const env: Record<string, string> = {};
  for (const [key, value] of u.searchParams) {
    const name = QUERY_ENV[key];
    if (!name) throw new Error(`unsupported parameter "${key}" in PostgreSQL URL ${redactUrl(url)} (supported: ${Object.keys(QUERY_ENV).join(', ')})`);
    env[name] = value;
  }
  return { host, port, user, password, env };
}

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

/** One field of a pgpass line: `\` and `:` escaped with a backslash, as libpq reads them. */
export function pgpassField(value: string): string {
  return value.replace(/[\\:]/g, (c) => `\\${c}`);
}

export interface PgpassEntry {
  host?: string;
  port?: string;
  database?: string;
  user?: string;
  password: string;
}

/**
 * `hostname:port:database:username:password\n`; a missing field is `*`
 * (matches anything). A newline cannot be written in a pgpass field at all,
 * so a password with one is refused here rather than silently truncated.
 */
export function pgpassLine(e: PgpassEntry): string {
  for (const v of [e.host, e.port, e.database, e.user, e.password]) {
    if (v !== undefined && /[\r\n]/.test(v)) throw new Error('a pgpass field cannot contain a line break');
  }
  const field = (v: string | undefined) => (v === undefined ? '*' : pgpassField(v));
  return `${field(e.host)}:${field(e.port)}:${field(e.database)}:${field(e.user)}:${pgpassField(e.password)}\n`;
}

/**
 * The environment for a host pg_dump or pg_restore, and the passfile entry.
 * The passfile is written for this one command, so its host and port are `*`:
 * libpq compares the host as it resolved it (a socket directory, `localhost`,
 * a literal address), and a mismatch would fail authentication for nothing.
 */
function hostConnection(c: HostConnection, passfilePath: string): { env: Record<string, string>; passfile: Passfile | null } {
  const p = parsePgUrl(c.url);
  const user = c.user ?? p.user;
  const env: Record<string, string> = { ...p.env, PGDATABASE: c.database };
  if (p.host !== undefined) env.PGHOST = p.host;
  if (p.port !== undefined) env.PGPORT = p.port;
  if (user !== undefined) env.PGUSER = user;
  if (p.password === undefined) return { env, passfile: null };
  env.PGPASSFILE = passfilePath;
  return { env, passfile: { path: passfilePath, content: pgpassLine({ database: c.database, user, password: p.password }) } };
}

/** Host pg_dump writing the custom-format dump straight into `outFile` (the `.partial` path). */
export function hostPgDump(c: HostConnection, outFile: string, passfilePath: string): HostCommand {
  const { env, passfile } = hostConnection(c, passfilePath);
  return {
    command: { argv: ['pg_dump', '-Fc', '--no-password', '--file', outFile, '--dbname', c.database], env, timeoutMs: DUMP_TIMEOUT_MS },
    passfile,
  };
}

/** Verify by reading: pg_restore reads every byte of the file and writes the script nowhere. Needs no database. */
export function pgRestoreVerify(file: string): Command {
  return { argv: ['pg_restore', '-f', '/dev/null', file], timeoutMs: VERIFY_TIMEOUT_MS };
}

/** Host restore of `file` into `database` (the backup's own or the `to` of backup.restore). */
export function hostPgRestore(c: HostConnection, file: string, passfilePath: string): HostCommand {
  const { env, passfile } = hostConnection(c, passfilePath);
  return {
    command: {
      argv: ['pg_restore', '--clean', '--if-exists', '--single-transaction', '--no-password', '--dbname', c.database, file],
      env,
      timeoutMs: RESTORE_TIMEOUT_MS,
    },
    passfile,
  };
}
