// The certificate pair on disk, never mixed.
//
// The store, one per certificate name, under <dataDir>/certs/<name>/:
//
//   v<ms>-<hex>/privkey.pem   0600  the key (PKCS#8 PEM)
//   v<ms>-<hex>/cert.pem      0644  the leaf
//   v<ms>-<hex>/chain.pem     0644  the intermediates
//   v<ms>-<hex>/fullchain.pem 0644  leaf + intermediates
//   v<ms>-<hex>/complete            written and fsynced last: the version is whole
//   current -> v<ms>-<hex>          the one version in use
//   privkey.pem -> current/privkey.pem   (and cert, chain, fullchain): the
//                                        stable paths of the spec
//
// A new pair is parsed and checked first (key matches certificate, the
// domains and key type asked for), then written into a fresh version
// directory, each file fsynced, the `complete` marker last, the directory
// and its parent fsynced; only then is `current` switched, by renaming a
// temporary symlink over it (one atomic step) and fsyncing the directory.
// A kill at any instant leaves `current` on the old complete version or on
// the new complete version, never on a partial one. The version before
// stays on disk (current + one previous), so a reader that resolved
// `current` just before a switch still reads its whole pair; older ones go.
// Opening a store removes what an interrupted write left: incomplete
// versions, versions written but never switched to, temporary symlinks.
//
// A reader that wants key and certificate of one version resolves `current`
// once and reads both from that directory (readCurrent does). Opening the two
// stable paths one after the other resolves `current` twice: a switch in
// between would pair the old key with the new certificate. Such readers load
// on start or on the reload deckhand sends after a swap has finished, which
// is when no switch is under way.
//
// copyTo places the pair where the stack's proxy mounts it. As real files
// (the default, for a proxy that cannot follow symlinks out of its mount)
// each file is replaced whole, but four renames are not one step: between
// the first and the last, or after a kill in between until the next copyTo,
// a reader can find the new key with the old certificate, never the new
// certificate with the old key, and deckhand-pair.json names the new pair
// only once all four are in place (details in copy-to.ts). A proxy that
// reloads on deckhand's signal reads after the copy has finished and always
// loads a whole pair. The `symlinks` layout has no window at all (one rename
// of `live`), for proxies that follow symlinks inside their mount.
//
// One writer per store: the agent. Everything here is synchronous, the files
// are a few KiB and each step must finish before the next begins.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DomainError, failed } from '../../errors.js';
import { syncDir } from '../../store/files.js';
import { copyFiles, copySymlinked, type CopyResult, type CopyToOptions } from './copy-to.js';
import { isTmp, replaceSymlink, readlinkOrNull, mkdirP, ensureCopyDir, VERSION, newVersionName, versionsIn, isComplete, writeVersionDir, readVersionDir } from './disk.js';
import { inspectPair, PAIR_FILES, type NewPair, type PairExpectation, type PairFile, type StoredPair } from './pair.js';

export * from './pair.js';
export { readPairRecord, type CopyResult, type CopyToOptions, type PairRecord } from './copy-to.js';

export class CertStore {
  readonly dir: string;

  private constructor(
    readonly dataDir: string,
    readonly name: string,
  ) {
    this.dir = join(dataDir, 'certs', name);
  }

  /** Opens (creating) the store for NAME and removes what an interrupted write left. */
  static open(dataDir: string, name: string): CertStore {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw failed(`invalid certificate name ${JSON.stringify(name)}`);
    const store = new CertStore(dataDir, name);
    try {
      mkdirP(store.dir, 0o755);
      store.cleanLeftovers();
    } catch (err) {
      throw asDomain(err, `certificate ${name}: cannot open ${store.dir}`);
    }
    return store;
  }

  /**
   * The store for NAME as it is, for a reader: nothing is created or cleaned
   * (that is the writer's open), so it is safe beside a running agent.
   */
  static reader(dataDir: string, name: string): CertStore {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw failed(`invalid certificate name ${JSON.stringify(name)}`);
    return new CertStore(dataDir, name);
  }

  /** The stable path of one file (a symlink through `current`). */
  path(file: PairFile): string {
    return join(this.dir, file);
  }

  /** The version `current` points at, or null before the first install. */
  currentVersion(): string | null {
    const v = readlinkOrNull(join(this.dir, 'current'));
    return v && VERSION.test(v) ? v : null;
  }

  /**
   * The pair in use, read from one version directory (resolved once), or null
   * before the first install. Raises `failed` when `current` is broken.
   */
  readCurrent(): StoredPair | null {
    for (let attempt = 0; ; attempt++) {
      const version = this.currentVersion();
      if (!version) return null;
      try {
        return { ...readVersionDir(join(this.dir, version), `certificate ${this.name}`), version };
      } catch (err) {
        // Pruned under us by two installs in a row: resolve again.
        if (attempt < 3 && this.currentVersion() !== version) continue;
        throw asDomain(err, `certificate ${this.name}: cannot read version ${version}`);
      }
    }
  }

  /**
   * Checks the new pair against what was asked, writes it as a new version and
   * makes it current. Refuses (`failed`) a pair that does not parse, whose key
   * does not match, or whose domains or key type differ; the old version then
   * stays current.
   */
  install(pair: NewPair, expect: PairExpectation): StoredPair {
    const what = `certificate ${this.name}`;
    const checked = inspectPair(pair, expect, what);
    const previous = this.currentVersion();
    const version = newVersionName(previous);
    try {
      writeVersionDir(this.dir, version, checked, { key: 0o600, cert: 0o644, dir: 0o755 });
      // Read back what is on disk before pointing anything at it.
      readVersionDir(join(this.dir, version), what);
      this.ensureStablePaths(); // in place before the first switch: a kill right after it leaves them whole
      replaceSymlink(this.dir, 'current', version);
      syncDir(this.dir);
      this.prune([version, previous]);
    } catch (err) {
      if (this.currentVersion() !== version) rmSync(join(this.dir, version), { recursive: true, force: true });
      throw asDomain(err, `${what}: cannot install the new pair`);
    }
    return { ...checked, version };
  }

  /**
   * Places the current pair in DIR as real files (`layout: files`, default)
   * or as a symlinked version tree (`layout: symlinks`). Does nothing when the
   * directory already holds it. See the comment above copyFiles for what a
   * reader can see while files are replaced.
   */
  copyTo(dir: string, opts: CopyToOptions = {}): CopyResult {
    const current = this.readCurrent();
    if (!current) throw failed(`certificate ${this.name}: nothing to copy yet`);
    try {
      ensureCopyDir(dir, 0o755, { uid: opts.uid, gid: opts.gid });
      return opts.layout === 'symlinks' ? copySymlinked(this.name, current, dir, opts) : copyFiles(this.name, current, dir, opts);
    } catch (err) {
      throw asDomain(err, `certificate ${this.name}: cannot copy to ${dir}`);
    }
  }

  /**
   * privkey.pem -> current/privkey.pem etc.; replaced in one step when wrong
   * or missing. They dangle until the first install, like a missing file.
   */
  private ensureStablePaths(): void {
    let changed = false;
    for (const f of PAIR_FILES) {
      const target = `current/${f}`;
      if (readlinkOrNull(this.path(f)) === target) continue;
      replaceSymlink(this.dir, f, target);
      changed = true;
    }
    if (changed) syncDir(this.dir);
  }

  /** Removes every version but KEEP. */
  private prune(keep: (string | null)[]): void {
    for (const v of versionsIn(this.dir)) if (!keep.includes(v)) rmSync(join(this.dir, v), { recursive: true, force: true });
  }

  private cleanLeftovers(): void {
    for (const e of readdirSync(this.dir)) if (isTmp(e)) rmSync(join(this.dir, e), { recursive: true, force: true });
    this.ensureStablePaths();
    const current = this.currentVersion();
    if (!current) {
      // Never switched to anything: whatever is here was never in use.
      this.prune([]);
      return;
    }
    if (!isComplete(join(this.dir, current))) throw failed(`certificate ${this.name}: current points at incomplete version ${current}`);
    // Keep current and the newest complete version older than it (the
    // previous one); drop incomplete versions and versions written after
    // current but never switched to.
    const previous = versionsIn(this.dir)
      .filter((v) => v < current && isComplete(join(this.dir, v)))
      .at(-1);
    this.prune([current, previous ?? null]);
  }
}

/** The pair in use for certificate NAME under DATADIR, or null before the first install; reads only. */
export function readCurrent(dataDir: string, name: string): StoredPair | null {
  return CertStore.reader(dataDir, name).readCurrent();
}

function asDomain(err: unknown, context: string): DomainError {
  return err instanceof DomainError ? err : failed(`${context}: ${(err as Error).message}`);
}

