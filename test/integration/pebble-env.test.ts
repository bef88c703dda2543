// The ACME test environment itself, driven by acme-client directly: a Pebble
// of this file's own (test/helpers/pebble.ts) issues a short-lived
// certificate for a.test after real HTTP-01 validation against a responder
// on loopback, with Pebble's default nonce rejection on; its renewalInfo
// answers for that certificate by the RFC 9773 certID.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { createServer, type Server } from 'node:http';
import { Agent } from 'node:https';
import { after, before, describe, it } from 'node:test';
import * as acme from 'acme-client';
import { ariCertId, renewalInfoUrl } from '../../agent/duties/certs/ari-id.js';
import { freePort } from '../helpers/agent.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';

const VALIDITY_S = 120;

// acme-client's own log lines: the badNonce retries show up here.
const acmeLog: string[] = [];
acme.setLogger((msg: string) => acmeLog.push(msg));
const nonceRetries = () => acmeLog.filter((l) => l.includes('Caught invalid nonce error')).length;

function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** An HTTP-01 responder: serves /.well-known/acme-challenge/TOKEN from a map, counts the fetches. */
function responder(port: number): Promise<{ server: Server; tokens: Map<string, string>; hits: string[] }> {
  const tokens = new Map<string, string>();
  const hits: string[] = [];
  const server = createServer((req, res) => {
    const m = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '');
    const body = m ? tokens.get(m[1]!) : undefined;
    hits.push(`${req.headers.host ?? ''} ${req.url ?? ''}`);
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve({ server, tokens, hits }));
  });
}

describe('Pebble test environment (acme-client against Pebble with ARI)', { timeout: 30_000 }, () => {
  let pebble: Pebble;
  let http: Awaited<ReturnType<typeof responder>>;
  let client: acme.Client;
  let certPem = '';

  before(async () => {
    const httpPort = await freePort();
    http = await responder(httpPort);
    pebble = await startPebble({ validitySeconds: VALIDITY_S, httpPort });
    // Pebble's HTTPS endpoint is signed by the test environment's own CA.
    acme.axios.defaults.httpsAgent = new Agent({ ca: pebble.caBundle });
    client = new acme.Client({ directoryUrl: pebble.directoryUrl, accountKey: await acme.crypto.createPrivateEcdsaKey() });
  });

  after(async () => {
    await pebble?.stop();
    await new Promise((r) => http?.server.close(r));
  });

  it('serves renewalInfo in its directory', async () => {
    const dir = await pebble.directory();
    assert.equal(typeof dir.renewalInfo, 'string');
    assert.match(String(dir.renewalInfo), /^https:\/\/127\.0\.0\.1:\d+\//);
    const [major = 0, minor = 0] = pebble.version.split(/[.+-]/).map(Number);
    assert.ok(major > 2 || (major === 2 && minor >= 6), `pebble ${pebble.version} serves ARI`);
  });

  it('issues a certificate for a.test after real HTTP-01 validation', async () => {
    const t0 = Date.now();
    await client.createAccount({ termsOfServiceAgreed: true });
    const order = await client.createOrder({ identifiers: [{ type: 'dns', value: 'a.test' }] });
    const authzs = await client.getAuthorizations(order);
    for (const authz of authzs) {
      const challenge = authz.challenges.find((c) => c.type === 'http-01');
      assert.ok(challenge, 'Pebble offers http-01');
      http.tokens.set(challenge.token, await client.getChallengeKeyAuthorization(challenge));
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(challenge);
    }
    // Pebble fetched the token itself, from a.test on the responder's port
    // (its DNS answers 127.0.0.1 for every name).
    assert.ok(http.hits.some((h) => h.startsWith(`a.test:${pebble.httpPort} /.well-known/acme-challenge/`)), `responder saw: ${http.hits.join(', ')}`);
    const [, csr] = await acme.crypto.createCsr({ altNames: ['a.test'] }, await acme.crypto.createPrivateEcdsaKey());
    const finalized = await client.finalizeOrder(order, csr);
    certPem = await client.getCertificate(finalized);
    const took = Date.now() - t0;

    const leaf = new X509Certificate(pemBlocks(certPem)[0]!);
    assert.match(leaf.subjectAltName ?? '', /DNS:a\.test/);
    // The short validity asked for: notAfter - notBefore is VALIDITY_S (Pebble counts the last second in).
    const lifetime = (Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 1000;
    assert.ok(Math.abs(lifetime - VALIDITY_S) <= 1, `lifetime ${lifetime} s`);
    assert.ok(Date.parse(leaf.validTo) - Date.now() <= VALIDITY_S * 1000, 'expires within the validity from now');
    assert.ok(took < 15_000, `issuance took ${took} ms`);
  });

  it('signs it under the root of its management API', async () => {
    assert.ok(certPem, 'issued above');
    const [leafPem, ...chainPems] = pemBlocks(certPem);
    const root = new X509Certificate(await pebble.issuerRoots());
    let cert = new X509Certificate(leafPem!);
    for (const pem of chainPems) {
      const issuer = new X509Certificate(pem);
      assert.ok(cert.checkIssued(issuer) && cert.verify(issuer.publicKey), `${cert.subject} is signed by ${issuer.subject}`);
      cert = issuer;
    }
    assert.ok(cert.checkIssued(root) && cert.verify(root.publicKey), `the chain ends under the root of /roots/0 (${root.subject})`);
  });

  it('answers renewalInfo for it by its RFC 9773 certID', async () => {
    assert.ok(certPem, 'issued above');
    const dir = await pebble.directory();
    const url = renewalInfoUrl(String(dir.renewalInfo), certPem);
    assert.ok(url.endsWith(`/${ariCertId(certPem)}`));
    const res = await pebble.get(url);
    assert.equal(res.status, 200, res.body);
    const info = JSON.parse(res.body) as { suggestedWindow: { start: string; end: string } };
    const leaf = new X509Certificate(pemBlocks(certPem)[0]!);
    // Pebble's own window: two thirds into the lifetime, +/- 24 h (later
    // versions clamp it to the lifetime).
    const notBefore = Date.parse(leaf.validFrom);
    const notAfter = Date.parse(leaf.validTo);
    const ideal = notAfter - (notAfter - notBefore) / 3;
    const start = Date.parse(info.suggestedWindow.start);
    const end = Date.parse(info.suggestedWindow.end);
    assert.ok(start < end && start <= ideal + 1000 && ideal - 1000 <= end, res.body);

    // An unknown serial under the same issuer is no certificate of Pebble's.
    const [aki] = ariCertId(certPem).split('.');
    assert.notEqual((await pebble.get(`${String(dir.renewalInfo)}/${aki}.AQIDBA`)).status, 200);
  });

  it('has acme-client retry the badNonce errors Pebble sends', async () => {
    // A second Pebble rejecting 20% of good nonces: acme-client retries each
    // rejection (up to 5 times) on its own, so every call still succeeds.
    const strict = await startPebble({ nonceReject: 20 });
    try {
      const c = new acme.Client({ directoryUrl: strict.directoryUrl, accountKey: await acme.crypto.createPrivateEcdsaKey() });
      const before = nonceRetries();
      await c.createAccount({ termsOfServiceAgreed: true });
      for (let i = 0; i < 40 && nonceRetries() === before; i++) {
        await c.createOrder({ identifiers: [{ type: 'dns', value: `n${i}.test` }] });
      }
      assert.ok(nonceRetries() > before, 'at least one badNonce was retried');
    } finally {
      await strict.stop();
    }
  });

  it('can be stopped (the CA is down) and restarted', async () => {
    await pebble.stop();
    await assert.rejects(pebble.directory());
    await pebble.restart();
    const dir = await pebble.directory();
    assert.equal(typeof dir.newAccount, 'string');
    // Its DNS server serves the TXT records a dns-01 test sets.
    const resolver = new Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([pebble.challtestsrv.dnsAddress]);
    await pebble.challtestsrv.addTxt('_acme-challenge.a.test', 'value-1');
    assert.deepEqual(await resolver.resolveTxt('_acme-challenge.a.test'), [['value-1']]);
    await pebble.challtestsrv.clearTxt('_acme-challenge.a.test');
    assert.deepEqual(await resolver.resolveTxt('_acme-challenge.a.test').catch(() => []), []);
    assert.deepEqual(await resolver.resolve4('anything.test'), ['127.0.0.1']);
  });
});
