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
// only once all four are in place (details above copyFiles). A proxy that
// reloads on deckhand's signal reads after the copy has finished and always
// loads a whole pair. The `symlinks` layout has no window at all (one rename
// of `live`), for proxies that follow symlinks inside their mount.
//
// One writer per store: the agent. Everything here is synchronous, the files
// are a few KiB and each step must finish before the next begins.
import {
  createHash,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fchownSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { DomainError, failed } from '../../errors.js';
import { syncDir } from '../../store/files.js';

export type KeyType = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-4096';

export const PAIR_FILES = ['privkey.pem', 'cert.pem', 'chain.pem', 'fullchain.pem'] as const;
export type PairFile = (typeof PAIR_FILES)[number];

/** The marker written last into a version directory. */
const COMPLETE = 'complete';
/** The small record written last into a copyTo directory. */
export const PAIR_RECORD = 'deckhand-pair.json';

export interface CertPair {
  /** The leaf alone. */
  certPem: string;
  keyPem: string;
  /** Intermediates ('' for a self-signed leaf). */
  chainPem: string;
  fullchainPem: string;
  notBefore: Date;
  notAfter: Date;
  /** DNS names of the subjectAltName, lower case, as listed. */
  domains: string[];
  keyType: KeyType;
  serial: string;
  /** SHA-256 of the leaf's DER, lower-case hex without colons. */
  fingerprint256: string;
}

export interface StoredPair extends CertPair {
  /** The version directory's name (v<ms>-<hex>). */
  version: string;
}

/** What was asked for: the pair must be exactly this. */
export interface PairExpectation {
  domains: readonly string[];
  keyType: KeyType;
}

/** A new certificate as the CA returns it: the full chain (leaf first) and our key. */
export interface NewPair {
  keyPem: string;
  fullchainPem: string;
}

// ---------------------------------------------------------------------------
// Keys and parsing

/** A new private key as PKCS#8 PEM. */
export function generateKey(keyType: KeyType): string {
  switch (keyType) {
    case 'ecdsa-p256':
      return generateKeyPairSync('ec', { namedCurve: 'prime256v1', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey;
    case 'ecdsa-p384':
      return generateKeyPairSync('ec', { namedCurve: 'secp384r1', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey;
    case 'rsa-2048':
      return generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey;
    case 'rsa-4096':
      return generateKeyPairSync('rsa', { modulusLength: 4096, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } }).privateKey;
    default:
      throw failed(`unknown key type ${JSON.stringify(keyType)}`);
  }
}

/** ecdsa-p256 etc. of a key, or null for a kind deckhand does not issue. */
export function keyTypeOf(key: KeyObject): KeyType | null {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (d.namedCurve === 'prime256v1') return 'ecdsa-p256';
    if (d.namedCurve === 'secp384r1') return 'ecdsa-p384';
  }
  if (key.asymmetricKeyType === 'rsa') {
    if (d.modulusLength === 2048) return 'rsa-2048';
    if (d.modulusLength === 4096) return 'rsa-4096';
  }
  return null;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The PEM blocks of a bundle, each ending in a newline. */
export function splitPemCerts(bundle: string): string[] {
  return (bundle.match(PEM_CERT) ?? []).map((b) => `${b}\n`);
}

/** DNS names of a certificate's subjectAltName, lower case. */
export function dnsNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName ?? '';
  const out: string[] = [];
  for (const m of san.matchAll(/(?:^|, )DNS:("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    let v = m[1]!;
    if (v.startsWith('"')) v = JSON.parse(v) as string;
    out.push(v.toLowerCase());
  }
  return out;
}

/**
 * Parses and checks a pair: the key parses and matches the leaf, each
 * intermediate parses and the first issued the leaf, and when `expect` is
 * given the DNS names are exactly those asked for (in any order) and the key
 * is of the type asked for. Raises `failed` saying what is wrong.
 */
export function inspectPair(pair: NewPair, expect?: PairExpectation, what = 'certificate'): CertPair {
  const blocks = splitPemCerts(pair.fullchainPem);
  if (blocks.length === 0) throw failed(`${what}: no certificate in the PEM given`);
  let certs: X509Certificate[];
  try {
    certs = blocks.map((b) => new X509Certificate(b));
  } catch (err) {
    throw failed(`${what}: the certificate does not parse: ${(err as Error).message}`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pair.keyPem);
  } catch (err) {
    throw failed(`${what}: the private key does not parse: ${(err as Error).message}`);
  }
  const leaf = certs[0]!;
  if (!leaf.checkPrivateKey(key)) throw failed(`${what}: the private key does not match the certificate (serial ${leaf.serialNumber})`);
  if (certs[1] && !leaf.checkIssued(certs[1])) throw failed(`${what}: the chain does not start with the leaf's issuer (${leaf.issuer.replace(/\n/g, ', ')})`);
  const keyType = keyTypeOf(key);
  if (!keyType) throw failed(`${what}: unsupported key (${key.asymmetricKeyType ?? 'unknown'})`);
  const domains = dnsNames(leaf);
  if (expect) {
    if (keyType !== expect.keyType) throw failed(`${what}: key type is ${keyType}, asked for ${expect.keyType}`);
    const want = new Set(expect.domains.map((d) => d.toLowerCase()));
    const have = new Set(domains);
    const missing = [...want].filter((d) => !have.has(d));
    const extra = [...have].filter((d) => !want.has(d));
    if (missing.length || extra.length) {
      throw failed(`${what}: domains do not match what was asked${missing.length ? `; missing ${missing.join(', ')}` : ''}${extra.length ? `; not asked for ${extra.join(', ')}` : ''}`, { missing, extra });
    }
  }
  const certPem = blocks[0]!;
  const chainPem = blocks.slice(1).join('');
  return {
    certPem,
    keyPem: pair.keyPem.endsWith('\n') ? pair.keyPem : `${pair.keyPem}\n`,
    chainPem,
    fullchainPem: certPem + chainPem,
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    domains,
    keyType,
    serial: leaf.serialNumber,
    fingerprint256: leaf.fingerprint256.replace(/:/g, '').toLowerCase(),
  };
}

function fileContents(p: CertPair): Record<PairFile, string> {
  return { 'privkey.pem': p.keyPem, 'cert.pem': p.certPem, 'chain.pem': p.chainPem, 'fullchain.pem': p.fullchainPem };
}

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

// ---------------------------------------------------------------------------
// Small crash-safe steps

interface Ownership {
  uid?: number;
  gid?: number;
}

/** Creates FILE (it must not exist) with MODE whatever the umask, owner, content, fsynced. */
function writeNewFile(file: string, content: string | Buffer, mode: number, own: Ownership = {}): void {
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

const tmpName = (base: string) => `.${base}.${randomBytes(4).toString('hex')}.tmp`;
/** A name tmpName made (and nothing else an operator may keep beside the files). */
const isTmp = (entry: string) => /^\..+\.[0-9a-f]{8}\.tmp$/.test(entry);

/** Points LINK at TARGET in one step: a temporary symlink renamed over it. No fsync. */
function replaceSymlink(dir: string, link: string, target: string): void {
  const tmp = join(dir, tmpName(link));
  symlinkSync(target, tmp);
  try {
    renameSync(tmp, join(dir, link));
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

function readlinkOrNull(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EINVAL') return null;
    throw err;
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function mkdirP(dir: string, mode: number): void {
  mkdirSync(dir, { recursive: true, mode });
}

/**
 * A directory copyTo writes into: one that exists is left as the operator
 * made it; one it creates gets MODE whatever the umask (the unit's 0027
 * would shut the proxy out) and the owner asked for.
 */
function ensureCopyDir(dir: string, mode: number, own: Ownership): void {
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

const VERSION = /^v(\d{13})-[0-9a-f]{8}$/;
/** A version directory in a symlinked copy: the store's version and a suffix of its own. */
const COPY_VERSION = /^v\d{13}-[0-9a-f]{8}\.[0-9a-f]{8}$/;
const versionTime = (v: string) => Number(VERSION.exec(v)?.[1] ?? 0);

/** A name later than AFTER (names sort by their time; a clock set back does not reorder them). */
function newVersionName(after: string | null): string {
  const t = Math.max(Date.now(), after ? versionTime(after) + 1 : 0);
  return `v${String(t).padStart(13, '0')}-${randomBytes(4).toString('hex')}`;
}

function versionsIn(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return entries.filter((e) => VERSION.test(e)).sort();
}

const isComplete = (versionDir: string) => exists(join(versionDir, COMPLETE));

/**
 * Writes the four files into PARENT/NAME (a fresh directory), each fsynced,
 * then the `complete` marker, then fsyncs the directory and PARENT.
 */
function writeVersionDir(parent: string, name: string, pair: CertPair, modes: { key: number; cert: number; dir: number }, own: Ownership = {}, extra: Record<string, string> = {}): void {
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
function readVersionDir(dir: string, what: string): CertPair {
  if (!isComplete(dir)) throw failed(`${what}: version ${dir} is incomplete`);
  const keyPem = readFileSync(join(dir, 'privkey.pem'), 'utf8');
  const fullchainPem = readFileSync(join(dir, 'fullchain.pem'), 'utf8');
  return inspectPair({ keyPem, fullchainPem }, undefined, what);
}

// ---------------------------------------------------------------------------
// The store

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

function copyFiles(name: string, current: StoredPair, dir: string, opts: CopyToOptions): CopyResult {
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

function copySymlinked(name: string, current: StoredPair, dir: string, opts: CopyToOptions): CopyResult {
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
  // After a switch, keep what `live` points at and the one before it (a
  // reader may have just resolved it); the rest, an interrupted copy's
  // directory among them, goes.
  if (target !== liveName) for (const v of readdirSync(versions)) if (v !== target && v !== liveName) rmSync(join(versions, v), { recursive: true, force: true });
  return { changed, version: current.version, serial: current.serial };
}
