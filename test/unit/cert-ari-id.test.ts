import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ariCertId, ariCertIdFrom, ariCertIdParts, certificateDer, renewalInfoUrl } from '../../agent/duties/certs/ari-id.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/[^0-9a-f]/gi, ''), 'hex'));

describe('ARI certID (RFC 9773)', () => {
  it('encodes the example of RFC 9773 section 4.1', () => {
    const aki = hex('69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4');
    assert.equal(ariCertIdFrom(aki, hex('00:87:65:43:21')), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });

  describe('from a certificate', () => {
    let dir = '';
    let leafPem = '';
    let caSki = '';
    let plainPem = '';
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'dhtest-ari-id-'));
      const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
      run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
      run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=a.test', '-keyout', 'leaf.key', '-out', 'leaf.csr');
      writeFileSync(join(dir, 'leaf.ext'), 'authorityKeyIdentifier=keyid:always\nbasicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:a.test\n');
      // High bit set: the DER content octets carry a leading zero.
      run('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '0x87654321', '-days', '1', '-extfile', 'leaf.ext', '-out', 'leaf.pem');
      leafPem = readFileSync(join(dir, 'leaf.pem'), 'utf8');
      caSki = run('x509', '-in', 'ca.pem', '-noout', '-ext', 'subjectKeyIdentifier').split('\n')[1]!.trim();
      writeFileSync(join(dir, 'plain.ext'), 'basicConstraints=critical,CA:FALSE\n');
      run('x509', '-req', '-in', 'leaf.csr', '-signkey', 'leaf.key', '-days', '1', '-extfile', 'plain.ext', '-out', 'plain.pem');
      plainPem = readFileSync(join(dir, 'plain.pem'), 'utf8');
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('takes the issuer key id and the serial with its leading zero', () => {
      const parts = ariCertIdParts(leafPem);
      assert.deepEqual(Buffer.from(parts.keyIdentifier), Buffer.from(hex(caSki)));
      assert.deepEqual(Buffer.from(parts.serial), Buffer.from(hex('0087654321')));
      assert.equal(ariCertId(leafPem), `${Buffer.from(hex(caSki)).toString('base64url')}.AIdlQyE`);
    });

    it('reads DER bytes and the first certificate of a chain alike', () => {
      const id = ariCertId(leafPem);
      assert.equal(ariCertId(certificateDer(leafPem)), id);
      assert.equal(ariCertId(leafPem + readFileSync(join(dir, 'ca.pem'), 'utf8')), id);
    });

    it('builds the renewalInfo URL', () => {
      const id = ariCertId(leafPem);
      assert.equal(renewalInfoUrl('https://ca.test/renewalInfo', leafPem), `https://ca.test/renewalInfo/${id}`);
      assert.equal(renewalInfoUrl('https://ca.test/renewalInfo/', leafPem), `https://ca.test/renewalInfo/${id}`);
    });

    it('refuses a certificate without an Authority Key Identifier', () => {
      assert.throws(() => ariCertId(plainPem), /no Authority Key Identifier/);
    });
  });

  it('refuses what is not a certificate', () => {
    assert.throws(() => ariCertId('hello'), /no PEM CERTIFICATE block/);
    assert.throws(() => ariCertId(Uint8Array.of(0x30, 0x05, 0x01)), /truncated DER/);
    assert.throws(() => ariCertId(Uint8Array.of(0x02, 0x01, 0x01)), /not a DER SEQUENCE/);
  });
});
