// Every program a deploy runs, as data: compose and git argument lists built
// by small pure functions and run by the one runner. (Image inspection and
// tagging go through the Engine API: no process per image.)
import { resolve } from 'node:path';
import type { Command } from '../../exec/runner.js';
import { composeBaseArgs, type ComposeProject } from '../stack/compose.js';

const compose = (p: ComposeProject, args: string[], timeoutMs: number): Command => ({ argv: [...composeBaseArgs(p), ...args], cwd: p.dir, timeoutMs });

/** The resolved file: service names, images and healthchecks after interpolation. */
export const composeResolved = (p: ComposeProject) => compose(p, ['config'], 60_000);
/** Only for services whose image came from a registry (machine.ts decides). */
export const composePull = (p: ComposeProject, services: readonly string[]) => compose(p, ['pull', ...services], 900_000);
export const composeBuild = (p: ComposeProject, services: readonly string[]) => compose(p, ['build', ...services], 1_800_000);
/** `whole`: the whole stack, so services gone from the file are removed; otherwise only these, leaving the others as they are. */
export const composeUp = (p: ComposeProject, services: readonly string[], o: { whole: boolean }) =>
  compose(p, ['up', '--detach', '--no-build', ...(o.whole ? ['--remove-orphans'] : ['--no-deps', ...services])], 600_000);
export const composeMigrate = (p: ComposeProject, service: string, command: readonly string[]) =>
  compose(p, ['run', '--rm', '--no-deps', '-T', service, ...command], 1_800_000);

/**
 * git in the stack's checkout. The checkout is usually owned by another user
 * than the agent (root, a deploy user), which git refuses as "dubious
 * ownership" since 2.35.2: trust exactly this directory, for this invocation
 * only, instead of a global safe.directory the agent would have to write.
 */
const git = (dir: string, args: string[], timeoutMs = 30_000): Command => {
  const top = resolve(dir);
  return { argv: ['git', '-c', `safe.directory=${top}`, '-C', top, ...args], timeoutMs };
};

export const gitHead = (dir: string): Command => git(dir, ['rev-parse', '--verify', 'HEAD']);
export const gitIsRepo = (dir: string): Command => git(dir, ['rev-parse', '--is-inside-work-tree']);
export const gitResolve = (dir: string, ref: string): Command => git(dir, ['rev-parse', '--verify', '--end-of-options', `${ref}^{commit}`]);
export const gitCheckout = (dir: string, commit: string): Command => git(dir, ['checkout', '--quiet', '--detach', commit], 120_000);
/** The checkout's remotes, one per line (none: nothing to fetch). */
export const gitRemotes = (dir: string): Command => git(dir, ['remote']);
export const gitFetch = (dir: string): Command => git(dir, ['fetch', '--quiet', '--all', '--tags'], 300_000);

/** The tag that keeps a deploy's image alive (and findable) after its name moved on. */
export function keepTag(project: string, service: string, deployId: number): string {
  return `deckhand-keep/${project}-${service}:deploy-${deployId}`;
}
