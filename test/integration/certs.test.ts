// The certificates duty end to end: the built agent, as user deckhand,
// against a real Pebble (ARI on, 5% nonce rejection on) validating HTTP-01
// for real against the agent's own responder on loopback. First issue, the
// files and their modes, /health and /metrics, a renewal on schedule of a
// short-lived certificate, a forced renewal, refusals, the copy, the
// reload, the served-certificate probe, and the API served with the
// managed certificate picking up renewals without a restart.
//
//   node --import tsx --test --test-concurrency=1 test/integration/certs.test.ts
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext, createServer as createTlsServer, connect as tlsConnect, type Server as TlsServer } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ERROR } from '../../agent/api/protocol.js';
import { freePort, removeDir, startAgent, systemUser, tempDir, waitFor, type AgentProcess } from '../helpers/agent.js';
import { connect, createToken, streamed, type RpcClient } from '../helpers/api.js';
import { selfSigned } from '../helpers/certs.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';

/** Lifetime of the certificates Pebble issues here: short enough to watch a renewal on schedule. */
const VALIDITY_S = 60;

async function events(c: RpcClient, type: string): Promise<any[]> {
  const r = await c.call('events.list', { type, limit: 100 });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  return r.result.events;
}

async function certList(c: RpcClient): Promise<any[]> {
  const r = await c.call('cert.list', {});
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  return r.result.certificates;
}

function servedFingerprint(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const fp = s.getPeerCertificate().fingerprint256.replace(/:/g, '').toLowerCase();
      s.destroy();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

const leafOf = (pem: string) => new X509Certificate(pem);

describe('certificates against a real Pebble', { timeout: 300_000 }, () => {
  let dir: string;
  let pebble: Pebble;
  let agent: AgentProcess;
  let c: RpcClient;
  let copyDir: string;
  let reloadMark: string;
  let probeServer: TlsServer;
  /** What the probed TLS server serves: a fixed self-signed pair until it "reloads" from the copy. */
  let served: { key: string; cert: string };
  let apiPort: number;

  before(async () => {
    dir = tempDir('certs');
    const httpPort = await freePort();
    pebble = await startPebble({ httpPort, validitySeconds: VALIDITY_S });
    copyFileSync(pebble.caBundlePath, join(dir, 'pebble-ca.pem'));
    // Where the stack mounts its certificates: the agent's to write, as an installer sets it up.
    copyDir = join(dir, 'proxy-certs');
    mkdirSync(copyDir);
    const u = systemUser('deckhand');
    chownSync(copyDir, u.uid, u.gid);
    reloadMark = join(dir, 'data', 'reloaded');
    // The stack's "proxy": serves whatever pair it last loaded, on a loopback port the agent probes.
    const fake = selfSigned(join(dir), ['a.test', 'www.a.test']);
    served = { key: fake.keyPem, cert: fake.fullchainPem };
    const probePort = await freePort();
    probeServer = createTlsServer({ SNICallback: (_name, cb) => cb(null, createSecureContext(served)) });
    await new Promise<void>((r) => probeServer.listen(probePort, '127.0.0.1', r));
    apiPort = await freePort();
    agent = await startAgent({
      dir,
      config: {
        api: { listen: `127.0.0.1:${apiPort}`, tls: { acme: 'main' } },
        certs: {
          email: 'ops@example.com',
          directory: pebble.directoryUrl,
          caBundle: join(dir, 'pebble-ca.pem'),
          challenge: { type: 'http-01', listen: `127.0.0.1:${httpPort}` },
          certificates: [
            {
              name: 'main',
              domains: ['a.test', 'www.a.test'],
              copyTo: copyDir,
              reload: { command: ['/usr/bin/touch', reloadMark] },
              probe: `127.0.0.1:${probePort}`,
            },
          ],
        },
      },
    });
    await agent.waitReady(60_000);
  });

  after(async () => {
    c?.close();
    await agent?.stop();
    await pebble?.stop();
    await new Promise((r) => probeServer?.close(r));
    if (dir) removeDir(dir);
  });

  it('issues the first certificate at start; the API listens once it exists, with it', async () => {
    const data = agent.dataDir;
    await waitFor(() => existsSync(join(data, 'certs', 'main', 'current')), 60_000, () => `no certificate issued:\n${agent.output.slice(-3000)}`);
    await waitFor(async () => (await servedFingerprint(apiPort, 'a.test').catch(() => '')) !== '', 10_000, () => 'the API does not listen');
    const full = readFileSync(join(data, 'certs', 'main', 'fullchain.pem'), 'utf8');
    const leaf = leafOf(full);
    assert.match(leaf.subjectAltName ?? '', /DNS:a\.test/);
    assert.match(leaf.subjectAltName ?? '', /DNS:www\.a\.test/);
    assert.equal(await servedFingerprint(apiPort, 'a.test'), leaf.fingerprint256.replace(/:/g, '').toLowerCase(), 'the API serves the managed certificate');
    // Key material: 0600, the agent's own.
    const u = systemUser('deckhand');
    for (const f of [join(data, 'certs', 'main', 'privkey.pem'), join(data, 'certs', 'account.json')]) {
      const st = statSync(f);
      assert.equal(st.mode & 0o777, 0o600, `${f} is 0600`);
      assert.equal(st.uid, u.uid, `${f} belongs to the agent's user`);
    }
    const account = JSON.parse(readFileSync(join(data, 'certs', 'account.json'), 'utf8'));
    assert.match(account.urls[pebble.directoryUrl], /^https:\/\/127\.0\.0\.1:\d+\//, 'the account URL is kept for reuse');
    // The copy, the reload, and the probe that saw the proxy still serving its old pair.
    assert.equal(readFileSync(join(copyDir, 'fullchain.pem'), 'utf8'), full);
    await waitFor(() => existsSync(reloadMark), 10_000, () => 'the reload command did not run');
    c = await connect(`wss://127.0.0.1:${apiPort}/v1`, createToken(agent.configFile, 'certs-op', 'operate', agent.user));
    // The agent believes a mismatch only after looking again 1, 2 and 4 s later (a proxy's reload takes a moment).
    await waitFor(async () => (await events(c, 'cert.served_mismatch')).length > 0, 30_000, () => 'no cert.served_mismatch');
    const [info] = await certList(c);
    assert.equal(info.name, 'main');
    assert.ok(info.daysLeft >= 0);
    assert.equal(info.probe.ok, false);
    assert.match(info.nextRenewal, /^\d{4}-/);
    assert.ok(['ari', 'lifetime', 'urgent'].includes(info.reason), `reason ${info.reason}`);
    const renewed = await events(c, 'cert.renewed');
    assert.equal(renewed.length, 1);
    assert.equal(renewed[0].subject, 'main');
  });

  it('reports the certificate on /health and /metrics', async () => {
    const health = (await agent.get('/health')).json();
    const check = health.checks['certificate:main']?.[0];
    assert.ok(check, JSON.stringify(Object.keys(health.checks)));
    assert.ok(['pass', 'warn', 'fail'].includes(check.status));
    assert.equal(check.observedUnit, 'd');
    const metrics = (await agent.get('/metrics')).text;
    const m = /deckhand_certificate_expiry_timestamp_seconds\{name="main"\} (\d+)/.exec(metrics);
    assert.ok(m, 'expiry gauge');
    const leaf = leafOf(readFileSync(join(agent.dataDir, 'certs', 'main', 'cert.pem'), 'utf8'));
    assert.equal(Number(m![1]), Math.floor(Date.parse(leaf.validTo) / 1000));
    assert.match(metrics, /deckhand_certificate_next_renewal_timestamp_seconds\{name="main"\} \d+/);
  });

  it('renews on schedule, before the certificate expires, with replaces; the proxy reloaded from the copy passes the probe', async () => {
    const before = leafOf(readFileSync(join(agent.dataDir, 'certs', 'main', 'cert.pem'), 'utf8'));
    // The proxy now loads what deckhand copies (as a real one would on the reload signal).
    served = { key: readFileSync(join(copyDir, 'privkey.pem'), 'utf8'), cert: readFileSync(join(copyDir, 'fullchain.pem'), 'utf8') };
    const proxyReload = setInterval(() => {
      try {
        served = { key: readFileSync(join(copyDir, 'privkey.pem'), 'utf8'), cert: readFileSync(join(copyDir, 'fullchain.pem'), 'utf8') };
      } catch {
        /* between renames */
      }
    }, 200);
    try {
      await waitFor(async () => (await events(c, 'cert.renewed')).length >= 2, (VALIDITY_S + 20) * 1000, () => `no renewal on schedule:\n${agent.output.slice(-3000)}`);
      const [renewal] = await events(c, 'cert.renewed'); // newest first
      assert.equal(renewal.data.trigger, 'schedule');
      assert.equal(renewal.data.replaced, before.serialNumber);
      // Pebble's ARI window is a day either side of the 2/3 point, so for a
      // minute-long certificate the point drawn in it lies past expiry: the
      // "always with under 1/20 left" rule brings it forward (SPEC 3).
      const notBefore = Date.parse(before.validFrom);
      const notAfter = Date.parse(before.validTo) + 1000;
      const urgentAt = notAfter - (notAfter - notBefore) / 20;
      const at = Date.parse(renewal.ts);
      const facts = `renewed at ${renewal.ts} (${renewal.data.reason}: ${renewal.data.explanation}), the old one valid ${before.validFrom} to ${before.validTo}`;
      assert.equal(renewal.data.reason, 'urgent', facts);
      assert.ok(at >= urgentAt - 1500 && at < notAfter, facts);
      const now = leafOf(readFileSync(join(agent.dataDir, 'certs', 'main', 'cert.pem'), 'utf8'));
      assert.notEqual(now.serialNumber, before.serialNumber);
      // The API picked the renewal up without a restart.
      await waitFor(async () => (await servedFingerprint(apiPort, 'a.test')) === now.fingerprint256.replace(/:/g, '').toLowerCase(), 5000, () => 'the API still serves the old certificate');
      await waitFor(async () => (await events(c, 'cert.served_mismatch.resolved')).length > 0, 30_000, () => 'the mismatch did not clear');
    } finally {
      clearInterval(proxyReload);
    }
  });

  it('cert.renew: refused when not due, a forced renewal streams its steps', async () => {
    // Right after a renewal the 40 s certificate is not due for a while, but it may be by now: force decides.
    const refused = await c.call('cert.renew', { name: 'nope' });
    assert.equal(refused.error?.code, ERROR.notFound, JSON.stringify(refused));
    const before = leafOf(readFileSync(join(agent.dataDir, 'certs', 'main', 'cert.pem'), 'utf8'));
    const { events: steps, end } = await streamed(c, 'cert.renew', { name: 'main', force: true });
    assert.equal(end.ok, true, JSON.stringify(end));
    assert.equal(end.certificate.name, 'main');
    const names = steps.filter((e) => e.type === 'step' && e.status === 'ok').map((e) => e.step);
    for (const s of ['order', 'install', 'copy', 'reload']) assert.ok(names.includes(s), `step ${s} in ${names.join(', ')}`);
    const after = leafOf(readFileSync(join(agent.dataDir, 'certs', 'main', 'cert.pem'), 'utf8'));
    assert.notEqual(after.serialNumber, before.serialNumber);
    assert.equal(end.certificate.serial, after.serialNumber);
    const read = await connect(`wss://127.0.0.1:${apiPort}/v1`, createToken(agent.configFile, 'certs-read', 'read', agent.user));
    const denied = await read.call('cert.renew', { name: 'main', force: true });
    read.close();
    assert.ok(denied.error, 'a read token cannot renew');
  });
});
