// Deploys against a real engine with local images: success, a new version
// that fails its healthcheck, a tag moved under us, a failing migration, a
// build error, a crash inside the watch window, two at once, --ref, rollback
// to a chosen deploy, and the agent killed at each step.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, waitFor } from '../helpers/agent.js';
import { DEPLOY, HOST_WEB, makeDeployEnv, runOp, servedVersion, type DeployEnv } from '../helpers/deploy-env.js';
import { shareOfMatrix } from '../helpers/compose.js';
import { containerState } from '../helpers/observe.js';

const hostWeb = HOST_WEB;
type Env = DeployEnv;

const envs: Env[] = [];
after(async () => {
  for (const e of envs.reverse()) await e.cleanup().catch(() => undefined);
});

async function makeEnv(name: string, compose = hostWeb, deploy: object = DEPLOY, files: Record<string, string> = {}, extraEnv = ''): Promise<Env> {
  const e = await makeDeployEnv(name, { compose, deploy, files, extraEnv });
  envs.push(e);
  return e;
}

const deploy = runOp;
const version = servedVersion;

const webImage = async (e: Env) => (await e.stack.docker('inspect', '-f', '{{.Image}}', await e.stack.containerId('web'))).trim();

// A tag of its own for the test that moves a tag under the stack: the other
// tests deploy v2 at the same time.
const MOVABLE = 'deckhand-test/web:v2-movable';

// Each test has its own stack, agent and port, and most of a deploy is
// waiting on containers: three at a time keep a 2-core machine busy without
// starving the gates (their timeouts are 20 s, a deploy's steps take ~5 s).
describe('deploys', { timeout: 600_000, concurrency: 3 }, () => {
  before(() => {
    for (const v of ['2', '3']) execFileSync('bash', ['scripts/test-env.sh', 'web-image', v, `v${v}`], { stdio: 'ignore' });
    execFileSync('docker', ['tag', 'deckhand-test/web:v2', MOVABLE]);
  });

  it('a good deploy, a bad one rolled back by image ID, a moved tag, then rollback to a chosen deploy', async () => {
    const e = await makeEnv('deploy');
    const envFile = join(e.stack.dir, '.env');

    // Good: v2.
    const v1Image = await webImage(e);
    const good = await deploy(e, 'deploy.start', { env: { WEB_TAG: 'v2-movable' } });
    assert.equal(good.ok, true, JSON.stringify(good.deploy));
    assert.equal(good.deploy.result, 'succeeded');
    assert.equal(await version(e.port), '2');
    assert.match(readFileSync(envFile, 'utf8'), /^WEB_TAG=v2-movable$/m);
    assert.deepEqual(good.deploy.envKeys, ['WEB_TAG']);
    assert.deepEqual(good.events.filter((x) => x.type === 'step' && x.status === 'ok').map((x) => x.step), ['record', 'env', 'validate', 'images', 'disk', 'up', 'health', 'watch']);
    const v2Image = await webImage(e);
    // The record names the images the engine ran before and runs now.
    assert.deepEqual([good.deploy.images.before.web, good.deploy.images.after.web], [v1Image, v2Image]);
    assert.notEqual(v2Image, v1Image);

    // Bad: v3 that never turns healthy. Rolled back to v2, .env byte for byte.
    const envBefore = readFileSync(envFile, 'utf8');
    const bad = await deploy(e, 'deploy.start', { env: { WEB_TAG: 'v3', WEB_HEALTHY: '0' } });
    assert.equal(bad.ok, false);
    assert.equal(bad.deploy.result, 'rolled_back');
    assert.match(bad.deploy.error, /^health: /);
    assert.equal(await version(e.port), '2');
    assert.equal(readFileSync(envFile, 'utf8'), envBefore);
    assert.equal(await webImage(e), v2Image);
    assert.ok(bad.events.some((x) => x.type === 'waiting'), 'the gate says what it waits for');

    // The tag the stack runs moves to a broken image under us: rollback goes by image ID.
    execFileSync('docker', ['build', '-q', '-t', 'deckhand-test/web:broken', '-'], { input: `FROM ${MOVABLE}\nHEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD false\n`, env: { ...process.env, DOCKER_BUILDKIT: '0' } });
    execFileSync('docker', ['tag', 'deckhand-test/web:broken', MOVABLE]);
    const moved = await deploy(e, 'deploy.start', {});
    assert.equal(moved.deploy.result, 'rolled_back', JSON.stringify(moved.deploy));
    assert.equal(await webImage(e), v2Image, 'the old image, by ID, runs again');
    const tagNow = execFileSync('docker', ['image', 'inspect', '-f', '{{.Id}}', MOVABLE], { encoding: 'utf8' }).trim();
    assert.equal(tagNow, v2Image, 'and its tag points at it again');

    // Another good one (v3, healthy), then back to the first good deploy by id.
    const v3 = await deploy(e, 'deploy.start', { env: { WEB_TAG: 'v3' } });
    assert.equal(v3.deploy.result, 'succeeded');
    assert.equal(await version(e.port), '3');
    const back = await deploy(e, 'deploy.rollback', { id: good.deploy.id });
    assert.equal(back.ok, true, JSON.stringify(back.deploy));
    assert.equal(back.deploy.kind, 'rollback');
    assert.equal(back.deploy.targetId, good.deploy.id);
    assert.equal(await version(e.port), '2');
    assert.match(readFileSync(envFile, 'utf8'), /^WEB_TAG=v2-movable$/m);
    // Without an id: the good deploy before the one running, which is the first good one again: none.
    const none = await e.c.call('deploy.rollback', {});
    assert.equal(none.error?.code, -32001, JSON.stringify(none));
    assert.match(none.error.message, new RegExp(`^no earlier good deploy before deploy ${good.deploy.id} \\(which is running\\)`));
    // To the deploy that runs: nothing is started, and the end says which runs.
    const same = await deploy(e, 'deploy.rollback', { id: good.deploy.id });
    assert.deepEqual(same.events.at(-1), { type: 'end', ok: true, unchanged: true, running: good.deploy.id });
    // Forward again by id; the record says what changed.
    const prev = await deploy(e, 'deploy.rollback', { id: v3.deploy.id });
    assert.equal(prev.deploy.targetId, v3.deploy.id);
    assert.deepEqual([prev.deploy.envKeys, prev.deploy.images.before.web, prev.deploy.images.after.web], [['WEB_TAG'], v2Image, v3.deploy.images.after.web]);
    assert.equal(await version(e.port), '3');
    assert.equal((await e.c.call('deploy.rollback', { id: bad.deploy.id })).error.code, -32004);
    assert.equal((await e.c.call('deploy.rollback', { id: 9999 })).error.code, -32001);

    const list = (await e.c.call('deploy.list', {})).result.deploys;
    assert.deepEqual(list.map((d: any) => d.result), ['succeeded', 'succeeded', 'succeeded', 'rolled_back', 'rolled_back', 'succeeded']);
    assert.ok(list.every((d: any) => d.actor.startsWith('ops') && d.durationMs > 0));
    // Each deploy and rollback ended with one event saying how, naming its record.
    const outcomes = (await e.c.call('events.list', { limit: 200 })).result.events.filter((x: any) => /^deploy\.(succeeded|rolled_back|failed)$/.test(x.type));
    assert.deepEqual(
      outcomes.map((x: any) => `${x.data.id} ${x.type}`).sort(),
      list.map((d: any) => `${d.id} deploy.${d.result}`).sort(),
    );
  });

  it('a deploy that passes the gate but crashes within the watch window is rolled back', async () => {
    const e = await makeEnv('watch', hostWeb, { healthTimeout: '20s', stableFor: '1s', watch: '12s' });
    const r = await deploy(e, 'deploy.start', { env: { WEB_TAG: 'v2', EXIT_AFTER: '6' } });
    assert.equal(r.deploy.result, 'rolled_back', JSON.stringify(r.deploy.steps));
    assert.match(r.deploy.error, /^watch: web: container (exited|replaced|restarted)/);
    assert.equal(await version(e.port), '1');
  });

  it('--service limits the deploy: the other services are not touched', async () => {
    const two = `${hostWeb}  other:
    image: "deckhand-test/web:\${WEB_TAG:-latest}"
    network_mode: host
    init: true
    labels: { deckhand.test: "1" }
    environment:
      PORT: "\${OTHER_PORT}"
`;
    const otherPort = await freePort();
    const e = await makeEnv('scope', two, DEPLOY, {}, `OTHER_PORT=${otherPort}\n`);
    await waitFor(async () => (await e.a.agent.get('/health')).json().checks['service:other']?.[0]?.status === 'pass', 30_000, () => 'other healthy');
    const otherBefore = await e.stack.containerId('other');
    const otherStarted = (await containerState(otherBefore)).startedAt;
    const r = await deploy(e, 'deploy.start', { env: { WEB_TAG: 'v2' }, services: ['web'] });
    assert.equal(r.deploy.result, 'succeeded', JSON.stringify(r.deploy));
    assert.deepEqual(r.deploy.services, ['web']);
    assert.equal(await version(e.port), '2');
    assert.equal(await e.stack.containerId('other'), otherBefore, 'other not recreated');
    assert.equal((await containerState(otherBefore)).startedAt, otherStarted, 'nor restarted');
    assert.equal(await version(otherPort), '1');
  });

  it('two deploys at once: the second is refused with -32002', async () => {
    const e = await makeEnv('twice');
    const first = await e.c.call('deploy.start', { env: { WEB_TAG: 'v2' } });
    const second = await e.c.call('deploy.start', { env: { WEB_TAG: 'v3' } });
    assert.equal(second.error.code, -32002);
    const id = first.result.stream;
    await waitFor(() => e.c.notifications.some((n) => n.stream === id && n.event.type === 'end'), 60_000);
    assert.equal(await version(e.port), '2');
  });

  it('a failing migration: the old version is never stopped', async () => {
    const bridge = `version: "2.4"
services:
  web:
    image: "deckhand-test/web:\${WEB_TAG:-latest}"
    init: true
    labels: { deckhand.test: "1" }
    ports: ["127.0.0.1:\${WEB_PORT}:8080"]
    environment: { PORT: "8080", BIND_ADDR: 0.0.0.0 }
`;
    const e = await makeEnv('migrate', bridge, { ...DEPLOY, migrate: { service: 'web', command: ['sh', '-c', 'echo migrating; exit 3'] } });
    const id = await e.stack.containerId('web');
    const started = (await e.stack.docker('inspect', '-f', '{{.State.StartedAt}}', id)).trim();
    const r = await deploy(e, 'deploy.start', { env: { WEB_TAG: 'v2' } });
    assert.equal(r.deploy.result, 'failed');
    assert.match(r.deploy.error, /^migrate: .*exited with 3/);
    assert.equal(await e.stack.containerId('web'), id);
    assert.equal((await e.stack.docker('inspect', '-f', '{{.State.StartedAt}}', id)).trim(), started, 'not restarted');
    assert.doesNotMatch(readFileSync(join(e.stack.dir, '.env'), 'utf8'), /WEB_TAG/, '.env put back');
    assert.equal(await version(e.port), '1');
  });

  it('a build error fails the deploy before anything running is touched', async () => {
    const built = `version: "2.4"
services:
  web:
    build: ./app
    network_mode: host
    init: true
    labels: { deckhand.test: "1" }
    environment: { PORT: "\${WEB_PORT}" }
`;
    const e = await makeEnv('build', built, DEPLOY, { 'app/Dockerfile': 'FROM deckhand-test/web:latest\nRUN true\n' });
    const id = await e.stack.containerId('web');
    const started = (await containerState(id)).startedAt;
    writeFileSync(join(e.stack.dir, 'app/Dockerfile'), 'FROM deckhand-test/web:latest\nRUN echo broken build && false\n');
    const r = await deploy(e, 'deploy.start', {});
    assert.equal(r.deploy.result, 'failed');
    assert.match(r.deploy.error, /^images: /);
    assert.equal(await e.stack.containerId('web'), id);
    assert.equal((await containerState(id)).startedAt, started, 'not restarted');
  });

  it('--ref checks out a commit; a bad ref fails before anything is touched', async () => {
    const e = await makeEnv('ref');
    const git = (...args: string[]) => execFileSync('git', ['-C', e.stack.dir, '-c', 'user.email=t@example.com', '-c', 'user.name=t', ...args], { encoding: 'utf8' }).trim();
    git('init', '-q', '--shared=group'); // shared with the agent's group, as an installer would
    writeFileSync(join(e.stack.dir, '.gitignore'), '.env\n');
    git('add', 'compose.yaml', '.gitignore');
    git('commit', '-qm', 'v1');
    const v1 = git('rev-parse', 'HEAD');
    writeFileSync(join(e.stack.dir, 'compose.yaml'), hostWeb.replace('${WEB_TAG:-latest}', 'v2'));
    git('commit', '-qam', 'v2');
    git('tag', 'release-2');
    git('checkout', '-q', v1);
    const r = await deploy(e, 'deploy.start', { ref: 'release-2' });
    assert.equal(r.deploy.result, 'succeeded', JSON.stringify(r.deploy));
    assert.equal(r.deploy.ref.before, v1);
    assert.equal(git('rev-parse', 'HEAD'), r.deploy.ref.after);
    assert.equal(await version(e.port), '2');
    const bad = await deploy(e, 'deploy.start', { ref: 'no-such-branch' });
    assert.equal(bad.deploy.result, 'failed');
    assert.match(bad.deploy.error, /^checkout: no commit for ref "no-such-branch"/);
    assert.equal(git('rev-parse', 'HEAD'), r.deploy.ref.after);
    assert.equal((await e.c.call('deploy.start', { ref: '--upload-pack=evil' })).error.code, -32602);
    assert.equal((await e.c.call('deploy.start', { env: { 'BAD KEY': 'x' } })).error.code, -32602);
    assert.equal((await e.c.call('deploy.start', { services: ['ghost'] })).error.code, -32001);
  });

  // Each step under one compose version of the matrix (shareOfMatrix): every step once, both versions.
  for (const step of shareOfMatrix(['record', 'env', 'validate', 'images', 'disk', 'up', 'health', 'watch'])) {
    it(`the agent killed at step "${step}": on restart the deploy is interrupted and the old state restored`, async () => {
      const e = await makeEnv(`kill-${step}`);
      const envBefore = readFileSync(join(e.stack.dir, '.env'), 'utf8');
      await e.restartAgent({ env: { DECKHAND_FAILPOINT_KILL_AT_STEP: step } });
      void e.c.call('deploy.start', { env: { WEB_TAG: 'v3' } });
      const exit = await e.a.agent.exited;
      assert.equal(exit.signal, 'SIGKILL');
      await e.restartAgent();
      // Killed while only recording, nothing had changed: marked interrupted, nothing to restore.
      const expected = step === 'record' ? 1 : 2;
      await waitFor(async () => {
        const list = (await e.c.call('deploy.list', {})).result.deploys;
        return list.length === expected && list.every((d: any) => d.result !== 'running');
      }, 60_000, () => 'recovery finished');
      const list = (await e.c.call('deploy.list', {})).result.deploys;
      const interrupted = list.at(-1);
      assert.equal(interrupted.result, 'interrupted');
      assert.match(interrupted.error, new RegExp(`during step ${step}`));
      if (step !== 'record') {
        const recovery = list[0];
        assert.equal(recovery.kind, 'recovery');
        assert.equal(recovery.result, 'succeeded', JSON.stringify(recovery));
        assert.equal(recovery.targetId, interrupted.id);
      }
      assert.equal(readFileSync(join(e.stack.dir, '.env'), 'utf8'), envBefore);
      assert.equal(await version(e.port), '1');
    });
  }
});
