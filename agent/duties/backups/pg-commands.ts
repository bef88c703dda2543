// What a backup runs after the dump, as data: pg_restore and psql argument
// lists, the SQL they send, and the throwaway container of `verify: restore`.
// Small pure functions; the targets (pg-target-*.ts) run them.
import { invalid } from '../../errors.js';

// ---------------------------------------------------------------------------
// Database names. Only plain identifiers are accepted (what the config's
// schema allows too); they are still quoted as SQL identifiers and literals
// wherever they reach SQL text, so the quoting is right on its own.

export const DATABASE_NAME = /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/;

export function checkDatabaseName(name: string, what = 'database'): string {
  if (!DATABASE_NAME.test(name)) throw invalid(`not a usable ${what} name: ${JSON.stringify(name)} (letters, digits, _ $ -, starting with a letter or _, at most 63)`, { name });
  return name;
}

/** `"name"`, inner double quotes doubled. */
export const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;
/** `'text'`, inner single quotes doubled (standard_conforming_strings is on since 9.1). */
export const quoteLiteral = (text: string) => `'${text.replace(/'/g, "''")}'`;

export const databaseExistsSql = (db: string) => `SELECT count(*) FROM pg_database WHERE datname = ${quoteLiteral(checkDatabaseName(db))}`;
export const databaseSizeSql = (db: string) => `SELECT pg_database_size(${quoteLiteral(checkDatabaseName(db))})`;
export const createDatabaseSql = (db: string, owner?: string) =>
  `CREATE DATABASE ${quoteIdent(checkDatabaseName(db))}${owner ? ` OWNER ${quoteIdent(checkDatabaseName(owner, 'role'))}` : ''}`;
export const createRoleSql = (role: string) => `CREATE ROLE ${quoteIdent(checkDatabaseName(role, 'role'))}`;

/**
 * Rows of every table outside the system schemas, as one JSON object
 * `{"schema.table": rows}`: JSON because names may hold any character a
 * separator could be. query_to_xml runs the count built for each table.
 */
export const ROW_COUNTS_SQL =
  "SELECT coalesce(json_object_agg(n.nspname || '.' || c.relname, " +
  "(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint " +
  'ORDER BY n.nspname, c.relname), \'{}\') ' +
  'FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace ' +
  "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'";

export function parseRowCounts(stdout: string): Record<string, number> {
  const text = stdout.trim();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`unexpected row counts from psql: ${text.slice(0, 200) || '(nothing)'}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`unexpected row counts from psql: ${text.slice(0, 200)}`);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`unexpected row count for ${k}: ${String(v)}`);
    out[k] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Programs inside a container (engine exec API, stdin attached for pg_restore).

/** psql that reads no ~/.psqlrc, prints bare values, stops at the first error, never prompts. */
export function psqlArgs(o: { user: string; database: string; sql: string }): string[] {
  return ['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '--no-password', `--username=${o.user}`, `--dbname=${o.database}`, '-c', o.sql];
}

// Verify and restore over an existing database: pgRestoreVerifyInContainerCmd
// and pgRestoreInContainerCmd in commands.ts.

/** Restore into a fresh, empty database (the throwaway): nothing to clean, stop at the first error. */
export function freshRestoreArgs(o: { user: string; database: string }): string[] {
  return ['pg_restore', '--single-transaction', '--no-password', `--username=${o.user}`, `--dbname=${checkDatabaseName(o.database)}`];
}

/** Ready once the real server listens on TCP: the entrypoints' init-time server is socket-only. */
export const pgIsReadyArgs = (): string[] => ['pg_isready', '-q', '-h', '127.0.0.1'];

// ---------------------------------------------------------------------------
// The host's pg_restore, reading the file from stdin. The URL carries no
// password (source-host.ts hostConnection); that goes into a passfile.

export const hostVerifyArgs = (pgRestore: string): string[] => [pgRestore, '-f', '/dev/null'];

export function hostRestoreArgs(o: { pgRestore: string; url: string }): string[] {
  if (new URL(o.url).password) throw new Error('a password does not belong on a command line');
  return [o.pgRestore, '--clean', '--if-exists', '--single-transaction', '--no-password', `--dbname=${o.url}`];
}

// ---------------------------------------------------------------------------
// The throwaway container of `verify: restore`.

export const THROWAWAY_LABEL = 'deckhand.throwaway';

/**
 * No network at all (it is only reached through exec), no ports, trust
 * authentication (POSTGRES_PASSWORD is still set: some entrypoints insist),
 * and a label to find leftovers by.
 */
export function throwawaySpec(o: { image: string; password: string }) {
  return {
    Image: o.image,
    Env: ['POSTGRES_HOST_AUTH_METHOD=trust', `POSTGRES_PASSWORD=${o.password}`, 'POSTGRES_USER=postgres', 'POSTGRES_DB=postgres'],
    Labels: { [THROWAWAY_LABEL]: 'backup-verify' },
    HostConfig: { NetworkMode: 'none', AutoRemove: false, PortBindings: {} },
    ExposedPorts: {},
    Tty: false,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
  };
}

// ---------------------------------------------------------------------------

/**
 * What went wrong, in pg_restore's words: its last `pg_restore: error:` line
 * (after it come `Command was:` and the SQL, which say less), else the last
 * line it wrote.
 */
/** The role a failed restore missed (an owner or grantee of the dump), if that is why it failed. */
export function missingRole(errorLine: string): string | undefined {
  const m = /\bERROR: +role "([^"]+)" does not exist/.exec(errorLine);
  return m && DATABASE_NAME.test(m[1]!) ? m[1] : undefined;
}

export function restoreErrorLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.replace(/\r$/, '').trim()).filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) if (/^pg_restore: (error|fatal):/.test(lines[i]!)) return lines[i]!;
  return lines.at(-1) ?? '';
}
