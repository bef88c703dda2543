// When renewals happen, against real CAs: the lifetime rule with a CA that
// has no renewalInfo (Debian bookworm's Pebble 2.4), and the CA's ARI
// window with one that has it (trixie's Pebble 2.6): the window Pebble
// answers is the plan; a certificate the CA revoked is renewed at once when
// renewalInfo is next asked (Pebble answers a window in the past); and a CA
// that refuses `replaces` (the certificate was already replaced: here the
// pair is restored to the one before, as from a backup or after a kill
// between the CA's issue and the swap) gets the order again without it.
//
//   node --import tsx --test --test-concurrency=1 test/integration/cert-schedule.test.ts
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, readlinkSync, readdirSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { openAccount } from '../../agent/duties/certs/acme.js';
import { renewalInfoUrl } from '../../agent/duties/certs/ari-id.js';
import { freePort, removeDir, startAgent, tempDir, waitFor, type AgentProcess } from '../helpers/agent.js';
import { connect, createToken, makeCert, type RpcClient } from '../helpers/api.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

interface Running {
  agent: AgentProcess;
  c: RpcClient;
}

async function events(c: RpcClient, type: string): Promise<any[]> {
  const r = await c.call('events.list', { type, limit: 100 });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  return r.result.events;
}

async function info(c: RpcClient, name: string): Promise<any> {
  const r = await c.call('cert.list', {});
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  return r.result.certificates.find((x: any) => x.name === name);
}

const leaf = (dataDir: string) => new X509Certificate(readFileSync(join(dataDir, 'certs', 'main', 'cert.pem')));

/** An agent with one certificate `main` for DOMAINS, against PEBBLE, in DIR (kept across restarts). */
function agentStarter(getDir: () => string, getPebble: () => Pebble, httpPort: () => number, domains: string[]) {
  let running: Running | undefined;
  return {
    async start(): Promise<Running> {
      const dir = getDir();
      const apiPort = await freePort();
      const tls = makeCert(dir, 'schedule');
      const agent = await startAgent({
        dir,
        config: {
          api: { listen: `127.0.0.1:${apiPort}`, tls: { cert: tls.cert, key: tls.key } },
          certs: {
            email: 'ops@example.com',
            directory: getPebble().directoryUrl,
            caBundle: join(dir, 'pebble-ca.pem'),
            challenge: { type: 'http-01', listen: `127.0.0.1:${httpPort()}` },
            certificates: [{ name: 'main', domains }],
          },
        },
      });
      await agent.waitReady(60_000);
      const c = await connect(`wss://127.0.0.1:${apiPort}/v1`, createToken(agent.configFile, `ops${Date.now()}`, 'operate', agent.user));
      running = { agent, c };
      return running;
    },
    async stop(): Promise<void> {
      running?.c.close();
      await running?.agent.stop();
      running = undefined;
    },
  };
}

describe('renewal on the lifetime rule, with a CA that has no renewalInfo', { timeout: 120_000 }, () => {
  const VALIDITY_S = 30;
  let dir: string;
  let pebble: Pebble;
  let httpPort: number;
  const agent = agentStarter(() => dir, () => pebble, () => httpPort, ['l.test']);

  before(async () => {
    dir = tempDir('certlife');
    httpPort = await freePort();
    pebble = await startPebble({ httpPort, validitySeconds: VALIDITY_S, withoutAri: true });
    copyFileSync(pebble.caBundlePath, join(dir, 'pebble-ca.pem'));
  });
  after(async () => {
    await agent.stop();
    await pebble?.stop();
    if (dir) removeDir(dir);
  });

  it('plans at half of a short lifetime left, says so, and renews then', async () => {
    assert.equal((await pebble.directory()).renewalInfo, undefined, `Pebble ${pebble.version} has no renewalInfo`);
    const { agent: a, c } = await agent.start();
    await waitFor(async () => (await events(c, 'cert.renewed')).length >= 1, 30_000, () => `no first certificate:\n${a.output.slice(-2000)}`);
    const first = leaf(a.dataDir);
    const notBefore = Date.parse(first.validFrom);
    const notAfter = Date.parse(first.validTo);
    const half = notAfter - (notAfter - notBefore) / 2;
    const planned = await info(c, 'main');
    assert.equal(planned.reason, 'lifetime', JSON.stringify(planned));
    assert.match(planned.explanation, /half of its/);
    assert.equal(planned.ariWindow, undefined);
    assert.equal(Date.parse(planned.nextRenewal), half, `planned ${planned.nextRenewal}, half of ${first.validFrom}–${first.validTo}`);

    await waitFor(async () => (await events(c, 'cert.renewed')).length >= 2, VALIDITY_S * 1000, () => `no renewal on schedule:\n${a.output.slice(-2000)}`);
    const [renewal] = await events(c, 'cert.renewed');
    const facts = `renewed at ${renewal.ts} (${renewal.data.reason}: ${renewal.data.explanation}), the old one ${first.validFrom} to ${first.validTo}`;
    assert.equal(renewal.data.trigger, 'schedule', facts);
    assert.equal(renewal.data.reason, 'lifetime', facts);
    assert.equal(renewal.data.replaced, first.serialNumber, facts);
    // Pebble 2.4 knows no `replaces`: it ignores the field.
    const at = Date.parse(renewal.ts);
    assert.ok(at >= half - 1500 && at < notAfter - (notAfter - notBefore) / 20, facts);
    assert.notEqual(leaf(a.dataDir).serialNumber, first.serialNumber);
  });
});

describe("renewal on the CA's ARI window", { timeout: 180_000 }, () => {
  let dir: string;
  let pebble: Pebble;
  let httpPort: number;
  const agent = agentStarter(() => dir, () => pebble, () => httpPort, ['r.test']);

  /** Dates the agent's last renewalInfo answer back by AGE (as if it had been off that long); the agent must be stopped. */
  function ageAriFetch(dataDir: string, ageMs: number): void {
    const db = new Database(join(dataDir, 'deckhand.db'));
    try {
      const row = db.prepare("SELECT state FROM cert_state WHERE name = 'main'").get() as { state: string };
      const s = JSON.parse(row.state);
      assert.ok(s.ari?.lastFetchAt, `renewalInfo was fetched: ${row.state}`);
      s.ari.lastFetchAt -= ageMs;
      db.prepare("UPDATE cert_state SET state = ? WHERE name = 'main'").run(JSON.stringify(s));
    } finally {
      db.close();
    }
  }

  /** Revokes the stored certificate with the agent's own account, as an operator (or the CA) would. */
  async function revokeCurrent(dataDir: string): Promise<void> {
    const account = JSON.parse(readFileSync(join(dataDir, 'certs', 'account.json'), 'utf8'));
    const { client } = await openAccount({
      directoryUrl: pebble.directoryUrl,
      accountKeyPem: account.keyPem,
      accountUrl: account.urls[pebble.directoryUrl],
      email: 'ops@example.com',
      caBundle: pebble.caBundle,
    });
    await client.revokeCertificate(readFileSync(join(dataDir, 'certs', 'main', 'cert.pem'), 'utf8'));
  }

  before(async () => {
    dir = tempDir('certari');
    httpPort = await freePort();
    pebble = await startPebble({ httpPort, validitySeconds: 90 * 24 * 3600 });
    copyFileSync(pebble.caBundlePath, join(dir, 'pebble-ca.pem'));
  });
  after(async () => {
    await agent.stop();
    await pebble?.stop();
    if (dir) removeDir(dir);
  });

  it("follows the window Pebble answers for the certificate: a point inside it", async () => {
    const directory = await pebble.directory();
    assert.equal(typeof directory.renewalInfo, 'string', `Pebble ${pebble.version} offers renewalInfo`);
    const { agent: a, c } = await agent.start();
    await waitFor(async () => (await info(c, 'main'))?.reason === 'ari', 30_000, () => `no ARI plan:\n${a.output.slice(-2000)}`);
    const cert = readFileSync(join(a.dataDir, 'certs', 'main', 'cert.pem'), 'utf8');
    const answer = await pebble.get(renewalInfoUrl(String(directory.renewalInfo), cert));
    assert.equal(answer.status, 200, answer.body);
    const window = JSON.parse(answer.body).suggestedWindow;
    const planned = await info(c, 'main');
    assert.equal(Date.parse(planned.ariWindow.start), Date.parse(window.start), JSON.stringify({ planned, window }));
    assert.equal(Date.parse(planned.ariWindow.end), Date.parse(window.end));
    const at = Date.parse(planned.nextRenewal);
    assert.ok(at >= Date.parse(window.start) && at < Date.parse(window.end), `${planned.nextRenewal} inside ${window.start}–${window.end}`);
    // Pebble's window is a day either side of the 2/3 point of 90 days: about 60 days ahead.
    assert.ok(at > Date.now() + 58 * DAY_MS && at < Date.now() + 62 * DAY_MS, planned.nextRenewal);
    assert.match(planned.explanation, /^ARI window /);
    await agent.stop();
  });

  it('a revoked certificate: the next renewalInfo answer says renew now, and it is renewed', async () => {
    const dataDir = join(dir, 'data');
    const before = leaf(dataDir);
    await revokeCurrent(dataDir);
    // Stopped for longer than Pebble's Retry-After (6 h): the start asks renewalInfo again.
    ageAriFetch(dataDir, 7 * HOUR_MS);
    const { agent: a, c } = await agent.start();
    await waitFor(async () => (await events(c, 'cert.renewed')).length >= 2, 30_000, () => `not renewed:\n${a.output.slice(-2000)}`);
    const [renewal] = await events(c, 'cert.renewed');
    assert.equal(renewal.data.trigger, 'schedule', JSON.stringify(renewal.data));
    assert.equal(renewal.data.reason, 'ari', JSON.stringify(renewal.data));
    assert.match(renewal.data.explanation, /has ended, renew now/);
    assert.equal(renewal.data.replaced, before.serialNumber);
    assert.equal(renewal.data.usedReplaces, true, 'the renewal names the certificate it replaces');
    assert.notEqual(leaf(dataDir).serialNumber, before.serialNumber);
    // The new certificate gets its own window, two months ahead again.
    await waitFor(async () => {
      const i = await info(c, 'main');
      return i.reason === 'ari' && Date.parse(i.nextRenewal) > Date.now() + 58 * DAY_MS;
    }, 10_000, () => 'no new ARI window for the new certificate');
    await agent.stop();
  });

  it('the CA refuses `replaces` (that certificate was already replaced): ordered again without it', async () => {
    const dataDir = join(dir, 'data');
    const base = join(dataDir, 'certs', 'main');
    const replaced = leaf(dataDir);
    // Back to the version before (revoked, and already replaced at the CA), as a restore from backup does.
    const currentVersion = readlinkSync(join(base, 'current'));
    const previous = readdirSync(base).filter((f) => /^v\d/.test(f) && f !== currentVersion).sort().pop();
    assert.ok(previous, `a previous version next to ${currentVersion}`);
    symlinkSync(previous!, join(base, 'current.restore'));
    renameSync(join(base, 'current.restore'), join(base, 'current'));
    const restored = leaf(dataDir);
    assert.notEqual(restored.serialNumber, replaced.serialNumber);
    const { agent: a, c } = await agent.start();
    const renewedBefore = (await events(c, 'cert.renewed')).length;
    await waitFor(async () => (await events(c, 'cert.renewed')).length > renewedBefore, 30_000, () => `not renewed:\n${a.output.slice(-2000)}`);
    const [renewal] = await events(c, 'cert.renewed');
    assert.equal(renewal.data.replaced, restored.serialNumber, JSON.stringify(renewal.data));
    assert.equal(renewal.data.usedReplaces, false, 'the retry without replaces is the one that was issued');
    const retry = a.logLines().find((l) => String(l.msg).includes('ordered again as a new certificate'));
    assert.match(String(retry?.detail), /already has a replacement/, `the log says why: ${JSON.stringify(retry)}`);
    assert.equal((await events(c, 'cert.renew_failed')).length, 0, 'the retry is not a failure');
    const now = leaf(dataDir);
    assert.ok(![restored.serialNumber, replaced.serialNumber].includes(now.serialNumber));
  });
});
