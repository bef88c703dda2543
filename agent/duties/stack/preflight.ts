// What the stack duty needs from the box before the agent starts, checked
// without touching anything: the project directory with its compose file, and
// the right to talk to the Docker socket. `check-config` and `run` both ask.
// An engine that is not running (no socket yet) is not refused: that is a
// fault the agent reports on /health and survives, as at boot before dockerd.
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { explainEngineError, socketPathFromEnv } from '../../docker/engine.js';
import { agentIdentity } from '../../identity.js';
import type { StackConfig } from './config.js';

/** The names compose looks for in the project directory, in its order. */
export const COMPOSE_FILE_NAMES = ['compose.yaml', 'compose.yml', 'docker-compose.yml', 'docker-compose.yaml'] as const;

export function stackPreflight(config: Pick<StackConfig, 'dir' | 'files'>, env: NodeJS.ProcessEnv = process.env): string[] {
  return [...stackDirProblems(config), ...dockerSocketProblems(socketPathFromEnv(env), env)];
}

function stackDirProblems(config: Pick<StackConfig, 'dir' | 'files'>): string[] {
  const { dir } = config;
  const me = agentIdentity().user;
  try {
    if (!statSync(dir).isDirectory()) return [`stack.dir: ${dir} is not a directory`];
    accessSync(dir, constants.R_OK | constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [`stack.dir: ${dir} does not exist`];
    if (code === 'EACCES' || code === 'EPERM') return [`stack.dir: ${dir} is not readable by user ${me}`];
    return [`stack.dir: cannot inspect ${dir}: ${code ?? (err as Error).message}`];
  }
  if (config.files) {
    return config.files.flatMap((f, i) => {
      const why = unreadableFile(join(dir, f));
      return why ? [`stack.files[${i}]: ${join(dir, f)} ${why}`] : [];
    });
  }
  const found = COMPOSE_FILE_NAMES.find((name) => unreadableFile(join(dir, name)) !== 'does not exist');
  if (!found) return [`stack.dir: no compose file in ${dir} (looked for ${COMPOSE_FILE_NAMES.join(', ')})`];
  const why = unreadableFile(join(dir, found));
  return why ? [`stack.dir: ${join(dir, found)} ${why}`] : [];
}

/** Why a file cannot be read, or null when it can. */
function unreadableFile(path: string): string | null {
  try {
    if (!statSync(path).isFile()) return 'is not a regular file';
    accessSync(path, constants.R_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'does not exist';
    if (code === 'EACCES' || code === 'EPERM') return `is not readable by user ${agentIdentity().user}`;
    return `cannot be read: ${code ?? (err as Error).message}`;
  }
}

function dockerSocketProblems(socketPath: string, env: NodeJS.ProcessEnv): string[] {
  // DOCKER_HOST naming a TCP engine: nothing on this filesystem to check.
  if (env.DOCKER_HOST && !env.DOCKER_HOST.startsWith('unix://')) return [];
  try {
    accessSync(socketPath, constants.R_OK | constants.W_OK);
    return [];
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    return [`stack: ${(explainEngineError(err, socketPath) as Error).message}`];
  }
}
