// What deploys leave behind: no .env value in the database, the .env
// snapshots a rollback needs as 0600 files only while a rollback can use
// them, nothing that grows per deploy (100 deploys: abort listeners, RSS,
// stdout all JSON), and a service an operator stopped left stopped.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { unitEnvironment, waitFor } from '../helpers/agent.js';
import { makeDeployEnv, runOp, servedVersion, type DeployEnv } from '../helpers/deploy-env.js';
import { freePort } from '../helpers/agent.js';

const envs: DeployEnv[] = [];
after(async () => {
  for (const e of envs.reverse()) await e.cleanup().catch(() => undefined);
});

const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
const KEEP_DEPLOYS = 10;

describe('deploy records', { timeout: 900_000 }, () => {
  before(() => {
    execFileSync('bash', ['scripts/test-env.sh', 'web-image', '2', 'v2'], { stdio: 'ignore' });
  });

  it('100 deploys: no secret at rest, snapshots only for the rollback window, no listener or memory growth, JSON-only output', async (t) => {
    // SECRET_TOKEN is not used by the service, so `up` has nothing to recreate: the deploys are quick.
    const e = await makeDeployEnv('hundred', { deploy: { healthTimeout: '20s', stableFor: '0s', watch: '0s' } });
    envs.push(e);
    // Memory as the systemd unit runs the agent (its Node flags and malloc settings).
    await e.restartAgent({ env: unitEnvironment() });
    const marker = (i: number) => `s3cr3t-${i}-${process.pid}-`;
    // The file holds it quoted ($ and ' escaped): look for the part that is written as is.
    const secret = (i: number) => `${marker(i)}$#'" x`;
    const ids: number[] = [];
    let rssAt50 = 0;
    for (let i = 1; i <= 100; i++) {
      const r = await runOp(e, 'deploy.start', { env: { SECRET_TOKEN: secret(i) } });
      assert.equal(r.deploy.result, 'succeeded', JSON.stringify(r.deploy));
      ids.push(r.deploy.id);
      if (i === 50) rssAt50 = rssKb(e.a.agent.child.pid!);
    }
    const rssAt100 = rssKb(e.a.agent.child.pid!);
    const dataDir = e.a.agent.dataDir;

    // Listeners on the daemon's abort signal: the same after every deploy.
    // The last deploy's answer can arrive before its "lock released" line.
    const released = () => e.a.agent.logLines().filter((l) => l.msg === 'deploy lock released');
    await waitFor(() => released().length >= 100, 5000, () => `${released().length} "deploy lock released" lines`);
    const counts = released().map((l) => l.abortListeners);
    assert.equal(counts.length, 100);
    assert.deepEqual([...new Set(counts)], [counts[0]], `abort listeners per deploy: ${counts.join(',')}`);
    t.diagnostic(`100 deploys: abort listeners after each ${counts[0]}; RSS ${(rssAt50 / 1024).toFixed(1)} MB after 50, ${(rssAt100 / 1024).toFixed(1)} MB after 100`);
    // Warmed up by 50 deploys, a leak of 100 kB per deploy would show as 5 MB more by 100.
    assert.ok(rssAt100 - rssAt50 < 5 * 1024, `RSS grew from ${rssAt50} kB after 50 deploys to ${rssAt100} kB after 100`);
    const notJson = e.a.agent.output.split('\n').filter((l) => l.trim() && !isJson(l));
    assert.deepEqual(notJson, [], 'every line the agent writes is JSON');
    assert.doesNotMatch(e.a.agent.output, /MaxListenersExceededWarning/);

    // The database and its WAL hold no value; the record has the key and a hash.
    for (const f of ['deckhand.db', 'deckhand.db-wal']) {
      const bytes = readFileSync(join(dataDir, f), 'latin1');
      assert.ok(!bytes.includes('s3cr3t-'), `${f} holds a .env value`);
    }
    const last = (await e.c.call('deploy.list', { limit: 1 })).result.deploys[0];
    assert.deepEqual(last.envKeys, ['SECRET_TOKEN']);

    // Snapshots: 0600 files in a 0700 directory, only those the last deploys need.
    const snapDir = join(dataDir, 'deploy-env');
    assert.equal(statSync(snapDir).mode & 0o777, 0o700);
    const files = readdirSync(snapDir).filter((f) => f !== 'key');
    assert.ok(files.length <= KEEP_DEPLOYS + 1 && files.length >= KEEP_DEPLOYS, `${files.length} snapshots kept`);
    const contents = files.map((f) => {
      assert.equal(statSync(join(snapDir, f)).mode & 0o777, 0o600, f);
      return readFileSync(join(snapDir, f), 'utf8');
    });
    assert.ok(contents.some((c) => c.includes(marker(100))), 'the current .env is kept');
    assert.ok(!contents.some((c) => c.includes(marker(80))), 'an .env no rollback can use is gone');

    // A rollback inside the window puts the value back byte for byte; one outside is refused.
    const rb = await runOp(e, 'deploy.rollback', { id: ids[95] });
    assert.equal(rb.deploy.result, 'succeeded', JSON.stringify(rb.deploy));
    assert.match(readFileSync(join(e.stack.dir, '.env'), 'utf8'), new RegExp(`^SECRET_TOKEN=.*${marker(96)}`, 'm'));
    const old = await e.c.call('deploy.rollback', { id: ids[10] });
    assert.equal(old.error?.code, -32004);
    assert.match(old.error.message, new RegExp(`older than the last ${KEEP_DEPLOYS} deploys`));
  });

  it('a deploy leaves a service an operator stopped stopped, says so, and start brings it back on the new version', async () => {
    const workerPort = await freePort();
    const compose = `version: "2.4"
services:
  web:
    image: "deckhand-test/web:\${WEB_TAG:-latest}"
    network_mode: host
    init: true
    labels: { deckhand.test: "1" }
    environment: { PORT: "\${WEB_PORT}" }
  worker:
    image: "deckhand-test/web:\${WEB_TAG:-latest}"
    network_mode: host
    init: true
    labels: { deckhand.test: "1" }
    environment: { PORT: "${workerPort}" }
`;
    const e = await makeDeployEnv('opstop', { compose });
    envs.push(e);
    assert.deepEqual((await e.c.call('stack.stop', { service: 'worker' })).result, { ok: true });
    await waitFor(async () => (await e.stack.containerId('worker')) === '', 30_000, () => 'worker stopped');
    const r = await runOp(e, 'deploy.start', { env: { WEB_TAG: 'v2' } });
    assert.equal(r.deploy.result, 'succeeded', JSON.stringify(r.deploy));
    const note = r.deploy.steps.find((s: any) => s.step === 'stopped-services');
    assert.equal(note?.status, 'skipped');
    assert.match(note.detail, /^worker stopped by an operator: left stopped/);
    assert.equal(await servedVersion(e.port), '2');
    assert.equal(await e.stack.containerId('worker'), '', 'the worker was not started by the deploy');
    const check = (await e.a.agent.get('/health')).json().checks['service:worker'][0];
    assert.equal(check.observedValue, 'stopped');
    assert.deepEqual((await e.c.call('stack.start', { service: 'worker' })).result, { ok: true });
    await waitFor(async () => (await servedVersion(workerPort).catch(() => '')) === '2', 30_000, () => 'worker back on v2');
  });
});

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}
