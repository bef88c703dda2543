// The small crash-safe steps of the certificate store and copyTo: files
// created whole and fsynced, symlinks replaced by rename, version
// directories written with their `complete` marker last.
import { closeSync, fchmodSync, fchownSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { failed } from '../../errors.js';
import { syncDir } from '../../store/files.js';
import { PAIR_FILES, fileContents, inspectPair, type CertPair } from './pair.js';

/** The marker written last into a version directory. */
export const COMPLETE = 'complete';

// ---------------------------------------------------------------------------
// Small crash-safe steps

export interface Ownership {
  uid?: number;
  gid?: number;
}

/** Creates FILE (it must not exist) with MODE whatever the umask, owner, content, fsynced. */
export function writeNewFile(file: string, content: string | Buffer, mode: number, own: Ownership = {}): void {
  const fd = openSync(file, 'wx', mode);
  try {
    if (own.uid !== undefined || own.gid !== undefined) fchownSync(fd, own.uid ?? -1, own.gid ?? -1);
    fchmodSync(fd, mode); // after chown, which may clear set-id bits; and whatever the umask
    const buf = typeof content === 'string' ? Buffer.from(content) : content;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export const tmpName = (base: string) => `.${base}.${randomBytes(4).toString('hex')}.tmp`;
/** A name tmpName made (and nothing else an operator may keep beside the files). */
export const isTmp = (entry: string) => /^\..+\.[0-9a-f]{8}\.tmp$/.test(entry);

/** Points LINK at TARGET in one step: a temporary symlink renamed over it. No fsync. */
export function replaceSymlink(dir: string, link: string, target: string): void {
  const tmp = join(dir, tmpName(link));
  symlinkSync(target, tmp);
  try {
    renameSync(tmp, join(dir, link));
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export function readlinkOrNull(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EINVAL') return null;
    throw err;
  }
}

export function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

export function mkdirP(dir: string, mode: number): void {
  mkdirSync(dir, { recursive: true, mode });
}

/**
 * A directory copyTo writes into: one that exists is left as the operator
 * made it; one it creates gets MODE whatever the umask (the unit's 0027
 * would shut the proxy out) and the owner asked for.
 */
export function ensureCopyDir(dir: string, mode: number, own: Ownership): void {
  if (exists(dir)) return;
  mkdirSync(dir, { recursive: true, mode });
  const fd = openSync(dir, 'r');
  try {
    if (own.uid !== undefined || own.gid !== undefined) fchownSync(fd, own.uid ?? -1, own.gid ?? -1);
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

export const VERSION = /^v(\d{13})-[0-9a-f]{8}$/;
/** A version directory in a symlinked copy: the store's version and a suffix of its own. */
export const COPY_VERSION = /^v\d{13}-[0-9a-f]{8}\.[0-9a-f]{8}$/;
export const versionTime = (v: string) => Number(VERSION.exec(v)?.[1] ?? 0);

/** A name later than AFTER (names sort by their time; a clock set back does not reorder them). */
export function newVersionName(after: string | null): string {
  const t = Math.max(Date.now(), after ? versionTime(after) + 1 : 0);
  return `v${String(t).padStart(13, '0')}-${randomBytes(4).toString('hex')}`;
}

export function versionsIn(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return entries.filter((e) => VERSION.test(e)).sort();
}

export const isComplete = (versionDir: string) => exists(join(versionDir, COMPLETE));

/**
 * Writes the four files into PARENT/NAME (a fresh directory), each fsynced,
 * then the `complete` marker, then fsyncs the directory and PARENT.
 */
export function writeVersionDir(parent: string, name: string, pair: CertPair, modes: { key: number; cert: number; dir: number }, own: Ownership = {}, extra: Record<string, string> = {}): void {
  const dir = join(parent, name);
  rmSync(dir, { recursive: true, force: true }); // an incomplete one of the same name
  mkdirSync(dir, { mode: modes.dir });
  const fd = openSync(dir, 'r');
  try {
    if (own.uid !== undefined || own.gid !== undefined) fchownSync(fd, own.uid ?? -1, own.gid ?? -1);
    fchmodSync(fd, modes.dir);
  } finally {
    closeSync(fd);
  }
  const contents = fileContents(pair);
  for (const f of PAIR_FILES) writeNewFile(join(dir, f), contents[f], f === 'privkey.pem' ? modes.key : modes.cert, own);
  for (const [f, content] of Object.entries(extra)) writeNewFile(join(dir, f), content, 0o644, own);
  writeNewFile(join(dir, COMPLETE), `${pair.serial}\n`, 0o644, own);
  syncDir(dir);
  syncDir(parent);
}

/** Reads and checks the pair in a version directory; raises `failed` when it is not whole. */
export function readVersionDir(dir: string, what: string): CertPair {
  if (!isComplete(dir)) throw failed(`${what}: version ${dir} is incomplete`);
  const keyPem = readFileSync(join(dir, 'privkey.pem'), 'utf8');
  const fullchainPem = readFileSync(join(dir, 'fullchain.pem'), 'utf8');
  return inspectPair({ keyPem, fullchainPem }, undefined, what);
}

