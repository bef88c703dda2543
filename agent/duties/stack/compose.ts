// Compose invocations as data (the Kamal way): small pure functions that
// return argv arrays, run elsewhere by the one runner. v1 (`docker-compose`)
// and v2 (`docker compose`) take the same arguments for what deckhand uses.
import type { Command } from '../../exec/runner.js';
import { run } from '../../exec/runner.js';

export type ComposeCli = readonly ['docker', 'compose'] | readonly ['docker-compose'];

export const COMPOSE_V2: ComposeCli = ['docker', 'compose'];
export const COMPOSE_V1: ComposeCli = ['docker-compose'];

export interface ComposeProject {
  cli: ComposeCli;
  project: string;
  dir: string;
  files?: readonly string[];
}

export function composeBaseArgs(p: ComposeProject): string[] {
  return [...p.cli, '--project-name', p.project, ...(p.files ?? []).flatMap((f) => ['--file', f])];
}

export function composeServicesCommand(p: ComposeProject): Command {
  return { argv: [...composeBaseArgs(p), 'config', '--services'], cwd: p.dir, timeoutMs: 30_000 };
}

export function composeVersionCommand(cli: ComposeCli): Command {
  return { argv: [...cli, 'version'], timeoutMs: 10_000 };
}

/** `auto` prefers v2 (what current servers have), then v1. */
export async function detectCompose(mode: 'auto' | 'docker compose' | 'docker-compose'): Promise<ComposeCli> {
  const candidates = mode === 'auto' ? [COMPOSE_V2, COMPOSE_V1] : mode === 'docker compose' ? [COMPOSE_V2] : [COMPOSE_V1];
  for (const cli of candidates) {
    try {
      const result = await run(composeVersionCommand(cli));
      if (result.code === 0) return cli;
    } catch {
      /* not installed: try the next */
    }
  }
  throw new Error(
    mode === 'auto'
      ? 'no compose CLI found: install the docker compose plugin (or docker-compose), or set stack.compose'
      : `stack.compose is "${mode}" but "${mode} version" does not run`,
  );
}

/** Creates (or starts) one service's container without touching the others or recreating. */
export function composeUpServiceCommand(p: ComposeProject, service: string): Command {
  return { argv: [...composeBaseArgs(p), 'up', '--detach', '--no-deps', '--no-recreate', service], cwd: p.dir, timeoutMs: 300_000 };
}

/** An operator's start: creates or starts the service as the compose file now says (recreated if a deploy changed it). */
export function composeStartServiceCommand(p: ComposeProject, service: string): Command {
  return { argv: [...composeBaseArgs(p), 'up', '--detach', '--no-deps', service], cwd: p.dir, timeoutMs: 300_000 };
}

export function composeStopCommand(p: ComposeProject, service: string): Command {
  return { argv: [...composeBaseArgs(p), 'stop', service], cwd: p.dir, timeoutMs: 120_000 };
}

export function composeRestartCommand(p: ComposeProject, service: string): Command {
  return { argv: [...composeBaseArgs(p), 'restart', service], cwd: p.dir, timeoutMs: 120_000 };
}
