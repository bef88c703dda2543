// `source.url`: the host's pg_dump against a connection URL. The password
// never reaches a command line (where `ps` shows it) nor a log: it goes into
// a 0600 PGPASSFILE in a private temporary directory, removed afterwards.
// A host pg_dump older than the server cannot dump it; that is refused before
// anything is written, in words that say what to install.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { run, runChecked } from '../../exec/runner.js';
import { failed } from '../../errors.js';
import { TailBuffer } from '../../docker/exec.js';
import type { DumpExit, DumpSource } from './dump-file.js';
import { pgClient } from './pg-client.js';

export interface HostSourceOptions {
  url: string;
  /** Overrides the URL's database (the config's `source.database`). */
  database: string;
  /** Overrides the URL's user. */
  user?: string;
  /** The pg_dump program (default: pg_dump on PATH). */
  pgDump?: string;
  /** Default 6 h: a large database takes long, a hung one must still end. */
  timeoutMs?: number;
}

export interface HostConnection {
  /** For pg_dump --dbname and for messages: no password in it. */
  url: string;
  password: string | undefined;
  /** For the pg client only (it reads the password from its connection string): never shown. */
  secretUrl: string;
}

/** Splits the configured URL into what may be shown and the password, applying the config's database and user. */
export function hostConnection(o: { url: string; database: string; user?: string }): HostConnection {
  const u = new URL(o.url);
  const password = u.password ? decodeURIComponent(u.password) : (u.searchParams.get('password') ?? undefined);
  if (o.user) u.username = encodeURIComponent(o.user);
  u.pathname = `/${encodeURIComponent(o.database)}`;
  const secret = new URL(u);
  u.password = '';
  u.searchParams.delete('password');
  if (password !== undefined && !secret.password) {
    secret.searchParams.delete('password');
    secret.password = encodeURIComponent(password);
  }
  return { url: u.toString(), password, secretUrl: secret.toString() };
}

/** One pgpass(5) line that matches any connection: the file serves one run of one pg_dump. */
export function pgpassLine(password: string): string {
  return `*:*:*:*:${password.replace(/[\\:]/g, (c) => `\\${c}`)}\n`;
}

/**
 * Runs `fn` with the environment that hands libpq the password: PGPASSFILE
 * naming a 0600 file in a private (0700) temporary directory, removed
 * afterwards whatever happens. No password: an empty environment, no file.
 */
export async function withPassfile<T>(password: string | undefined, fn: (env: Record<string, string>) => Promise<T>): Promise<T> {
  if (password === undefined) return fn({});
  const dir = await mkdtemp(join(tmpdir(), 'deckhand-pgpass-'));
  try {
    const passfile = join(dir, 'pgpass');
    await writeFile(passfile, pgpassLine(password), { mode: 0o600, flag: 'wx' });
    return await fn({ PGPASSFILE: passfile });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function hostDumpArgs(o: { pgDump: string; url: string }): string[] {
  return [o.pgDump, '--format=custom', '--no-password', `--dbname=${o.url}`];
}

/** A comparable major version: 1500 for 15.x, 906 for 9.6.x. */
export type MajorKey = number;

/** SHOW server_version_num: 150004 -> 1500, 90624 -> 906. */
export function serverMajor(versionNum: string): MajorKey {
  const n = Number(versionNum.trim());
  if (!Number.isInteger(n) || n <= 0) throw new Error(`unexpected server_version_num "${versionNum}"`);
  return n >= 100_000 ? Math.floor(n / 10_000) * 100 : Math.floor(n / 100);
}

/** "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" -> 1500; "... 9.6.24" -> 906; "... 17beta1" -> 1700. */
export function pgDumpMajor(versionText: string): MajorKey {
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(versionText);
  if (!m) throw new Error(`cannot read the version from "${versionText.trim()}"`);
  const major = Number(m[1]);
  return major >= 10 ? major * 100 : major * 100 + Number(m[2] ?? 0);
}

export const showMajor = (k: MajorKey) => (k >= 1000 ? String(k / 100) : `${Math.floor(k / 100)}.${k % 100}`);

/** Refuses, before any dump, a pg_dump that cannot dump this server. */
export function checkDumpVersion(pgDumpVersion: string, serverVersionNum: string): void {
  const tool = pgDumpMajor(pgDumpVersion);
  const server = serverMajor(serverVersionNum);
  if (tool < server) {
    throw failed(
      `the host's pg_dump (${showMajor(tool)}) is older than the server (PostgreSQL ${showMajor(server)}) and cannot dump it: ` +
        `install postgresql-client-${showMajor(server)} or newer on this host, or set source.service to dump inside the database's container`,
      { pgDump: showMajor(tool), server: showMajor(server) },
    );
  }
}

async function serverVersionNum(conn: HostConnection): Promise<string> {
  const client = await pgClient({ connectionString: conn.secretUrl, connectionTimeoutMillis: 10_000, query_timeout: 10_000, application_name: 'deckhand-backup' });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const r = await client.query<{ server_version_num: string }>('SHOW server_version_num');
    return r.rows[0]!.server_version_num;
  } catch (err) {
    throw failed(`cannot reach PostgreSQL at ${conn.url} to read its version: ${(err as Error).message}`, { url: conn.url });
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function pgDumpVersion(pgDump: string): Promise<string> {
  try {
    return (await runChecked({ argv: [pgDump, '--version'], timeoutMs: 10_000 })).stdout;
  } catch (err) {
    throw failed(`no usable pg_dump on this host (${pgDump}): ${(err as Error).message}; install postgresql-client, or set source.service to dump inside the database's container`);
  }
}

export function hostSource(o: HostSourceOptions): DumpSource {
  const pgDump = o.pgDump ?? 'pg_dump';
  return {
    what: 'pg_dump on the host',
    async run(out: Writable, signal: AbortSignal): Promise<DumpExit> {
      const conn = hostConnection(o);
      const [tool, server] = await Promise.all([pgDumpVersion(pgDump), serverVersionNum(conn)]);
      checkDumpVersion(tool, server);
      signal.throwIfAborted();

      return withPassfile(conn.password, (env) =>
        dumpTo(out, signal, { argv: hostDumpArgs({ pgDump, url: conn.url }), env: { PGAPPNAME: 'deckhand-backup', ...env }, timeoutMs: o.timeoutMs ?? 6 * 3600_000 }),
      );
    },
  };
}

async function dumpTo(out: Writable, signal: AbortSignal, cmd: { argv: string[]; env: Record<string, string>; timeoutMs: number }): Promise<DumpExit> {
  // stdout is piped into `out` with backpressure; a failing `out` must stop pg_dump.
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  let outError: Error | undefined;
  const onOutError = (err: Error) => {
    outError = err;
    stop.abort(err);
  };
  out.on('error', onOutError);
  const stderr = new TailBuffer(4096);
  try {
    const result = await run(cmd, {
      signal: stop.signal,
      captureLimit: 4096,
      stdoutTo: out,
      onStderr: (c) => stderr.add(c),
    });
    signal.throwIfAborted();
    if (outError) throw outError;
    out.end();
    await finished(out);
    if (result.timedOut) return { code: null, stderr: `${stderr.text()}\npg_dump timed out after ${Math.round(cmd.timeoutMs / 1000)} s` };
    return { code: result.code, stderr: stderr.text() };
  } catch (err) {
    if (!out.destroyed) out.destroy();
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    out.off('error', onOutError);
  }
}
