// A PostgreSQL server at a URL, reached from the host: the host's pg_restore
// reads the file from its stdin (so progress counts real bytes), the password
// goes into a 0600 passfile for the run (never argv, never a log), and the
// pg client answers the small questions.
import pg from 'pg';
import { TailBuffer } from '../../docker/exec.js';
import { failed } from '../../errors.js';
import { run, type RunResult } from '../../exec/runner.js';
import { RESTORE_TIMEOUT_MS, VERIFY_TIMEOUT_MS } from './commands.js';
import { checkDatabaseName, hostRestoreArgs, hostVerifyArgs, quoteIdent, restoreErrorLine } from './pg-commands.js';
import { openCounted } from './pg-feed.js';
import type { FeedOptions, PgTarget } from './pg-target.js';
import { hostConnection, withPassfile } from './source-host.js';

async function pgRestoreOnHost(argv: string[], password: string | undefined, file: string, o: FeedOptions & { what: string; timeoutMs: number }): Promise<void> {
  o.signal?.throwIfAborted();
  const { stream } = await openCounted(file, o.what, o.onProgress);
  const stderr = new TailBuffer(4096);
  let result: RunResult;
  try {
    result = await withPassfile(password, (env) =>
      run({ argv, env: { PGAPPNAME: 'deckhand-restore', ...env }, timeoutMs: o.timeoutMs, inputStream: stream }, { signal: o.signal, captureLimit: 4096, onStderr: (c) => stderr.add(c) }),
    );
  } catch (err) {
    throw failed(`${o.what}: ${(err as Error).message}`, { file });
  } finally {
    stream.destroy();
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
  const withClient = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const conn = hostConnection({ ...o, database: 'postgres' });
    const client = new pg.Client({ connectionString: conn.secretUrl, connectionTimeoutMillis: 10_000, query_timeout: 60_000, application_name: 'deckhand-restore' });
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
      await pgRestoreOnHost(hostRestoreArgs({ pgRestore, url: conn.url }), conn.password, file, { ...f, what, timeoutMs: RESTORE_TIMEOUT_MS });
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
