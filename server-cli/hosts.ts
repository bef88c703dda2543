// The hosts file: $XDG_CONFIG_HOME/deckhand/hosts.json (default
// ~/.config/deckhand/hosts.json). It holds tokens, so it is created 0600 in a
// 0700 directory, and replaced atomically (temp file, fsync, rename) so a
// crash or a full disk never leaves half a file behind.
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { nameParam, normalizeFingerprint } from '../agent/api/protocol.js';
import * as z from '../agent/validation.js';
import { CliError, EXIT } from './errors.js';

export interface HostEntry {
  url: string;
  token: string;
  /** SHA-256 of the agent certificate's DER bytes, lowercase hex; absent when a public CA vouches for it. */
  fingerprint?: string;
}

export interface HostsFile {
  hosts: Record<string, HostEntry>;
}

const hostEntrySchema = z.strictObject({
  url: z.string().check(z.minLength(1)),
  token: z.string().check(z.minLength(1)),
  fingerprint: z.optional(z.string().check(z.refine((f: string) => normalizeFingerprint(f) === f, { error: 'must be 64 lowercase hex digits' }))),
});

const hostsFileSchema = z.strictObject({
  hosts: z.record(z.string(), hostEntrySchema).check(
    z.refine((hosts) => Object.keys(hosts).every((n) => nameParam.safeParse(n).success), {
      error: 'host names must be names: letters, digits, "_", "-", "."',
    }),
  ),
});

export function hostsFilePath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), '.config');
  return join(base, 'deckhand', 'hosts.json');
}

/** Reads the hosts file; a missing file is an empty one. */
export function readHostsFile(path: string): HostsFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { hosts: {} };
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`, EXIT.usage);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${path} is not valid JSON (${(err as Error).message}); fix it, or remove it and add the hosts again`, EXIT.usage);
  }
  const parsed = hostsFileSchema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(top)'}: ${i.message}`);
    throw new CliError(`${path} is not a deckhand hosts file: ${problems.join('; ')}`, EXIT.usage);
  }
  return parsed.data;
}

/** Replaces the hosts file atomically, owner-only. */
export function writeHostsFile(path: string, data: HostsFile): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.hosts.json.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const text = `${JSON.stringify(data, null, 2)}\n`;
  try {
    // The mode applies at creation, so the token is never readable by others, not even briefly.
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // A umask cannot widen 0600, but an inherited ACL or odd filesystem might: make sure.
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new CliError(`cannot write ${path}: ${(err as Error).message}`, EXIT.failed);
  }
  fsyncDir(dir);
}

/** Makes the rename durable; not every platform lets a directory be opened, and that is fine. */
function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort
  }
}

export function validateHostName(name: string): string {
  const parsed = nameParam.safeParse(name);
  if (!parsed.success) {
    throw new CliError(`invalid host name "${name}": use letters, digits, "_", "-", "." (at most 63, starting with a letter or digit)`, EXIT.usage);
  }
  return name;
}

/** The agent's default API port (SPEC: api.listen 0.0.0.0:7443). */
export const DEFAULT_API_PORT = 7443;

/**
 * Accepts `wss://host:port[/path]`, `https://...` (same thing), or the shorthand
 * `host[:port]` / `[v6]:port` (wss, port 7443 when left out). The API path
 * `/v1` is added when the URL has none. Plain ws:// is refused: the token
 * would cross the network in the clear.
 */
export function parseApiUrl(text: string): URL {
  const input = text.trim();
  const bad = (why: string) => new CliError(`invalid agent URL "${text}": ${why} (expected wss://HOST:PORT, e.g. wss://203.0.113.7:7443)`, EXIT.usage);
  if (input === '') throw bad('empty');
  let url: URL;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(input);
  if (scheme) {
    const proto = scheme[1]!.toLowerCase();
    if (proto === 'ws' || proto === 'http') throw bad('the API is only served over TLS; use wss://');
    if (proto !== 'wss' && proto !== 'https') throw bad(`unsupported scheme ${proto}://`);
    try {
      url = new URL(`wss://${input.slice(scheme[0].length)}`);
    } catch {
      throw bad('not a URL');
    }
  } else {
    try {
      url = new URL(`wss://${input}`);
    } catch {
      throw bad('not a URL');
    }
    if (url.port === '' && !/:\d+(\/|$)/.test(input)) url.port = String(DEFAULT_API_PORT);
  }
  if (url.hostname === '') throw bad('no host');
  if (url.username || url.password) throw bad('credentials do not belong in the URL; use --token');
  if (url.hash) throw bad('a fragment (#...) makes no sense here');
  if (url.search) throw bad('a query (?...) makes no sense here');
  if (url.pathname === '' || url.pathname === '/') url.pathname = '/v1';
  return url;
}

/** The host name for socket calls: brackets off an IPv6 literal. */
export function socketHost(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

export function socketPort(url: URL): number {
  return url.port ? Number(url.port) : 443;
}
