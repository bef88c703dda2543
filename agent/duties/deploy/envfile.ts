// The stack's .env: changed by `deploy --set KEY=VALUE`, written atomically
// (temp file, fsync, rename), and the previous content kept with the deploy
// record so a rollback can put it back byte for byte.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function readEnvFile(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** A value as compose reads it back: quoted when it holds anything but plain characters. */
function formatValue(value: string): string {
  return /^[A-Za-z0-9_./:@+-]*$/.test(value) ? value : `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** Sets keys in .env text: replaces an existing line in place, appends new keys, keeps comments. */
export function applyEnvChanges(text: string | null, changes: Record<string, string>): string {
  const lines = (text ?? '').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const pending = new Map(Object.entries(changes));
  const out = lines.map((line) => {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(line);
    if (!m || !pending.has(m[1]!)) return line;
    const value = pending.get(m[1]!)!;
    pending.delete(m[1]!);
    return `${m[1]}=${formatValue(value)}`;
  });
  for (const [k, v] of pending) out.push(`${k}=${formatValue(v)}`);
  return `${out.join('\n')}\n`;
}

/** Writes the file so that a crash leaves either the old or the new content, never a mix. */
export function writeFileAtomic(file: string, content: string | null, mode = 0o600): void {
  if (content === null) {
    rmSync(file, { force: true });
    return;
  }
  const tmp = join(dirname(file), `.${process.pid}.${Date.now()}.deckhand.tmp`);
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dirFd = openSync(dirname(file), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
