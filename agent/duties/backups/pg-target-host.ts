// A PostgreSQL server at a URL, reached from the host: the host's pg_restore
// reads the file from its stdin (so progress counts real bytes), the password
// goes into a 0600 passfile for the run (never argv, never a log), and the
// pg client answers the small questions.
import { randomBytes } from 'node:crypto';
import type { Client } from 'pg';
import { TailBuffer } from '../../docker/exec.js';
import { failed } from '../../errors.js';
import { run, type RunResult } from '../../exec/runner.js';
import { RESTORE_TIMEOUT_MS, VERIFY_TIMEOUT_MS } from './commands.js';
import { checkDatabaseName, hostRestoreArgs, hostVerifyArgs, quoteIdent, restoreErrorLine } from './pg-commands.js';
import { openCounted } from './pg-feed.js';
import type { FeedOptions, PgTarget } from './pg-target.js';
import { hostConnection, withPassfile } from './source-host.js';
import { pgClient } from './pg-client.js';

/**
 * The host's pg_restore with the file on its stdin. An abort kills it and,
 * when it restores into a database, also ends its session from the server
 * side (`terminate`): a session waiting for a lock would otherwise only
 * notice its client is gone once it gets the lock.
 */
async function pgRestoreOnHost(
  argv: string[],
  password: string | undefined,
  file: string,
  o: FeedOptions & { what: string; timeoutMs: number; terminate?: (appName: string) => Promise<unknown> },
): Promise<void> {
  o.signal?.throwIfAborted();
  const { stream } = await openCounted(file, o.what, o.onProgress);
  const stderr = new TailBuffer(4096);
  const appName = `deckhand-restore-${randomBytes(6).toString('hex')}`;
  let terminating: Promise<unknown> | undefined;
  const onAbort = () => {
    terminating = o.terminate?.(appName).catch(() => undefined);
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });
  let result: RunResult;
  try {
    result = await withPassfile(password, (env) =>
      run({ argv, env: { PGAPPNAME: appName, ...env }, timeoutMs: o.timeoutMs, inputStream: stream }, { signal: o.signal, captureLimit: 4096, onStderr: (c) => stderr.add(c) }),
    );
  } catch (err) {
    throw failed(`${o.what}: ${(err as Error).message}`, { file });
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    stream.destroy();
    await terminating;
  }
  const details = { file, exitCode: result.code, stderr: stderr.text() };
  if (o.signal?.aborted) throw failed(`${o.what}: pg_restore of ${file} aborted`, details);
  if (result.timedOut) throw failed(`${o.what}: pg_restore of ${file} timed out after ${Math.round(o.timeoutMs / 1000)} s`, details);
  if (result.code !== 0) throw failed(restoreErrorLine(stderr.text()) || `${o.what}: pg_restore exited with ${result.code ?? result.signal} and said nothing`, details);
}

export function hostTarget(o: { url: string; database: string; user?: string; pgRestore?: string }): PgTarget {
  const pgRestore = o.pgRestore ?? 'pg_restore';
  const shown = hostConnection(o);
  const what = `PostgreSQL at ${shown.url}`;
  /** A client on the server's maintenance database: the one asked about may not exist. */
  const withClient = async <T>(fn: (c: Client) => Promise<T>): Promise<T> => {
    const conn = hostConnection({ ...o, database: 'postgres' });
    const client = await pgClient({ connectionString: conn.secretUrl, connectionTimeoutMillis: 10_000, query_timeout: 60_000, application_name: 'deckhand-restore' });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return await fn(client);
    } catch (err) {
      throw failed(`${what}: ${(err as Error).message}`);
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  return {
    what,
    async verifyRead(file, f) {
      await pgRestoreOnHost(hostVerifyArgs(pgRestore), undefined, file, { ...f, what, timeoutMs: VERIFY_TIMEOUT_MS });
    },
    async restore(file, database, f) {
      const conn = hostConnection({ ...o, database: checkDatabaseName(database) });
      await pgRestoreOnHost(hostRestoreArgs({ pgRestore, url: conn.url }), conn.password, file, {
        ...f,
        what,
        timeoutMs: RESTORE_TIMEOUT_MS,
        terminate: (appName) => withClient((c) => c.query('SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()', [appName])),
      });
    },
    async databaseExists(database) {
      checkDatabaseName(database);
      return withClient(async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rowCount === 1);
    },
    async createDatabase(database) {
      checkDatabaseName(database);
      await withClient((c) => c.query(`CREATE DATABASE ${quoteIdent(database)}`));
    },
    async databaseSize(database) {
      checkDatabaseName(database);
      try {
        return await withClient(async (c) => {
          const r = await c.query<{ size: string | null }>('SELECT pg_database_size(datname)::text AS size FROM pg_database WHERE datname = $1', [database]);
          const n = Number(r.rows[0]?.size);
          return r.rows[0]?.size != null && Number.isFinite(n) ? n : undefined;
        });
      } catch {
        return undefined;
      }
    },
  };
}
