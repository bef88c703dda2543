// The stack's .env: changed by `deploy --set KEY=VALUE`, written atomically
// (temp file, fsync, rename), and the previous content kept with the deploy
// record so a rollback can put it back byte for byte.
import { accessSync, closeSync, constants, existsSync, fchmodSync, fchownSync, fsyncSync, ftruncateSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { agentIdentity } from '../../identity.js';
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

/**
 * KEY -> value as written after "=" (surrounding quotes dropped, \\ and \"
 * decoded as both CLIs do inside double quotes); the last line of a key wins.
 * Close enough to tell which keys changed and which values to mask in logs.
 */
export function envValues(text: string | null): Map<string, string> {
  const lines = (text ?? '').split('\n');
  const out = new Map<string, string>();
  for (const b of envBindings(lines)) {
    if (b.key === null) continue;
    const first = BINDING_START.exec(lines[b.from]!.replace(/\r$/, ''))![2]!;
    const raw = [first, ...lines.slice(b.from + 1, b.to)].join('\n').replace(/\r$/, '');
    out.set(b.key, unquote(raw));
  }
  return out;
}

/** Keys whose value differs between two .env texts, added and removed ones included, sorted. */
export function changedEnvKeys(before: string | null, after: string | null): string[] {
  const a = envValues(before);
  const b = envValues(after);
  return [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k)).sort();
}

function unquote(raw: string): string {
  const v = raw.trim();
  const q = v[0];
  if ((q === '"' || q === "'") && v.length >= 2 && v.endsWith(q)) {
    const inner = v.slice(1, -1);
    return q === '"' ? inner.replace(/\\([\\"])/g, '$1') : inner.replace(/\\'/g, "'");
  }
  return v.replace(/[ \t]+#.*$/, '');
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

/**
 * Writes the file so that a crash leaves either the old or the new content,
 * never a mix, and keeps its owner, group and mode: an operator's
 * `root:app 0640` stays exactly that. A new file gets MODE and the
 * directory's group. `null` removes the file.
 */
export function writeFileAtomic(file: string, content: string | null, mode = 0o600): void {
  try {
    if (content === null) {
      rmSync(file, { force: true });
      return;
    }
    const existing = statIfExists(file);
    if (existing && !canReplaceKeepingOwner(existing, dirname(file))) writeInPlace(file, content);
    else replaceFile(file, content, existing ? { mode: existing.mode & 0o7777, uid: existing.uid, gid: existing.gid } : newFileOwnership(file, mode));
  } catch (err) {
    throw explainWriteError(err, file);
  }
}

interface Ownership {
  mode: number;
  /** -1: whatever the process gets. */
  uid: number;
  gid: number;
}

function statIfExists(file: string): Stats | null {
  try {
    return statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * A replacement (temp file + rename) is a new inode, owned by whoever writes
 * it: only root can give it another owner, and only a member of the file's
 * group can give it that group. It also needs a writable directory.
 */
function canReplaceKeepingOwner(st: Stats, dir: string): boolean {
  const me = agentIdentity();
  const keepsOwner = me.uid === 0 || (st.uid === me.uid && me.gids.includes(st.gid));
  if (!keepsOwner) return false;
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function newFileOwnership(file: string, mode: number): Ownership {
  const me = agentIdentity();
  const dirGid = statSync(dirname(file)).gid;
  return { mode, uid: -1, gid: me.uid === 0 || me.gids.includes(dirGid) ? dirGid : -1 };
}

function replaceFile(file: string, content: string, own: Ownership): void {
  const tmp = join(dirname(file), `.${process.pid}.${Date.now()}.deckhand.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    try {
      if (own.uid !== -1 || own.gid !== -1) fchownSync(fd, own.uid, own.gid);
      // After the chown, which clears set-id bits; open's mode went through the umask.
      fchmodSync(fd, own.mode);
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  const dirFd = openSync(dirname(file), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/**
 * The agent may write the file but could not replace it without taking it
 * over (an unprivileged agent and a file someone else owns): write the same
 * inode. Not atomic - a crash mid-write leaves a mix - which is acceptable
 * because the deploy keeps the previous content under dataDir before it gets
 * here, and a rollback or the recovery at the next start writes it back.
 * New content first, then cut to its length: the file is never empty.
 */
function writeInPlace(file: string, content: string): void {
  const fd = openSync(file, 'r+');
  try {
    const bytes = Buffer.from(content);
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off, off);
    ftruncateSync(fd, bytes.length);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Permission errors say which path, who the agent is, and the commands that let it write. */
function explainWriteError(err: unknown, file: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') return err as Error;
  if (code === 'EROFS') return new Error(`cannot write ${file}: its filesystem is mounted read-only`);
  const me = agentIdentity();
  const target = existsSync(file) ? file : dirname(file);
  return new Error(
    `cannot write ${file}: the agent runs as user ${me.user} (group ${me.group}) and may not write ${target === file ? 'it' : `its directory ${target}`}; ` +
      `let it with: chgrp ${me.group} ${target} && chmod g+w ${target}`,
  );
}
