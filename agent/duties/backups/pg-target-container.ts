// The PostgreSQL of a compose service, reached only through the engine's exec
// API: the container's own pg_restore (it matches its server) reads the file
// from the exec's stdin, so nothing is copied into the container and no port
// is needed; psql answers the small questions.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { execCollect, execToStream } from '../../docker/exec.js';
import type { DockerEngine } from '../../docker/engine.js';
import { DomainError, failed } from '../../errors.js';
import { pgRestoreInContainerCmd, pgRestoreVerifyInContainerCmd, RESTORE_TIMEOUT_MS, VERIFY_TIMEOUT_MS } from './commands.js';
import { lastErrorLine } from './dump-file.js';
import { checkDatabaseName, createDatabaseSql, databaseExistsSql, databaseSizeSql, psqlArgs, restoreErrorLine } from './pg-commands.js';
import { openCounted, withTimeout } from './pg-feed.js';
import type { FeedOptions, PgTarget } from './pg-target.js';
import { serviceContainer, terminateDumpArgs } from './source-container.js';

/** Runs one SQL statement with psql in the container; its output, or failed(...) with psql's last error line. */
export async function psqlIn(engine: DockerEngine, id: string, o: { user: string; database: string; sql: string; timeoutMs?: number; what: string }): Promise<string> {
  let r;
  try {
    r = await execCollect(engine, id, { cmd: psqlArgs(o) }, o.timeoutMs ?? 30_000, 4 << 20);
  } catch (err) {
    throw failed(`${o.what}: cannot run psql: ${(err as Error).message}`);
  }
  if (r.code !== 0) throw failed(lastErrorLine(r.stderr) || `${o.what}: psql exited with ${r.code ?? 'an unknown status'}`, { exitCode: r.code, stderr: r.stderr });
  return r.stdout;
}

/**
 * pg_restore `cmd` in the container with the file as its stdin. Resolves
 * when it exited 0; otherwise failed(...) with its own error line. An abort
 * ends the input and, for a restore into a database (`connection`), ends its
 * session from the server side (it may be waiting for a lock and not reading):
 * pg_restore fails and, in a single transaction, nothing of it stays.
 */
export async function pgRestoreIn(
  engine: DockerEngine,
  id: string,
  cmd: string[],
  file: string,
  o: FeedOptions & { what: string; timeoutMs: number; connection?: { user: string; database: string } },
): Promise<void> {
  o.signal?.throwIfAborted();
  const appName = `deckhand-restore-${randomBytes(6).toString('hex')}`;
  const connection = o.connection;
  const { stream } = await openCounted(file, o.what, o.onProgress);
  const signal = withTimeout(o.signal, o.timeoutMs);
  const discard = new Writable({ write: (_c, _e, cb) => cb() });
  let exit;
  try {
    exit = await execToStream(engine, id, { cmd, env: [`PGAPPNAME=${appName}`] }, discard, {
      signal,
      input: stream,
      stop: async () => {
        stream.destroy();
        if (connection) await execCollect(engine, id, { cmd: terminateDumpArgs({ ...connection, appName }) });
      },
    });
  } catch (err) {
    if (err instanceof DomainError) throw err;
    if (o.signal?.aborted) throw failed(`${o.what}: pg_restore of ${file} aborted`, { file });
    if (signal.aborted) throw failed(`${o.what}: pg_restore of ${file} timed out after ${Math.round(o.timeoutMs / 1000)} s`, { file });
    throw failed(`${o.what}: pg_restore of ${file}: ${(err as Error).message}`, { file });
  } finally {
    stream.destroy();
  }
  if (exit.code !== 0) {
    throw failed(restoreErrorLine(exit.stderr) || `${o.what}: pg_restore exited with ${exit.code ?? 'an unknown status'} and said nothing`, { file, exitCode: exit.code, stderr: exit.stderr });
  }
}

export function containerTarget(engine: DockerEngine, o: { project: string; service: string; user?: string; database: string }): PgTarget {
  const user = o.user ?? 'postgres';
  const what = `PostgreSQL in service ${o.service}`;
  const container = () => serviceContainer(engine, o.project, o.service);
  // The questions go to the maintenance database: the one asked about may not exist.
  const ask = async (sql: string) => psqlIn(engine, await container(), { user, database: 'postgres', sql, what });
  return {
    what,
    async verifyRead(file, f) {
      await pgRestoreIn(engine, await container(), pgRestoreVerifyInContainerCmd(), file, { ...f, what, timeoutMs: VERIFY_TIMEOUT_MS });
    },
    async restore(file, database, f) {
      const cmd = pgRestoreInContainerCmd({ database: checkDatabaseName(database), user });
      await pgRestoreIn(engine, await container(), cmd, file, { ...f, what, timeoutMs: RESTORE_TIMEOUT_MS, connection: { user, database } });
    },
    async databaseExists(database) {
      return (await ask(databaseExistsSql(database))).trim() === '1';
    },
    async createDatabase(database) {
      checkDatabaseName(database);
      await ask(createDatabaseSql(database));
    },
    async databaseSize(database) {
      checkDatabaseName(database);
      try {
        const n = Number((await ask(databaseSizeSql(database))).trim());
        return Number.isFinite(n) && n >= 0 ? n : undefined;
      } catch {
        return undefined;
      }
    },
  };
}
