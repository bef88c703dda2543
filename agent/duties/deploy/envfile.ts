// The stack's .env: changed by `deploy --set KEY=VALUE`, written atomically
// (temp file, fsync, rename), and the previous content kept with the deploy
// record so a rollback can put it back byte for byte.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { formatEnvValue } from './dotenv.js';

export { ENV_KEY } from './dotenv.js';

export function readEnvFile(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Sets keys in .env text: replaces a key's line in place (a quoted value
 * that runs over several lines goes as a whole), drops later lines of the
 * same key (the last one would win in compose), appends new keys. Every
 * other line stays byte for byte as the operator wrote it (comments, blank
 * lines, CRLF endings); the result ends with a newline.
 */
export function applyEnvChanges(text: string | null, changes: Record<string, string>): string {
  const pending = new Map(Object.entries(changes));
  if (pending.size === 0) return text ?? '';
  const lines = (text ?? '').split('\n');
  const lastLineEnded = lines.at(-1) === '';
  if (lastLineEnded) lines.pop();
  const cr = lines.some((l) => l.endsWith('\r')) ? '\r' : '';
  const written = new Set<string>();
  const out: string[] = [];
  for (const binding of envBindings(lines)) {
    const key = binding.key;
    if (key === null || !pending.has(key)) {
      out.push(...lines.slice(binding.from, binding.to));
      continue;
    }
    if (written.has(key)) continue;
    written.add(key);
    const ending = lines[binding.to - 1]!.endsWith('\r') ? '\r' : '';
    out.push(`${key}=${formatEnvValue(pending.get(key)!)}${ending}`);
  }
  for (const [key, value] of pending) if (!written.has(key)) out.push(`${key}=${formatEnvValue(value)}${cr}`);
  return `${out.join('\n')}\n`;
}

/** A run of lines [from, to): one KEY=VALUE statement, or a line that is none (comment, blank, unparsable). */
interface EnvBinding {
  key: string | null;
  from: number;
  to: number;
}

const BINDING_START = /^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.]*)[ \t]*=[ \t]*(.*)$/;

/** Splits .env lines into statements the way both compose CLIs do: a quoted value may span lines. */
function envBindings(lines: readonly string[]): EnvBinding[] {
  const out: EnvBinding[] = [];
  for (let i = 0; i < lines.length; ) {
    const m = BINDING_START.exec(lines[i]!.replace(/\r$/, ''));
    if (!m) {
      out.push({ key: null, from: i, to: i + 1 });
      i += 1;
      continue;
    }
    const to = quotedValueEnd(lines, i, m[2]!);
    out.push({ key: m[1]!, from: i, to });
    i = to;
  }
  return out;
}

/** The line after the one where a value starting with a quote closes (an unclosed one runs to the end). */
function quotedValueEnd(lines: readonly string[], first: number, value: string): number {
  const quote = value[0];
  if (quote !== '"' && quote !== "'") return first + 1;
  let rest = value.slice(1);
  for (let i = first; i < lines.length; i++) {
    if (i > first) rest = lines[i]!;
    if (closesQuote(rest, quote)) return i + 1;
  }
  return lines.length;
}

function closesQuote(text: string, quote: string): boolean {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') i += 1;
    else if (text[i] === quote) return true;
  }
  return false;
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
