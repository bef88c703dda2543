// Every program a deploy runs, as data: compose and git argument lists built
// by small pure functions and run by the one runner. (Image inspection and
// tagging go through the Engine API: no process per image.)
import { resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
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
/**
 * The migration, in a one-off container of `service` with the images just
 * pulled or built. docker-compose v1 links every one-off container to the
 * running containers of its own service, and the engine refuses links with
 * host networking ("host type networking can't be used with links"). So
 * under v1, given the resolved file (`compose config`, as the deploy already
 * has it), a host-network service runs its migration as a copy of itself
 * under another name, the resolved file read from stdin: the same project (so the same
 * volumes), image, environment and mounts, and no running container to link
 * to. v2 links nothing and runs the service itself.
 */
export function composeMigrate(p: ComposeProject, service: string, command: readonly string[], resolved?: string): Command {
  const copy = p.cli[0] === 'docker-compose' && resolved !== undefined ? hostNetworkMigrateFile(p, service, resolved) : null;
  if (copy === null) return compose(p, ['run', '--rm', '--no-deps', '-T', service, ...command], MIGRATE_TIMEOUT_MS);
  return {
    // `--file -` alone reads the file from stdin, with the working directory as the project's (and its .env's).
    argv: [...p.cli, '--project-name', p.project, '--file', '-', 'run', '--rm', '--no-deps', '-T', migrateServiceName(service), ...command],
    cwd: p.dir,
    timeoutMs: MIGRATE_TIMEOUT_MS,
    input: copy,
  };
}

const MIGRATE_TIMEOUT_MS = 1_800_000;

/** The name the copy of a host-network service runs its migration under (v1 only). */
export const migrateServiceName = (service: string) => `${service}-deckhand-migrate`;

type ServiceDefinition = Record<string, unknown>;

const RUNNING_SERVICE_ONLY = new Set(['build', 'container_name', 'ports', 'depends_on', 'links']);

/**
 * The resolved compose file with a copy of `service` added for its migration,
 * or null when the service does not use host networking (then plain `run`
 * works). The copy uses the image the service runs (a built service's default
 * name, as compose v1 gives it) and drops what belongs to the running service
 * alone: its build, its container name, its ports and its dependencies.
 */
function hostNetworkMigrateFile(p: ComposeProject, service: string, resolved: string): string | null {
  const doc = parseYaml(resolved) as { services?: Record<string, ServiceDefinition> } | null;
  const def = doc?.services?.[service];
  if (!doc?.services || !def || def['network_mode'] !== 'host') return null;
  const copy = Object.fromEntries(Object.entries(def).filter(([key]) => !RUNNING_SERVICE_ONLY.has(key)));
  doc.services[migrateServiceName(service)] = { ...copy, image: typeof def['image'] === 'string' ? def['image'] : `${p.project}_${service}` };
  return stringifyYaml(doc);
}

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
