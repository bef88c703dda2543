// `source.service`: pg_dump inside the compose service's current container,
// through the engine's exec API (no TTY: it would corrupt the custom-format
// stream), its stdout streamed to the host. The container's own pg_dump
// always matches its server, and nothing needs a published port.
import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import { execCollect, execToStream } from '../../docker/exec.js';
import type { DockerEngine } from '../../docker/engine.js';
import { failed } from '../../errors.js';
import { lastErrorLine, type DumpExit, type DumpSource } from './dump-file.js';
import { psqlArgs } from './pg-commands.js';

export interface ContainerSourceOptions {
  project: string;
  service: string;
  database: string;
  /** Default postgres, the superuser of the official image. */
  user?: string;
}

// argv builders for this file's own commands (pure, for the tests).

/** pg_dump in custom format to stdout; --no-password: a prompt would hang the exec. */
export function containerDumpArgs(o: { database: string; user: string }): string[] {
  return ['pg_dump', '--format=custom', '--no-password', `--username=${o.user}`, `--dbname=${o.database}`];
}

/**
 * Ends the dump's connection from the server side: pg_dump then fails at once.
 * `appName` is ours (hex), so putting it in the SQL text is safe.
 */
export function terminateDumpArgs(o: { database: string; user: string; appName: string }): string[] {
  if (!/^[a-z0-9-]+$/.test(o.appName)) throw new Error(`unexpected application name ${o.appName}`);
  return psqlArgs({ user: o.user, database: o.database, sql: `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '${o.appName}' AND pid <> pg_backend_pid()` });
}

/** The application name of every dump's connection: `${APP_NAME_PREFIX}<hex>`. */
export const APP_NAME_PREFIX = 'deckhand-backup-';

/**
 * Ends every dump connection of ours on the server: at start, after an agent
 * that died mid-dump. pg_dump runs in the container, so it outlives the
 * agent (the engine keeps reading its output into nowhere) and would dump to
 * the end, holding its snapshot; no run of this agent is going yet.
 */
export function terminateLeftoverDumpsArgs(o: { database: string; user: string }): string[] {
  return psqlArgs({ user: o.user, database: o.database, sql: `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE '${APP_NAME_PREFIX}%' AND pid <> pg_backend_pid()` });
}

/** The id of the service's running container (the newest, if scaled), found by compose labels. */
export async function serviceContainer(engine: DockerEngine, project: string, service: string): Promise<string> {
  const all = await engine.listProjectContainers(project);
  const running = all.filter((c) => c.service === service && !c.oneoff && c.state === 'running').sort((a, b) => b.created - a.created);
  if (!running[0]) {
    const states = all.filter((c) => c.service === service && !c.oneoff).map((c) => c.state);
    throw failed(
      `service ${service} of project ${project} has no running container (${states.length ? `containers: ${states.join(', ')}` : 'none at all'}): pg_dump runs inside it; start it (deckhand start ${service})`,
      { service, project },
    );
  }
  return running[0].id;
}

export function containerSource(engine: DockerEngine, o: ContainerSourceOptions): DumpSource {
  const user = o.user ?? 'postgres';
  return {
    what: `pg_dump in service ${o.service}`,
    async run(out: Writable, signal: AbortSignal): Promise<DumpExit> {
      const id = await serviceContainer(engine, o.project, o.service);
      // A name of our own on the connection, so an abort can end exactly it.
      const appName = `${APP_NAME_PREFIX}${randomBytes(6).toString('hex')}`;
      const stop = async () => {
        await execCollect(engine, id, { cmd: terminateDumpArgs({ database: o.database, user, appName }) });
      };
      return execToStream(engine, id, { cmd: containerDumpArgs({ database: o.database, user }), env: [`PGAPPNAME=${appName}`] }, out, { signal, stop });
    },
    async endLeftovers(): Promise<number> {
      const id = await serviceContainer(engine, o.project, o.service);
      const r = await execCollect(engine, id, { cmd: terminateLeftoverDumpsArgs({ database: o.database, user }) }, 10_000);
      if (r.code !== 0) throw failed(lastErrorLine(r.stderr) || `psql exited with ${r.code ?? 'an unknown status'}`);
      return Number(r.stdout.trim()) || 0;
    },
  };
}
