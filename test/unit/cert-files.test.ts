// The certificate pair on disk: checked before the switch, versioned behind
// one symlink, pruned, cleaned after an interrupted write, copied out with
// the modes and owners the stack needs.
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CertStore, generateKey, inspectPair, keyTypeOf, PAIR_FILES, PAIR_RECORD, readCurrent, readPairRecord, type PairRecord } from '../../agent/duties/certs/files.js';
import { DomainError } from '../../agent/errors.js';
import { removeDir, systemUser, tempDir } from '../helpers/agent.js';
import { issued, makeCa, selfSigned, type MadePair } from '../helpers/certs.js';

const DOMAINS = ['example.com', 'www.example.com'];
const ASK = { domains: DOMAINS, keyType: 'ecdsa-p256' as const };
const mode = (p: string) => statSync(p).mode & 0o7777;

function assertRefused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DomainError, `a domain error, got ${String(err)}`);
    assert.equal(err.kind, 'failed');
    assert.match(err.message, pattern);
    return true;
  });
}

describe('certificate keys', () => {
  for (const keyType of ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-4096'] as const) {
    it(`generates ${keyType} as PKCS#8 PEM`, () => {
      const pem = generateKey(keyType);
      assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n/);
      assert.equal(keyTypeOf(createPrivateKey(pem)), keyType);
    });
  }
});

describe('certificate files', () => {
  let dir: string;
  let certsDir: string;
  let a: MadePair;
  let b: MadePair;
  let c: MadePair;
  before(() => {
    dir = tempDir('certfiles');
    certsDir = join(dir, 'made');
    mkdirSync(certsDir);
    a = selfSigned(certsDir, DOMAINS);
    b = selfSigned(certsDir, DOMAINS);
    c = selfSigned(certsDir, DOMAINS);
  });
  after(() => removeDir(dir));

  const freshData = (() => {
    let n = 0;
    return () => join(dir, `data${n++}`);
  })();

  it('installs a pair: current, stable paths, readCurrent, modes', () => {
    const data = freshData();
    const store = CertStore.open(data, 'main');
    assert.equal(store.readCurrent(), null);
    const got = store.install(a, ASK);
    const base = join(data, 'certs', 'main');
    assert.equal(readlinkSync(join(base, 'current')), got.version);
    for (const f of PAIR_FILES) {
      assert.equal(readlinkSync(join(base, f)), `current/${f}`);
      assert.equal(realpathSync(join(base, f)), join(realpathSync(base), got.version, f));
    }
    assert.equal(mode(join(base, 'privkey.pem')), 0o600);
    for (const f of ['cert.pem', 'chain.pem', 'fullchain.pem']) assert.equal(mode(join(base, f)), 0o644, f);
    assert.equal(readFileSync(join(base, 'fullchain.pem'), 'utf8'), a.fullchainPem);
    assert.equal(readFileSync(join(base, 'privkey.pem'), 'utf8'), a.keyPem);

    const cur = store.readCurrent()!;
    const x509 = new X509Certificate(a.fullchainPem);
    assert.equal(cur.version, got.version);
    assert.equal(cur.serial, x509.serialNumber);
    assert.equal(cur.fingerprint256, x509.fingerprint256.replace(/:/g, '').toLowerCase());
    assert.deepEqual(cur.domains, DOMAINS);
    assert.equal(cur.keyType, 'ecdsa-p256');
    assert.equal(cur.keyPem, a.keyPem);
    assert.equal(cur.certPem, a.fullchainPem);
    assert.equal(cur.chainPem, '');
    assert.equal(cur.notAfter.getTime(), new Date(x509.validTo).getTime());
    assert.equal(cur.notBefore.getTime(), new Date(x509.validFrom).getTime());
    // A reader elsewhere gets the same, without creating or cleaning anything.
    assert.equal(readCurrent(data, 'main')!.fingerprint256, cur.fingerprint256);
    assert.equal(readCurrent(data, 'other'), null);
    assert.ok(!existsSync(join(data, 'certs', 'other')));
  });

  it('swaps to a new pair and keeps the one before', () => {
    const data = freshData();
    const store = CertStore.open(data, 'main');
    const first = store.install(a, ASK);
    const second = store.install(b, ASK);
    assert.notEqual(first.version, second.version);
    assert.ok(second.version > first.version, 'versions sort by time');
    assert.equal(store.readCurrent()!.serial, new X509Certificate(b.fullchainPem).serialNumber);
    assert.deepEqual(readdirSync(join(data, 'certs', 'main')).filter((e) => e.startsWith('v')).sort(), [first.version, second.version]);
  });

  it('refuses a key that does not match and leaves the old pair current', () => {
    const data = freshData();
    const store = CertStore.open(data, 'main');
    const first = store.install(a, ASK);
    assertRefused(() => store.install({ keyPem: b.keyPem, fullchainPem: a.fullchainPem }, ASK), /does not match the certificate/);
    assert.equal(store.currentVersion(), first.version);
    assert.equal(store.readCurrent()!.keyPem, a.keyPem);
    assert.deepEqual(readdirSync(join(data, 'certs', 'main')).filter((e) => e.startsWith('v')), [first.version], 'nothing written');
  });

  it('refuses the wrong domains, the wrong key type, and garbage', () => {
    const data = freshData();
    const store = CertStore.open(data, 'main');
    const first = store.install(a, ASK);
    const fewer = selfSigned(certsDir, ['example.com']);
    assertRefused(() => store.install(fewer, ASK), /missing www\.example\.com/);
    const more = selfSigned(certsDir, [...DOMAINS, 'evil.example']);
    assertRefused(() => store.install(more, ASK), /not asked for evil\.example/);
    const other = selfSigned(certsDir, DOMAINS, 'ecdsa-p384');
    assertRefused(() => store.install(other, ASK), /key type is ecdsa-p384, asked for ecdsa-p256/);
    assertRefused(() => store.install({ keyPem: a.keyPem, fullchainPem: 'not a certificate' }, ASK), /no certificate/);
    assertRefused(() => store.install({ keyPem: 'junk', fullchainPem: a.fullchainPem }, ASK), /private key does not parse/);
    assert.equal(store.currentVersion(), first.version);
    assert.equal(store.readCurrent()!.keyPem, a.keyPem);
  });

  it('domain order and case do not matter', () => {
    const pair = inspectPair(a, { domains: ['WWW.example.com', 'example.com'], keyType: 'ecdsa-p256' });
    assert.deepEqual(pair.domains, DOMAINS);
  });

  it('splits a CA-issued full chain into leaf and chain, and checks the issuer', () => {
    const ca = makeCa(certsDir);
    const leaf = issued(certsDir, ca, DOMAINS, 'rsa-2048');
    const data = freshData();
    const store = CertStore.open(data, 'rsa');
    store.install(leaf, { domains: DOMAINS, keyType: 'rsa-2048' });
    const cur = store.readCurrent()!;
    assert.equal(cur.keyType, 'rsa-2048');
    assert.equal(cur.chainPem, ca.certPem);
    assert.equal(cur.fullchainPem, cur.certPem + ca.certPem);
    assert.equal(readFileSync(join(data, 'certs', 'rsa', 'chain.pem'), 'utf8'), ca.certPem);
    // A chain that does not issue the leaf.
    const otherCa = makeCa(certsDir);
    const wrong = { keyPem: leaf.keyPem, fullchainPem: splitFirst(leaf.fullchainPem) + otherCa.certPem };
    assertRefused(() => store.install(wrong, { domains: DOMAINS, keyType: 'rsa-2048' }), /chain does not start with the leaf's issuer/);
  });

  it('prunes versions beyond current and the one before', () => {
    const data = freshData();
    const store = CertStore.open(data, 'main');
    const versions = [a, b, c, a, b].map((p) => store.install(p, ASK).version);
    const left = readdirSync(join(data, 'certs', 'main')).filter((e) => e.startsWith('v')).sort();
    assert.deepEqual(left, versions.slice(-2));
  });

  it('removes leftovers of an interrupted write at open', () => {
    const data = freshData();
    const base = join(data, 'certs', 'main');
    let store = CertStore.open(data, 'main');
    const v1 = store.install(a, ASK).version;
    const v2 = store.install(b, ASK).version;
    // A version killed before its marker, one complete but never switched
    // to, a temporary symlink, and an old complete version beyond the previous.
    const half = 'v9999999999998-0000000a';
    mkdirSync(join(base, half));
    writeFileSync(join(base, half, 'privkey.pem'), c.keyPem.slice(0, 40));
    const orphan = 'v9999999999999-0000000b';
    mkdirSync(join(base, orphan));
    for (const f of PAIR_FILES) writeFileSync(join(base, orphan, f), 'x');
    writeFileSync(join(base, orphan, 'complete'), 'x');
    const ancient = 'v0000000000001-0000000c';
    mkdirSync(join(base, ancient));
    writeFileSync(join(base, ancient, 'complete'), 'x');
    symlinkSync(half, join(base, '.current.deadbeef.tmp'));
    const halfOld = 'v0000000000002-0000000d';
    mkdirSync(join(base, halfOld));

    store = CertStore.open(data, 'main');
    assert.deepEqual(readdirSync(base).filter((e) => e.startsWith('v') || e.startsWith('.')).sort(), [v1, v2].sort());
    assert.equal(store.currentVersion(), v2);
    assert.equal(store.readCurrent()!.keyPem, b.keyPem);
  });

  it('open with versions but no current removes them all (none was ever in use)', () => {
    const data = freshData();
    const base = join(data, 'certs', 'main');
    mkdirSync(join(base, 'v0000000000005-0000000e'), { recursive: true });
    writeFileSync(join(base, 'v0000000000005-0000000e', 'complete'), 'x');
    const store = CertStore.open(data, 'main');
    assert.equal(store.readCurrent(), null);
    assert.deepEqual(readdirSync(base).sort(), [...PAIR_FILES].sort(), 'only the stable paths, dangling until the first install');
  });

  it('refuses a name that is not a plain directory name', () => {
    assertRefused(() => CertStore.open(freshData(), '../x'), /invalid certificate name/);
  });

  describe('copyTo, real files', () => {
    it('writes the four files and the record; key 0600 without a gid', () => {
      const data = freshData();
      const store = CertStore.open(data, 'main');
      const v = store.install(a, ASK);
      const out = join(dir, 'copy-plain');
      const res = store.copyTo(out);
      assert.equal(res.changed, true);
      assert.equal(res.version, v.version);
      for (const f of PAIR_FILES) assert.ok(lstatSync(join(out, f)).isFile(), `${f} is a real file`);
      assert.equal(mode(join(out, 'privkey.pem')), 0o600);
      for (const f of ['cert.pem', 'chain.pem', 'fullchain.pem']) assert.equal(mode(join(out, f)), 0o644);
      assert.equal(readFileSync(join(out, 'privkey.pem'), 'utf8'), a.keyPem);
      assert.equal(readFileSync(join(out, 'fullchain.pem'), 'utf8'), a.fullchainPem);
      assertRecordMatches(out, readPairRecord(out)!);
      assert.equal(readPairRecord(out)!.serial, v.serial);
      assert.deepEqual(readdirSync(out).sort(), [...PAIR_FILES, PAIR_RECORD].sort(), 'no temporary files left');
      // Again: nothing to do.
      assert.equal(store.copyTo(out).changed, false);
      // After a swap: the new pair.
      const v2 = store.install(b, ASK);
      assert.equal(store.copyTo(out).changed, true);
      assert.equal(readPairRecord(out)!.serial, v2.serial);
      assert.equal(readFileSync(join(out, 'privkey.pem'), 'utf8'), b.keyPem);
      assertRecordMatches(out, readPairRecord(out)!);
    });

    it('repairs a directory left between renames, and removes its temporary files', () => {
      const data = freshData();
      const store = CertStore.open(data, 'main');
      store.install(a, ASK);
      const out = join(dir, 'copy-repair');
      store.copyTo(out);
      writeFileSync(join(out, 'privkey.pem'), b.keyPem, { mode: 0o600 }); // as a kill after the first rename leaves it
      writeFileSync(join(out, '.deckhand-fullchain.pem.1234abcd.tmp'), 'half');
      assert.equal(store.copyTo(out).changed, true);
      assert.equal(readFileSync(join(out, 'privkey.pem'), 'utf8'), a.keyPem);
      assertRecordMatches(out, readPairRecord(out)!);
      assert.deepEqual(readdirSync(out).sort(), [...PAIR_FILES, PAIR_RECORD].sort());
    });

    it('gives the files to the uid and gid asked for; the key 0640 for the group', { skip: process.getuid?.() !== 0 && 'needs root to chown' }, () => {
      const user = systemUser('deckhand');
      const data = freshData();
      const store = CertStore.open(data, 'main');
      store.install(a, ASK);
      const out = join(dir, 'copy-owned');
      const umask = process.umask(0o027); // the unit's
      try {
        store.copyTo(out, { uid: user.uid, gid: user.gid });
      } finally {
        process.umask(umask);
      }
      assert.equal(mode(out), 0o755, 'a directory it creates is open to the proxy whatever the umask');
      assert.equal(statSync(out).uid, user.uid);
      for (const f of [...PAIR_FILES, PAIR_RECORD]) {
        const st = statSync(join(out, f));
        assert.equal(st.uid, user.uid, f);
        assert.equal(st.gid, user.gid, f);
      }
      assert.equal(mode(join(out, 'privkey.pem')), 0o640);
      assert.equal(mode(join(out, 'fullchain.pem')), 0o644);
      // The same pair with only a gid change is copied again.
      assert.equal(store.copyTo(out, { uid: user.uid, gid: user.gid }).changed, false);
      assert.equal(store.copyTo(out, { uid: 0, gid: 0 }).changed, true);
      assert.equal(statSync(join(out, 'privkey.pem')).gid, 0);
    });

    it('refuses to copy before anything is installed', () => {
      const store = CertStore.open(freshData(), 'main');
      assertRefused(() => store.copyTo(join(dir, 'copy-none')), /nothing to copy yet/);
    });
  });

  describe('copyTo, symlinked versions', () => {
    it('switches live in one step, relative links, keeps one previous version', () => {
      const data = freshData();
      const store = CertStore.open(data, 'main');
      const out = join(dir, 'copy-links');
      const seen: string[] = [];
      for (const p of [a, b, c]) {
        const v = store.install(p, ASK);
        assert.equal(store.copyTo(out, { layout: 'symlinks' }).changed, true);
        const live = readlinkSync(join(out, 'live'));
        assert.match(live, new RegExp(`^versions/${v.version}\\.[0-9a-f]{8}$`));
        seen.push(live.slice('versions/'.length));
        for (const f of [...PAIR_FILES, PAIR_RECORD]) assert.equal(readlinkSync(join(out, f)), `live/${f}`);
        assert.equal(readFileSync(join(out, 'privkey.pem'), 'utf8'), p.keyPem);
        assert.equal(mode(join(out, 'privkey.pem')), 0o600);
        assert.equal(mode(join(out, 'fullchain.pem')), 0o644);
        assertRecordMatches(out, readPairRecord(out)!);
      }
      assert.deepEqual(readdirSync(join(out, 'versions')).sort(), seen.slice(-2));
      assert.equal(store.copyTo(out, { layout: 'symlinks' }).changed, false);
      assert.deepEqual(readdirSync(join(out, 'versions')).sort(), seen.slice(-2), 'a call with nothing to do prunes nothing');
      // What a copy killed before its switch leaves: a whole directory and a half-written one.
      const cur = store.readCurrent()!;
      mkdirSync(join(out, 'versions', `${cur.version}.ffffffff`));
      writeFileSync(join(out, 'versions', `${cur.version}.ffffffff`, 'privkey.pem'), 'half');
      cpSync(join(out, 'versions', seen[2]!), join(out, 'versions', `${cur.version}.00000000`), { recursive: true });
      assert.equal(store.copyTo(out, { layout: 'symlinks' }).changed, false);
      assert.deepEqual(readdirSync(join(out, 'versions')).sort(), seen.slice(-2), 'leftovers of an interrupted copy go, live and the one before it stay');
    });

    it('other ownership: a new version directory, the one live points at untouched', { skip: process.getuid?.() !== 0 && 'needs root to chown' }, () => {
      const user = systemUser('deckhand');
      const store = CertStore.open(freshData(), 'main');
      store.install(a, ASK);
      const out = join(dir, 'copy-links-owner');
      store.copyTo(out, { layout: 'symlinks' });
      const first = readlinkSync(join(out, 'live'));
      const firstKey = readFileSync(join(out, first, 'privkey.pem'), 'utf8');
      assert.equal(store.copyTo(out, { layout: 'symlinks', uid: user.uid, gid: user.gid }).changed, true);
      const second = readlinkSync(join(out, 'live'));
      assert.notEqual(second, first);
      assert.equal(readFileSync(join(out, first, 'privkey.pem'), 'utf8'), firstKey, 'the previous version is still whole');
      assert.equal(statSync(join(out, 'privkey.pem')).gid, user.gid);
      assert.equal(mode(join(out, 'privkey.pem')), 0o640);
    });

    it('replaces real files from the other layout by links', () => {
      const data = freshData();
      const store = CertStore.open(data, 'main');
      store.install(a, ASK);
      const out = join(dir, 'copy-switch');
      store.copyTo(out);
      store.copyTo(out, { layout: 'symlinks' });
      for (const f of PAIR_FILES) assert.ok(lstatSync(join(out, f)).isSymbolicLink());
      store.copyTo(out);
      for (const f of PAIR_FILES) assert.ok(lstatSync(join(out, f)).isFile());
      assertRecordMatches(out, readPairRecord(out)!);
    });
  });
});

function splitFirst(bundle: string): string {
  const end = '-----END CERTIFICATE-----';
  return bundle.slice(0, bundle.indexOf(end) + end.length) + '\n';
}

function assertRecordMatches(dir: string, record: PairRecord): void {
  const key = createPrivateKey(readFileSync(join(dir, 'privkey.pem')));
  const cert = new X509Certificate(readFileSync(join(dir, 'fullchain.pem')));
  assert.ok(cert.checkPrivateKey(key), 'key matches certificate');
  assert.equal(cert.serialNumber, record.serial);
}
