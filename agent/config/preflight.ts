// What `run` needs from the box beyond a valid file, checked before any duty
// starts and by `check-config` alike, without creating or changing anything:
// a dataDir the running user may write (or create), readable API TLS files
// that load as a pair, and what the stack duty needs (stack/preflight.ts).
// One line per problem, each naming its key path.
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { dirname, join } from 'node:path';
import { certsPreflightWarnings } from '../duties/certs/preflight.js';
import { stackPreflight } from '../duties/stack/preflight.js';
import { agentIdentity } from '../identity.js';
import { shellWord } from './data-dir.js';
import type { AgentConfig } from './schema.js';

export function preflightProblems(config: AgentConfig, env: NodeJS.ProcessEnv = process.env): string[] {
  return [...dataDirWritableProblems(config.dataDir), ...tlsProblems(config), ...(config.stack ? stackPreflight(config.stack, env) : [])];
}

/** What does not stop `run` but will fail a duty later (one line each, key path first). */
export function preflightWarnings(config: AgentConfig): string[] {
  return certsPreflightWarnings(config.certs);
}

/** dataDir writable by the running user; when it does not exist yet, its nearest existing parent must let the agent create it. */
export function dataDirWritableProblems(dir: string): string[] {
  const me = agentIdentity().user;
  const fix = `run: chown ${shellWord(me)} ${shellWord(dir)}`;
  let existing = dir;
  for (;;) {
    try {
      if (!statSync(existing).isDirectory()) {
        return [existing === dir ? `dataDir: ${dir} exists but is not a directory` : `dataDir: ${dir} cannot be created: ${existing} is not a directory`];
      }
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') return [`dataDir: cannot inspect ${existing}: ${code ?? (err as Error).message}`];
      const up = dirname(existing);
      if (up === existing) return [`dataDir: cannot inspect ${dir}`];
      existing = up;
    }
  }
  if (!canWrite(existing)) {
    return [
      existing === dir
        ? `dataDir: ${dir} is not writable by user ${me}; ${fix}`
        : `dataDir: ${dir} does not exist and user ${me} may not create it in ${existing}; create it: mkdir -m 0750 ${shellWord(dir)} && chown ${shellWord(me)} ${shellWord(dir)}`,
    ];
  }
  if (existing !== dir) return [];
  // A database left by root (a `token create` before the first start) that the agent's user cannot write.
  const db = join(dir, 'deckhand.db');
  try {
    statSync(db);
  } catch {
    return [];
  }
  return canWrite(db, false) ? [] : [`dataDir: ${db} is not writable by user ${me}; run: chown ${shellWord(me)} ${shellWord(db)}`];
}

function canWrite(path: string, directory = true): boolean {
  try {
    accessSync(path, directory ? constants.W_OK | constants.X_OK : constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function tlsProblems(config: AgentConfig): string[] {
  const tls = config.api?.tls;
  if (!tls || !('cert' in tls)) return [];
  const me = agentIdentity().user;
  const read = (key: 'cert' | 'key', path: string): { problem?: string; bytes?: Buffer } => {
    try {
      if (!statSync(path).isFile()) return { problem: `api.tls.${key}: ${path} is not a regular file` };
      return { bytes: readFileSync(path) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return { problem: `api.tls.${key}: ${path} does not exist` };
      if (code === 'EACCES' || code === 'EPERM') return { problem: `api.tls.${key}: ${path} is not readable by user ${me}` };
      return { problem: `api.tls.${key}: cannot read ${path}: ${code ?? (err as Error).message}` };
    }
  };
  const cert = read('cert', tls.cert);
  const key = read('key', tls.key);
  const problems = [cert.problem, key.problem].filter((p): p is string => p !== undefined);
  if (problems.length > 0) return problems;
  try {
    createSecureContext({ cert: cert.bytes, key: key.bytes });
    return [];
  } catch (err) {
    return [`api.tls: ${tls.cert} and ${tls.key} do not load as a certificate and its key: ${(err as Error).message}`];
  }
}
