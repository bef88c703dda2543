// `verify: restore`: the strongest check of a dump short of a restore drill.
// A throwaway container of the service's own image (the same PostgreSQL),
// without any network and reached only through exec, gets a fresh database
// and the file restored into it; the rows of every table are counted. The
// container and its volumes are removed afterwards, whatever happened.
import { randomBytes } from 'node:crypto';
import type { DockerEngine } from '../../docker/engine.js';
import { execCollect } from '../../docker/exec.js';
import { DomainError, failed } from '../../errors.js';
import { VERIFY_TIMEOUT_MS } from './commands.js';
import { createDatabaseSql, createRoleSql, checkDatabaseName, freshRestoreArgs, missingRole, parseRowCounts, pgIsReadyArgs, ROW_COUNTS_SQL, throwawaySpec } from './pg-commands.js';
import type { FeedOptions } from './pg-target.js';
import { pgRestoreIn, psqlIn } from './pg-target-container.js';

export const READY_TIMEOUT_MS = 60_000;
const MAX_MISSING_ROLES = 20;

/** The text of a non-TTY container log (stdout and stderr frames, in order). */
function logText(buf: Buffer): string {
  const parts: Buffer[] = [];
  let at = 0;
  while (at + 8 <= buf.length) {
    const len = buf.readUInt32BE(at + 4);
    parts.push(buf.subarray(at + 8, at + 8 + len));
    at += 8 + len;
  }
  return Buffer.concat(parts).toString('utf8');
}

async function lastLogLines(engine: DockerEngine, id: string): Promise<string> {
  try {
    const buf = (await engine.api.getContainer(id).logs({ stdout: true, stderr: true, tail: 3, follow: false })) as unknown as Buffer;
    return logText(buf).trim().split('\n').map((l) => l.trim()).filter(Boolean).join(' | ');
  } catch {
    return '';
  }
}

async function waitReady(engine: DockerEngine, id: string, image: string, signal: AbortSignal | undefined, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    const info = await engine.api.getContainer(id).inspect();
    if (!info.State.Running) {
      const log = await lastLogLines(engine, id);
      throw failed(`the throwaway container of ${image} stopped (exit ${info.State.ExitCode}) before PostgreSQL was ready${log ? `: ${log}` : ''}`, { image });
    }
    const r = await execCollect(engine, id, { cmd: pgIsReadyArgs() }, 10_000).catch((err: Error) => ({ code: -1, stderr: err.message, stdout: '' }));
    if (r.code === 0) return;
    if (r.code === 126 || r.code === 127 || /executable file not found|no such file/i.test(r.stderr + r.stdout)) {
      throw failed(`image ${image} has no pg_isready: not a PostgreSQL server image`, { image });
    }
    if (Date.now() > until) {
      const log = await lastLogLines(engine, id);
      throw failed(`PostgreSQL in the throwaway container of ${image} was not ready after ${Math.round(timeoutMs / 1000)} s${log ? `: ${log}` : ''}`, { image });
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Restores `file` into a throwaway container of `image` and returns the rows
 * of every table, `{ "schema.table": rows }`. The role `user` (the dump's
 * owner) is created first so ownership restores as it was.
 */
export async function verifyByRestore(
  engine: DockerEngine,
  o: FeedOptions & { image: string; file: string; database: string; user?: string; readyTimeoutMs?: number },
): Promise<Record<string, number>> {
  const database = checkDatabaseName(o.database);
  const user = checkDatabaseName(o.user ?? 'postgres', 'role');
  const what = `verify by restore (${o.image})`;
  o.signal?.throwIfAborted();
  let id: string | undefined;
  try {
    try {
      id = (await engine.api.createContainer(throwawaySpec({ image: o.image, password: randomBytes(18).toString('hex') }))).id;
      await engine.api.getContainer(id).start();
    } catch (err) {
      throw failed(`${what}: cannot start a throwaway container: ${(err as Error).message}`, { image: o.image });
    }
    await waitReady(engine, id, o.image, o.signal, o.readyTimeoutMs ?? READY_TIMEOUT_MS);
    const sql = (s: string, db = 'postgres', timeoutMs?: number) => psqlIn(engine, id!, { user: 'postgres', database: db, sql: s, what, timeoutMs });
    if (user !== 'postgres') await sql(createRoleSql(user));
    if (database !== 'postgres') await sql(createDatabaseSql(database, user));
    // Roles the dump names besides `user` (grantees, other owners) exist on
    // the real server, not here: each one a restore misses is created and the
    // restore, which rolled back, runs again, up to a bound.
    for (let attempt = 0; ; attempt++) {
      try {
        await pgRestoreIn(engine, id, freshRestoreArgs({ user: 'postgres', database }), o.file, {
          signal: o.signal,
          onProgress: o.onProgress,
          what,
          timeoutMs: VERIFY_TIMEOUT_MS,
          connection: { user: 'postgres', database },
        });
        break;
      } catch (err) {
        const role = err instanceof DomainError && !o.signal?.aborted ? missingRole(err.message) : undefined;
        if (!role || attempt >= MAX_MISSING_ROLES) throw err;
        await sql(createRoleSql(role));
      }
    }
    o.signal?.throwIfAborted();
    try {
      return parseRowCounts(await sql(ROW_COUNTS_SQL, database, VERIFY_TIMEOUT_MS));
    } catch (err) {
      throw err instanceof DomainError ? err : failed(`${what}: ${(err as Error).message}`);
    }
  } catch (err) {
    if (o.signal?.aborted && !(err instanceof DomainError && /aborted/.test(err.message))) throw failed(`${what}: aborted`, { image: o.image });
    throw err;
  } finally {
    if (id) await engine.api.getContainer(id).remove({ v: true, force: true }).catch(() => undefined);
  }
}
