// Certificates for the certificate-files tests, made with openssl from keys
// deckhand generates: self-signed leaves, and leaves issued by a small CA so
// there is a chain.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKey, type KeyType } from '../../agent/duties/certs/files.js';

export interface MadePair {
  keyPem: string;
  fullchainPem: string;
}

let seq = 0;

function writeKey(dir: string, keyPem: string): string {
  const file = join(dir, `k${process.pid}-${seq++}.pem`);
  writeFileSync(file, keyPem, { mode: 0o600 });
  return file;
}

const san = (domains: readonly string[]) => `subjectAltName=${domains.map((d) => `DNS:${d}`).join(',')}`;

/** A self-signed leaf for DOMAINS with a new key of KEYTYPE (or the key given). */
export function selfSigned(dir: string, domains: readonly string[], keyType: KeyType = 'ecdsa-p256', keyPem = generateKey(keyType)): MadePair {
  const keyFile = writeKey(dir, keyPem);
  const cert = execFileSync('openssl', ['req', '-x509', '-key', keyFile, '-days', '30', '-subj', `/CN=${domains[0]}`, '-addext', san(domains)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return { keyPem, fullchainPem: cert };
}

export interface TestCa {
  keyFile: string;
  certFile: string;
  certPem: string;
}

export function makeCa(dir: string): TestCa {
  const keyFile = writeKey(dir, generateKey('ecdsa-p256'));
  const certFile = join(dir, `ca${seq++}.pem`);
  execFileSync('openssl', ['req', '-x509', '-key', keyFile, '-days', '30', '-subj', '/CN=deckhand test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-out', certFile], { stdio: 'ignore' });
  return { keyFile, certFile, certPem: execFileSync('openssl', ['x509', '-in', certFile], { encoding: 'utf8' }) };
}

/** A leaf issued by CA, its full chain being leaf + CA certificate. */
export function issued(dir: string, ca: TestCa, domains: readonly string[], keyType: KeyType = 'ecdsa-p256'): MadePair {
  const keyPem = generateKey(keyType);
  const keyFile = writeKey(dir, keyPem);
  const csr = execFileSync('openssl', ['req', '-new', '-key', keyFile, '-subj', `/CN=${domains[0]}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const extFile = join(dir, `ext${seq++}.cnf`);
  writeFileSync(extFile, `${san(domains)}\n`);
  const cert = execFileSync('openssl', ['x509', '-req', '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-days', '30', '-extfile', extFile], { input: csr, encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'] });
  return { keyPem, fullchainPem: cert + ca.certPem };
}
