// The certificates duty when things go wrong, with the built agent (user
// deckhand) against a real Pebble: the CA down (the old pair kept and
// served, the failure alerted and backed off, recovery when it returns),
// validation failing (nothing answers where the CA looks), a reload that
// fails, a changed domain list, and the agent killed in the middle of an
// order. Every case: the agent keeps running and the stored pair is whole.
//
//   node --import tsx --test --test-concurrency=1 test/integration/cert-faults.test.ts
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ERROR } from '../../agent/api/protocol.js';
import { freePort, removeDir, startAgent, tempDir, waitFor, type AgentProcess } from '../helpers/agent.js';
import { connect, createToken, streamed, type RpcClient } from '../helpers/api.js';
import { makeCert } from '../helpers/api.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';

interface Running {
  agent: AgentProcess;
  c: RpcClient;
}

function pairWhole(dataDir: string, name: string): { serial: string; version: string; domains: string } {
  const base = join(dataDir, 'certs', name);
  const version = readlinkSync(join(base, 'current'));
  assert.ok(existsSync(join(base, version, 'complete')), `current -> ${version} is complete`);
  const leaf = new X509Certificate(readFileSync(join(base, 'fullchain.pem')));
  assert.ok(leaf.checkPrivateKey(createPrivateKey(readFileSync(join(base, 'privkey.pem')))), 'key matches certificate');
  return { serial: leaf.serialNumber, version, domains: leaf.subjectAltName ?? '' };
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

describe('certificates under faults', { timeout: 300_000 }, () => {
  let dir: string;
  let pebble: Pebble;
  let httpPort: number;
  let running: Running | undefined;

  async function start(certificates: unknown[], challenge?: unknown): Promise<Running> {
    await stop(); // the agent of a test that failed before its own stop()
    const apiPort = await freePort();
    const tls = makeCert(dir, 'faults');
    const agent = await startAgent({
      dir,
      config: {
        api: { listen: `127.0.0.1:${apiPort}`, tls: { cert: tls.cert, key: tls.key } },
        certs: {
          email: 'ops@example.com',
          directory: pebble.directoryUrl,
          caBundle: join(dir, 'pebble-ca.pem'),
          challenge: challenge ?? { type: 'http-01', listen: `127.0.0.1:${httpPort}` },
          certificates,
        },
      },
    });
    await agent.waitReady(60_000);
    const c = await connect(`wss://127.0.0.1:${apiPort}/v1`, createToken(agent.configFile, `ops${Date.now()}`, 'operate', agent.user));
    running = { agent, c };
    return running;
  }

  async function stop(): Promise<void> {
    running?.c.close();
    await running?.agent.stop();
    running = undefined;
  }

  before(async () => {
    dir = tempDir('certfaults');
    httpPort = await freePort();
    pebble = await startPebble({ httpPort });
    copyFileSync(pebble.caBundlePath, join(dir, 'pebble-ca.pem'));
  });

  after(async () => {
    await stop();
    await pebble?.stop();
    if (dir) removeDir(dir);
  });

  it('CA down: the renewal fails, the old pair stays whole, alerted and backed off; the CA back, the next renewal resolves it', async () => {
    const { agent, c } = await start([{ name: 'main', domains: ['f.test'] }]);
    await waitFor(() => existsSync(join(agent.dataDir, 'certs', 'main', 'current')), 60_000, () => `not issued:\n${agent.output.slice(-2000)}`);
    const before = pairWhole(agent.dataDir, 'main');

    await pebble.stop();
    const failed = await streamed(c, 'cert.renew', { name: 'main', force: true });
    assert.equal(failed.end.ok, false);
    assert.ok(failed.end.error, 'says why');
    assert.deepEqual(pairWhole(agent.dataDir, 'main'), before, 'the old pair is untouched');
    const raised = await events(c, 'cert.renew_failed');
    assert.equal(raised.length, 1);
    assert.match(raised[0].message, /could not be renewed: .*the current certificate .* stays in use; next attempt/);
    let i = await info(c, 'main');
    assert.equal(i.failures, 1);
    assert.ok(i.backoffUntil && Date.parse(i.backoffUntil) > Date.now(), `backing off: ${JSON.stringify(i)}`);
    assert.match(i.lastError, /./);
    const health = (await agent.get('/health')).json().checks['certificate:main'][0];
    assert.equal(health.status, 'warn', JSON.stringify(health));
    assert.match(health.output, /last attempt failed/);
    // Without --force the backoff (or the plan) holds it.
    const held = await c.call('cert.renew', { name: 'main' });
    assert.equal(held.error?.code, -32002, JSON.stringify(held));

    // A restart keeps the failures: it does not hammer the CA.
    await stop();
    const again = await start([{ name: 'main', domains: ['f.test'] }]);
    i = await info(again.c, 'main');
    assert.equal(i.failures, 1, 'failures survive a restart');
    assert.ok(Date.parse(i.backoffUntil) > Date.now());

    // The CA is back (a new Pebble knows no account: the agent registers again with its key).
    await pebble.restart();
    const ok = await streamed(again.c, 'cert.renew', { name: 'main', force: true });
    assert.equal(ok.end.ok, true, JSON.stringify(ok.end));
    assert.notEqual(pairWhole(again.agent.dataDir, 'main').serial, before.serial);
    const resolved = await events(again.c, 'cert.renew_failed.resolved');
    assert.equal(resolved.length, 1);
    i = await info(again.c, 'main');
    assert.equal(i.failures, 0);
    assert.equal(i.backoffUntil, undefined);
    await stop();
  });

  it('validation failing: nothing answers where the CA looks; the failed validation is counted for the name, and the CA limit per name holds even --force', async () => {
    const elsewhere = await freePort();
    // "limited" has no certificate yet, so the agent orders it at start; it
    // has its own name (v.test) so its five failures do not hold f.test for
    // the tests after this one.
    const { agent, c } = await start(
      [
        { name: 'main', domains: ['f.test'] },
        { name: 'limited', domains: ['v.test'] },
      ],
      { type: 'http-01', listen: `127.0.0.1:${elsewhere}` },
    );
    const before = pairWhole(agent.dataDir, 'main');
    const r = await streamed(c, 'cert.renew', { name: 'main', force: true });
    assert.equal(r.end.ok, false);
    assert.match(r.end.error, /validation of f\.test failed/i);
    assert.deepEqual(pairWhole(agent.dataDir, 'main'), before);
    const i = await info(c, 'main');
    assert.ok(i.failures >= 1);

    // Five failed validations of v.test within the hour: Let's Encrypt's
    // limit per name, which not even --force goes past.
    await waitFor(async () => (await info(c, 'limited')).failures >= 1, 60_000, () => `no failed order at start:\n${agent.output.slice(-2000)}`);
    let refused: any;
    for (let k = 0; k < 8 && !refused; k++) {
      const reply = await c.call('cert.renew', { name: 'limited', force: true });
      if (reply.error) {
        refused = reply.error;
        break;
      }
      const id = reply.result.stream;
      await waitFor(() => c.notifications.some((n) => n.stream === id && n.event.type === 'end'), 60_000, () => 'cert.renew did not end');
      const end = c.notifications.find((n) => n.stream === id && n.event.type === 'end').event;
      assert.equal(end.ok, false, `attempt ${k}`);
      assert.match(end.error, /validation of v\.test failed/i);
    }
    assert.equal(refused?.code, ERROR.conflict, JSON.stringify(refused));
    assert.match(refused.message, /5 validations failed within the hour, the CA's limit per name; the next attempt can start at /);
    assert.equal((await info(c, 'limited')).failures, 5, 'refused at the sixth, not before');
    assert.ok(!existsSync(join(agent.dataDir, 'certs', 'limited', 'current')), 'nothing installed');
    assert.ok(agent.child.exitCode === null, 'the agent keeps running');
    await stop();
  });

  it('a reload that fails after a good renewal: the new pair is in place, the failure is an alert', async () => {
    const { agent, c } = await start([{ name: 'main', domains: ['f.test'], reload: { command: ['/bin/false'] } }]);
    const before = pairWhole(agent.dataDir, 'main');
    const r = await streamed(c, 'cert.renew', { name: 'main', force: true });
    assert.equal(r.end.ok, true, 'the renewal itself succeeded');
    const reload = r.events.find((e) => e.type === 'step' && e.step === 'reload' && e.status !== 'started');
    assert.equal(reload?.status, 'failed', JSON.stringify(r.events));
    assert.notEqual(pairWhole(agent.dataDir, 'main').serial, before.serial);
    const raised = (await events(c, 'cert.renew_failed')).filter((e) => e.data?.stage === 'reload');
    assert.equal(raised.length, 1, 'raised as cert.renew_failed (stage reload)');
    assert.match(raised[0].message, /renewed, but the reload failed/);
    await stop();
  });

  it('a changed domain list orders a new certificate at start', async () => {
    const { agent, c } = await start([{ name: 'main', domains: ['f.test', 'www.f.test'] }]);
    await waitFor(() => /www\.f\.test/.test(pairWhole(agent.dataDir, 'main').domains), 60_000, () => `not reissued:\n${agent.output.slice(-2000)}`);
    const [renewed] = await events(c, 'cert.renewed');
    assert.equal(renewed.data.reason, 'changed');
    assert.equal(renewed.data.usedReplaces, false, 'a new certificate, not a renewal of the old one');
    await stop();
  });

  it('the agent killed in the middle of an order: the pair is whole after, and the next start orders again', async () => {
    const { agent, c } = await start([{ name: 'main', domains: ['f.test', 'www.f.test'] }]);
    const before = pairWhole(agent.dataDir, 'main');
    const reply = await c.call('cert.renew', { name: 'main', force: true });
    assert.equal(reply.error, undefined);
    await waitFor(() => c.notifications.some((n) => n.event.type === 'step' && n.event.step === 'present'), 20_000, () => JSON.stringify(c.notifications));
    await agent.stop('SIGKILL');
    running = undefined;
    assert.deepEqual(pairWhole(agent.dataDir, 'main'), before, 'killed mid-order: the old pair, whole');
    const next = await start([{ name: 'main', domains: ['f.test', 'www.f.test'] }]);
    assert.deepEqual(pairWhole(next.agent.dataDir, 'main'), before, 'a restart keeps it');
    const r = await streamed(next.c, 'cert.renew', { name: 'main', force: true });
    assert.equal(r.end.ok, true, JSON.stringify(r.end));
    await stop();
  });
});
