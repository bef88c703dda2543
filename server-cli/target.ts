// Which agent a command talks to, and with what credentials:
//   1. -H NAME: that entry of the hosts file;
//   2. else DECKHAND_URL + DECKHAND_TOKEN (+ DECKHAND_FINGERPRINT): no hosts file at all (CI);
//   3. else DECKHAND_HOST: that entry of the hosts file;
//   4. else the only entry of the hosts file.
// An explicit -H wins over the environment, so an operator with CI variables
// exported can still reach a host by name.
import type { Target } from './connect.js';
import { CliError, EXIT } from './errors.js';
import { parseFingerprintOption } from './fingerprint.js';
import { hostsFilePath, parseApiUrl, readHostsFile, type HostsFile } from './hosts.js';

export interface HostOption {
  host?: string;
}

export function resolveTarget(opts: HostOption, env: NodeJS.ProcessEnv): Target {
  if (opts.host !== undefined) return fromHostsFile(opts.host, env, '-H');
  if (env.DECKHAND_URL) return fromEnv(env);
  if (env.DECKHAND_HOST) return fromHostsFile(env.DECKHAND_HOST, env, 'DECKHAND_HOST');
  const path = hostsFilePath(env);
  const names = Object.keys(readHostsFile(path).hosts);
  if (names.length === 1) return fromHostsFile(names[0]!, env, 'default');
  if (names.length === 0) {
    throw new CliError(
      `no hosts configured (${path}): add one with \`deckhand host add NAME wss://HOST:7443 --token TOKEN\`, or set DECKHAND_URL and DECKHAND_TOKEN`,
      EXIT.usage,
    );
  }
  throw new CliError(`${names.length} hosts configured (${names.join(', ')}): choose one with -H NAME or DECKHAND_HOST`, EXIT.usage);
}

/** Every host of the hosts file, for `status --all`. */
export function allTargets(env: NodeJS.ProcessEnv): Target[] {
  const path = hostsFilePath(env);
  const file = readHostsFile(path);
  const names = Object.keys(file.hosts).sort();
  if (names.length === 0) throw new CliError(`no hosts configured (${path}): add them with \`deckhand host add NAME URL --token TOKEN\``, EXIT.usage);
  return names.map((name) => entryTarget(file, name));
}

function fromHostsFile(name: string, env: NodeJS.ProcessEnv, via: string): Target {
  const path = hostsFilePath(env);
  const file = readHostsFile(path);
  if (!Object.hasOwn(file.hosts, name)) {
    const known = Object.keys(file.hosts);
    const have = known.length > 0 ? `known: ${known.join(', ')}` : 'none configured';
    const from = via === 'DECKHAND_HOST' ? ' (from DECKHAND_HOST)' : '';
    throw new CliError(`no host named "${name}"${from} in ${path} (${have}); add it with \`deckhand host add ${name} URL --token TOKEN\``, EXIT.usage);
  }
  return entryTarget(file, name);
}

function entryTarget(file: HostsFile, name: string): Target {
  const entry = file.hosts[name]!;
  return {
    name,
    url: entry.url,
    source: 'hosts-file',
    token: entry.token,
    ...(entry.fingerprint ? { fingerprint: entry.fingerprint } : {}),
  };
}

function fromEnv(env: NodeJS.ProcessEnv): Target {
  const url = parseApiUrl(env.DECKHAND_URL!);
  if (!env.DECKHAND_TOKEN) throw new CliError('DECKHAND_URL is set but DECKHAND_TOKEN is not: set both (and DECKHAND_FINGERPRINT for a self-signed agent certificate)', EXIT.usage);
  const fingerprint = env.DECKHAND_FINGERPRINT ? parseFingerprintOption(env.DECKHAND_FINGERPRINT, 'DECKHAND_FINGERPRINT') : undefined;
  return { name: url.host, url: url.href, source: 'env', token: env.DECKHAND_TOKEN, ...(fingerprint ? { fingerprint } : {}) };
}
