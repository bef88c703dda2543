// Every program a deploy runs, as data: compose and git argument lists built
// by small pure functions and run by the one runner. (Image inspection and
// tagging go through the Engine API: no process per image.)
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

export const gitHead = (dir: string): Command => ({ argv: ['git', '-C', dir, 'rev-parse', '--verify', 'HEAD'], timeoutMs: 30_000 });
export const gitIsRepo = (dir: string): Command => ({ argv: ['git', '-C', dir, 'rev-parse', '--is-inside-work-tree'], timeoutMs: 30_000 });
export const gitResolve = (dir: string, ref: string): Command => ({ argv: ['git', '-C', dir, 'rev-parse', '--verify', '--end-of-options', `${ref}^{commit}`], timeoutMs: 30_000 });
export const gitCheckout = (dir: string, commit: string): Command => ({ argv: ['git', '-C', dir, 'checkout', '--quiet', '--detach', commit], timeoutMs: 120_000 });

/** The tag that keeps a deploy's image alive (and findable) after its name moved on. */
export function keepTag(project: string, service: string, deployId: number): string {
  return `deckhand-keep/${project}-${service}:deploy-${deployId}`;
}
