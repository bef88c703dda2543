// agent/duties/certs/acme.ts against a Pebble of this file's own: an order
// for a.test validated over HTTP-01 by a responder on loopback, its renewal
// with the ARI `replaces`, a profile the CA does not offer, and a validation
// that fails (with its challenge cleaned up); dns-01 through challtestsrv.
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { get as httpsGet } from 'node:https';
import { after, before, describe, it } from 'node:test';
import * as acme from 'acme-client';
import { issue, openAccount, type ChallengeParams, type ChallengeSolver, type DirectoryInfo } from '../../agent/duties/certs/acme.js';
import { ariCertId } from '../../agent/duties/certs/ari-id.js';
import { DomainError } from '../../agent/errors.js';
import { freePort } from '../helpers/agent.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';

const extraCaAtStart = process.env.NODE_EXTRA_CA_CERTS;

function keyPem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function leafOf(fullchain: string): X509Certificate {
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(fullchain);
  assert.ok(first, 'a certificate in the chain');
  return new X509Certificate(first[0]);
}

/** An HTTP-01 solver: a node:http responder serving the tokens presented; `corrupt` serves a wrong key authorization. */
function httpSolver(port: number): Promise<{ server: Server; solver: ChallengeSolver; tokens: Map<string, string>; log: string[]; corrupt: { on: boolean } }> {
  const tokens = new Map<string, string>();
  const log: string[] = [];
  const corrupt = { on: false };
  const server = createServer((req, res) => {
    const m = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '');
    const body = m ? tokens.get(m[1]!) : undefined;
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
  });
  const solver: ChallengeSolver = {
    type: 'http-01',
    async present(o: ChallengeParams) {
      log.push(`present ${o.domain}`);
      tokens.set(o.token, corrupt.on ? `${o.keyAuthorization}x` : o.keyAuthorization);
    },
    async cleanup(o: ChallengeParams) {
      log.push(`cleanup ${o.domain}`);
      tokens.delete(o.token);
    },
  };
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve({ server, solver, tokens, log, corrupt }));
  });
}

describe('ACME orders (agent/duties/certs/acme.ts against Pebble)', { timeout: 20_000 }, () => {
  let pebble: Pebble;
  let http: Awaited<ReturnType<typeof httpSolver>>;
  let client: acme.Client;
  let directory: DirectoryInfo;
  let firstPem = '';

  before(async () => {
    const httpPort = await freePort();
    http = await httpSolver(httpPort);
    pebble = await startPebble({ httpPort });
    const opened = await openAccount({
      directoryUrl: pebble.directoryUrl,
      accountKeyPem: keyPem(),
      email: 'ops@a.test',
      caBundle: pebble.caBundle,
      pollMinMs: 200,
      pollMaxMs: 1000,
    });
    client = opened.client;
    directory = opened.directory;
    assert.match(opened.accountUrl, /^https:\/\/127\.0\.0\.1:\d+\//);
  });

  after(async () => {
    await pebble?.stop();
    await new Promise((r) => http?.server.close(r));
  });

  it("trusts the CA's bundle for this client only", async () => {
    assert.equal(acme.axios.defaults.httpsAgent, undefined, 'acme-client axios defaults untouched');
    assert.equal(process.env.NODE_EXTRA_CA_CERTS, extraCaAtStart);
    assert.equal(typeof directory.renewalInfo, 'string');
    // Anything else in the process still does not trust Pebble's endpoint.
    await assert.rejects(
      new Promise((resolve, reject) => httpsGet(pebble.directoryUrl, resolve).on('error', reject)),
      (e: unknown) => /certificate|self.signed|issuer/i.test(String(e)),
    );
  });

  it('issues a certificate for a.test over http-01, cleaning up its challenge', async () => {
    const steps: string[] = [];
    const key = keyPem();
    const got = await issue(client, { domains: ['a.test'], keyPem: key }, http.solver, { onStep: (s) => steps.push(s) });
    firstPem = got.fullchainPem;
    const leaf = leafOf(got.fullchainPem);
    assert.match(leaf.subjectAltName ?? '', /DNS:a\.test/);
    assert.ok(leaf.checkPrivateKey((await import('node:crypto')).createPrivateKey(key)), 'issued for the given key');
    assert.equal(got.usedReplaces, false);
    assert.match(got.orderUrl, /^https:\/\/127\.0\.0\.1:\d+\//);
    assert.deepEqual(http.log, ['present a.test', 'cleanup a.test']);
    assert.equal(http.tokens.size, 0);
    assert.deepEqual(steps.filter((s) => s !== 'validate'), ['order', 'present', 'finalize', 'download', 'cleanup']);
  });

  it('issues over dns-01 with the TXT value it hands the solver', async () => {
    const seen: string[] = [];
    const dns: ChallengeSolver = {
      type: 'dns-01',
      present: async (o) => {
        assert.ok(o.dnsValue && o.dnsValue !== o.keyAuthorization, 'a TXT digest apart from the key authorization');
        assert.ok(o.keyAuthorization.startsWith(`${o.token}.`));
        seen.push(`present ${o.domain}`);
        await pebble.challtestsrv.addTxt(`_acme-challenge.${o.domain}`, o.dnsValue);
      },
      cleanup: async (o) => {
        seen.push(`cleanup ${o.domain}`);
        await pebble.challtestsrv.clearTxt(`_acme-challenge.${o.domain}`);
      },
    };
    const got = await issue(client, { domains: ['d.test', 'www.d.test'], keyPem: keyPem() }, dns);
    const san = leafOf(got.fullchainPem).subjectAltName ?? '';
    assert.match(san, /DNS:d\.test/);
    assert.match(san, /DNS:www\.d\.test/);
    assert.deepEqual(seen.sort(), ['cleanup d.test', 'cleanup www.d.test', 'present d.test', 'present www.d.test']);
  });

  it('renews it with replaces', async () => {
    assert.ok(firstPem, 'issued above');
    const steps: string[] = [];
    const got = await issue(client, { domains: ['a.test'], keyPem: keyPem(), replaces: ariCertId(firstPem) }, http.solver, {
      onStep: (s) => steps.push(s),
    });
    assert.equal(got.usedReplaces, true);
    assert.ok(!steps.includes('order-retry'), steps.join(','));
    assert.match(leafOf(got.fullchainPem).subjectAltName ?? '', /DNS:a\.test/);
  });

  it('retries once without replaces when the CA refuses it', async (t) => {
    assert.ok(firstPem, 'issued above');
    // The same certificate again: already replaced above.
    const details: string[] = [];
    const got = await issue(client, { domains: ['a.test'], keyPem: keyPem(), replaces: ariCertId(firstPem) }, http.solver, {
      onStep: (s, d) => details.push(`${s}: ${d ?? ''}`),
    });
    assert.equal(got.usedReplaces, false);
    const retry = details.find((d) => d.startsWith('order-retry: without replaces'));
    assert.ok(retry, details.join('\n'));
    t.diagnostic(retry);
  });

  it('refuses a profile the CA does not offer, naming what it offers', async (t) => {
    const offered = Object.keys(directory.profiles);
    t.diagnostic(`profiles offered: ${offered.join(', ') || 'none'}`);
    const before = http.log.length;
    await assert.rejects(issue(client, { domains: ['a.test'], keyPem: keyPem(), profile: 'no-such-profile' }, http.solver), (e: unknown) => {
      assert.ok(e instanceof DomainError && e.kind === 'failed', String(e));
      if (offered.length === 0) assert.match(e.message, /offers no profiles/);
      else for (const p of offered) assert.ok(e.message.includes(p), `${e.message} names ${p}`);
      return true;
    });
    assert.equal(http.log.length, before, 'no order, no challenge');
  });

  it("rejects a failed validation with the CA's problem detail, after cleaning up", async () => {
    http.corrupt.on = true;
    http.log.length = 0;
    try {
      await assert.rejects(issue(client, { domains: ['bad.test'], keyPem: keyPem() }, http.solver), (e: unknown) => {
        assert.ok(e instanceof DomainError && e.kind === 'failed', String(e));
        assert.match(e.message, /validation of bad\.test failed: .*(key authorization|keyAuthorization)/i);
        return true;
      });
    } finally {
      http.corrupt.on = false;
    }
    assert.deepEqual(http.log, ['present bad.test', 'cleanup bad.test']);
    assert.equal(http.tokens.size, 0);
  });

  it('cleans up a presented challenge when aborted', async () => {
    http.log.length = 0;
    const ac = new AbortController();
    const slow: ChallengeSolver = {
      type: 'http-01',
      present: async (o) => {
        await http.solver.present(o);
        ac.abort(new Error('stopped'));
      },
      cleanup: (o) => http.solver.cleanup(o),
    };
    await assert.rejects(issue(client, { domains: ['c.test'], keyPem: keyPem() }, slow, { signal: ac.signal }), /stopped/);
    assert.deepEqual(http.log, ['present c.test', 'cleanup c.test']);
  });
});
