// A certificate pair as data: the key types, the files of a pair, key
// generation, and the checks a new pair passes before it is stored (key
// matches leaf, chain issued the leaf, domains and key type as asked).
import { createHash, createPrivateKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { failed } from '../../errors.js';

export type KeyType = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-4096';

export const PAIR_FILES = ['privkey.pem', 'cert.pem', 'chain.pem', 'fullchain.pem'] as const;
export type PairFile = (typeof PAIR_FILES)[number];

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
  /** The leaf's issuer, one line (CN=..., O=...). */
  issuer: string;
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
    issuer: leaf.issuer.replace(/\n/g, ', '),
    fingerprint256: leaf.fingerprint256.replace(/:/g, '').toLowerCase(),
  };
}

export function fileContents(p: CertPair): Record<PairFile, string> {
  return { 'privkey.pem': p.keyPem, 'cert.pem': p.certPem, 'chain.pem': p.chainPem, 'fullchain.pem': p.fullchainPem };
}

export const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
