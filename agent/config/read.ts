// Reads the config file without trusting what the path names: only a regular
// file is read, at most MAX_CONFIG_BYTES of it, through one open file
// descriptor, so what was checked is what is read. `--config /dev/zero` would
// otherwise fill memory, and a FIFO would block start-up until a writer came.
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { clip } from './primitives.js';

/** A config is a few kilobytes; 1 MiB leaves room for comments and still bounds memory and parse time. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Why a config could not be read, in words for the operator. */
export class UnreadableConfig extends Error {}

/** What a non-regular file is, for the message. */
export function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/** Why a file with these stats must not be read, or null when it may be. */
export function refusal(file: string, st: Stats, limit = MAX_CONFIG_BYTES): string | null {
  if (!st.isFile()) return `${clip(file)} is ${fileKind(st)}, not a regular file`;
  if (st.size > limit) return tooBig(file, bytesText(st.size), limit);
  return null;
}

function tooBig(file: string, size: string, limit: number): string {
  return `${clip(file)} is ${size}; the limit is ${bytesText(limit)}`;
}

/** `2097152 bytes (2.0 MiB)`: the exact number to compare, the rounded one to read. */
export function bytesText(n: number): string {
  const mib = 1024 * 1024;
  return n >= mib ? `${n} bytes (${(n / mib).toFixed(1)} MiB)` : `${n} bytes`;
}

/** The file's text; throws UnreadableConfig saying why it cannot be. */
export function readConfigText(file: string, limit = MAX_CONFIG_BYTES): string {
  // stat before open: opening some devices has effects of its own (a
  // watchdog arms, a tape rewinds), so a path that is not a file is never opened.
  refuseIf(refusal(file, statOrExplain(file), limit));
  // O_NONBLOCK: if the path was swapped for a FIFO since the stat, the open
  // returns at once instead of waiting for a writer; fstat then refuses it.
  const fd = openOrExplain(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    refuseIf(refusal(file, fstatSync(fd), limit));
    const bytes = readAtMost(fd, limit + 1);
    // The file grew between the fstat and the read: still never more than limit + 1 bytes in memory.
    if (bytes.length > limit) throw new UnreadableConfig(tooBig(file, `more than ${limit} bytes (it grew while being read)`, limit));
    return decodeUtf8(file, bytes);
  } finally {
    closeSync(fd);
  }
}

function refuseIf(reason: string | null): void {
  if (reason !== null) throw new UnreadableConfig(reason);
}

/** Up to `max` bytes from fd; a regular file may return fewer bytes per read than asked. */
function readAtMost(fd: number, max: number): Buffer {
  const buf = Buffer.allocUnsafe(max);
  let filled = 0;
  while (filled < max) {
    const n = readSync(fd, buf, filled, max - filled, null);
    if (n === 0) break;
    filled += n;
  }
  return buf.subarray(0, filled);
}

function decodeUtf8(file: string, bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UnreadableConfig(`${clip(file)} is not UTF-8 text`);
  }
}

function statOrExplain(file: string): Stats {
  try {
    return statSync(file);
  } catch (err) {
    throw new UnreadableConfig(explain(err, file));
  }
}

function openOrExplain(file: string, flags: number): number {
  try {
    return openSync(file, flags);
  } catch (err) {
    throw new UnreadableConfig(explain(err, file));
  }
}

/** Why the path could not be opened, naming it: the operator may not know which file was looked for (--config, DECKHAND_CONFIG, the default). */
function explain(err: unknown, file: string): string {
  const code = (err as NodeJS.ErrnoException).code;
  const where = clip(file);
  if (code === 'ENOENT') return `${where}: file not found`;
  if (code === 'EACCES' || code === 'EPERM') return `${where}: permission denied`;
  if (code === 'ENOTDIR') return `${where}: a part of the path is not a directory`;
  if (code === 'ELOOP') return `${where}: too many symbolic links`;
  return clip(String((err as Error).message));
}
