// copyTo: the current pair placed where the stack's proxy mounts it, as
// real files (layout `files`) or through one `live` symlink (`symlinks`).
import { lstatSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { syncDir } from '../../store/files.js';
import { type Ownership, writeNewFile, tmpName, isTmp, replaceSymlink, readlinkOrNull, ensureCopyDir, COPY_VERSION, isComplete, writeVersionDir } from './disk.js';
import { PAIR_FILES, PAIR_RECORD, fileContents, sha256, type PairFile, type StoredPair } from './pair.js';

export interface CopyToOptions {
  uid?: number;
  gid?: number;
  /**
   * `files` (default): real files at the top of the directory, replaced one
   * by one (see copyTo). `symlinks`: versions/<v>/ with real files and
   * `live -> versions/<v>` switched in one rename, the top-level names being
   * relative symlinks through `live`; for a proxy that follows symlinks
   * inside its mount.
   */
  layout?: 'files' | 'symlinks';
}

export interface CopyResult {
  /** False when the directory already held the current pair. */
  changed: boolean;
  version: string;
  serial: string;
}

/** What copyTo writes last, to say which pair the directory holds. */
export interface PairRecord {
  name: string;
  version: string;
  serial: string;
  fingerprint256: string;
  notAfter: string;
  sha256: Record<PairFile, string>;
}

// ---------------------------------------------------------------------------
// copyTo, layout `files`
//
// The proxy mounts DIR and reads real files privkey.pem, fullchain.pem,
// cert.pem, chain.pem. Each is replaced whole: written to a temporary name in
// DIR, fsynced, chowned (key 0640 when a gid is given, so the proxy's group
// can read it, else 0600; certificates 0644), then renamed over its final
// name. A reader never sees a half-written file.
//
// Four renames are not one atomic step. They run in this order:
//   privkey.pem, (fsync DIR), chain.pem, cert.pem, fullchain.pem, (fsync DIR),
//   then deckhand-pair.json, (fsync DIR)
// The fsync after the key makes "key before certificates" hold after a power
// cut too; the window is that one fsync and three renames. At any instant (a
// kill included) the files that differ from the pair deckhand-pair.json
// names form a prefix of that list, and along the list no file is newer than
// the one before it (after kills in a row inside the window the prefix can
// hold files of more than one newer pair; the key is always the newest). So
// a reader opening the key and a certificate inside the window can get the
// new key with the old certificate; it can never get a certificate newer
// than the key. deckhand-pair.json names the new pair only once all four are
// in place; until then it names the old pair.
//
// Why key first: the certificate is what readers watch and act on (a file
// watcher on fullchain.pem, a probe, a check of the expiry date), so when the
// new certificate is visible, its key already is; and fullchain.pem, what
// proxies load, goes last of the four. A proxy that reloads on deckhand's
// signal only reads after copyTo has returned (the reload runs after the
// swap), so it always loads a whole pair. One that loads by itself inside
// the window finds the new key with the old certificate: a proxy refuses a
// mismatched pair on reload and keeps serving the pair it had; one starting
// cold in the window fails to start, and its next start finds the whole
// pair. The order costs nothing: the old certificate with the new key is as
// unusable as the new certificate with the old key, but only one of the two
// can ever be seen.
//
// A kill inside the window leaves that state on disk until the next copyTo
// (the caller runs one at start); the leftover temporary files
// (.deckhand-*.tmp) are removed then. A reader that must tell can compare
// the files with the SHA-256s in deckhand-pair.json: equal means whole.
//
// layout `symlinks` has no such window, for proxies that follow symlinks
// inside their mount (copySymlinked).

const COPY_ORDER: readonly PairFile[] = ['privkey.pem', 'chain.pem', 'cert.pem', 'fullchain.pem'];

function copyModes(opts: CopyToOptions): { key: number; cert: number; dir: number } {
  return { key: opts.gid !== undefined ? 0o640 : 0o600, cert: 0o644, dir: 0o755 };
}

function recordOf(name: string, p: StoredPair): PairRecord {
  const contents = fileContents(p);
  const sums = Object.fromEntries(PAIR_FILES.map((f) => [f, sha256(contents[f])])) as Record<PairFile, string>;
  return { name, version: p.version, serial: p.serial, fingerprint256: p.fingerprint256, notAfter: p.notAfter.toISOString(), sha256: sums };
}

/** The record in DIR, or null when there is none or it does not parse. */
export function readPairRecord(dir: string): PairRecord | null {
  try {
    return JSON.parse(readFileSync(join(dir, PAIR_RECORD), 'utf8')) as PairRecord;
  } catch {
    return null;
  }
}

/** True when DIR's files are the ones RECORD lists, with the modes and owners asked for. */
function holds(dir: string, record: PairRecord, modes: { key: number; cert: number }, own: Ownership): boolean {
  for (const f of PAIR_FILES) {
    try {
      const path = join(dir, f);
      const st = lstatSync(path);
      if (!st.isFile()) return false;
      if ((st.mode & 0o7777) !== (f === 'privkey.pem' ? modes.key : modes.cert)) return false;
      if ((own.uid !== undefined && st.uid !== own.uid) || (own.gid !== undefined && st.gid !== own.gid)) return false;
      if (sha256(readFileSync(path)) !== record.sha256[f]) return false;
    } catch {
      return false;
    }
  }
  return true;
}

export function copyFiles(name: string, current: StoredPair, dir: string, opts: CopyToOptions): CopyResult {
  const own: Ownership = { uid: opts.uid, gid: opts.gid };
  const modes = copyModes(opts);
  const record = recordOf(name, current);
  const result = { version: current.version, serial: current.serial };
  for (const e of readdirSync(dir)) if (isTmp(e) && e.startsWith('.deckhand-')) rmSync(join(dir, e), { recursive: true, force: true });
  const had = readPairRecord(dir);
  if (had?.version === record.version && had.serial === record.serial && holds(dir, record, modes, own)) return { changed: false, ...result };

  const contents = fileContents(current);
  const temps = new Map<PairFile, string>();
  try {
    for (const f of COPY_ORDER) {
      const tmp = join(dir, tmpName(`deckhand-${f}`));
      writeNewFile(tmp, contents[f], f === 'privkey.pem' ? modes.key : modes.cert, own);
      temps.set(f, tmp);
    }
    const recordTmp = join(dir, tmpName(`deckhand-${PAIR_RECORD}`));
    writeNewFile(recordTmp, `${JSON.stringify(record, null, 2)}\n`, 0o644, own);
    syncDir(dir);
    for (const f of COPY_ORDER) {
      renameSync(temps.get(f)!, join(dir, f));
      temps.delete(f);
      if (f === 'privkey.pem' || f === 'fullchain.pem') syncDir(dir);
    }
    renameSync(recordTmp, join(dir, PAIR_RECORD));
    syncDir(dir);
  } finally {
    for (const tmp of temps.values()) rmSync(tmp, { force: true });
  }
  return { changed: true, ...result };
}

// ---------------------------------------------------------------------------
// copyTo, layout `symlinks`
//
//   versions/v<ms>-<hex>.<hex>/{privkey.pem,cert.pem,chain.pem,fullchain.pem,deckhand-pair.json,complete}
//   live -> versions/v<ms>-<hex>.<hex>
//   privkey.pem -> live/privkey.pem  (and the other three, and deckhand-pair.json)
//
// All relative, so they resolve inside the proxy's mount. The version is
// written whole (marker last, fsynced) before `live` is switched by one
// rename: a reader that resolves `live` once sees one whole pair, before or
// after, also across a kill. Current + one previous version are kept.

export function copySymlinked(name: string, current: StoredPair, dir: string, opts: CopyToOptions): CopyResult {
  const own: Ownership = { uid: opts.uid, gid: opts.gid };
  const modes = copyModes(opts);
  const versions = join(dir, 'versions');
  ensureCopyDir(versions, 0o755, own);
  for (const e of readdirSync(dir)) if (isTmp(e)) rmSync(join(dir, e), { recursive: true, force: true });
  const live = readlinkOrNull(join(dir, 'live'));
  const liveName = live?.startsWith('versions/') ? live.slice('versions/'.length) : null;
  const record = recordOf(name, current);
  let changed = false;
  let target = liveName;
  if (!(liveName && COPY_VERSION.test(liveName) && isComplete(join(versions, liveName)) && holds(join(versions, liveName), record, modes, own))) {
    // A fresh directory each time: the one `live` points at is never touched.
    target = `${current.version}.${randomBytes(4).toString('hex')}`;
    writeVersionDir(versions, target, current, modes, own, { [PAIR_RECORD]: `${JSON.stringify(record, null, 2)}\n` });
    replaceSymlink(dir, 'live', `versions/${target}`);
    syncDir(dir);
    changed = true;
  }
  for (const f of [...PAIR_FILES, PAIR_RECORD]) {
    if (readlinkOrNull(join(dir, f)) === `live/${f}`) continue;
    replaceSymlink(dir, f, `live/${f}`);
    changed = true;
  }
  if (changed) syncDir(dir);
  // Keep what `live` points at and the one before it (a reader may have just
  // resolved it); the rest goes, also when nothing was switched now: a copy
  // killed after writing its directory and before switching `live` leaves
  // one behind. Without a switch, "the one before" is the newest directory
  // of an older store version than `live`'s (names are <store version>.<hex>,
  // store versions in time order); one of the same version is a leftover.
  const storeVersion = (v: string) => v.split('.')[0]!;
  const previous = target !== liveName ? liveName : readdirSync(versions).filter((v) => storeVersion(v) < storeVersion(target!)).sort().pop() ?? null;
  for (const v of readdirSync(versions)) if (v !== target && v !== previous) rmSync(join(versions, v), { recursive: true, force: true });
  return { changed, version: current.version, serial: current.serial };
}

