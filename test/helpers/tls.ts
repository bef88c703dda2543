// A self-signed certificate for loopback, made with openssl, and its
// fingerprint (SHA-256 of the DER bytes, lowercase hex) as deckhand pins it.
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCert {
  /** Paths of the PEM files. */
  certFile: string;
  keyFile: string;
  /** Their contents. */
  cert: string;
  key: string;
  fingerprint: string;
}

export function makeCert(dir: string, name = 'deckhand-test', san = 'IP:127.0.0.1,DNS:localhost'): TestCert {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '30', '-subj', `/CN=${name}`, '-addext', `subjectAltName=${san}`,
  ], { stdio: 'ignore' });
  const cert = readFileSync(certFile, 'utf8');
  return { certFile, keyFile, cert, key: readFileSync(keyFile, 'utf8'), fingerprint: createHash('sha256').update(new X509Certificate(cert).raw).digest('hex') };
}
