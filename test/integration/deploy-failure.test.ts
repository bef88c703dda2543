// The operator is told the truth, through the built CLI against a real agent
// and compose stack. A deploy whose web service crashes or turns unhealthy
// is rolled back, and says why under the failed step: the exit code or
// health, what the healthcheck said, the container's last log lines with
// .env values masked; `deckhand deploys ID` and --json show the same later,
// after the failed container is gone. `rollback` goes to the good deploy
// before the one running, and one to the deploy already running changes
// nothing and says so (exit 0).
//
// The images are tagged under names of this test's own, so other tests that
// re-tag deckhand-test/web:* cannot change them under us.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, removeDir, ROOT, tempDir, waitFor } from '../helpers/agent.js';
import { startApiAgent, type ApiAgent } from '../helpers/api.js';
import { requireDocker, TestStack, WEB_IMAGE } from '../helpers/stack.js';
import { run as runProgram } from '../helpers/run.js';

const BUILT_CLI = join(ROOT, 'dist/deckhand.js');
const REPO = `dhtest-deployfail-${process.pid}/web`;
const TOKEN_BEFORE = 'tok-s3cret-4711';
const TOKEN_AFTER = 'tok-0ther-0815';

const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8', timeout: 60_000 }).trim();
const short = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

// The service prints its token (as services do, to our regret) and, with CRASH=1, exits 3.
const COMPOSE = `version: "2.4"
services:
  web:
    image: "${REPO}:\${WEB_TAG:-latest}"
    network_mode: host
    init: true
    labels: { deckhand.test: "1" }
    command:
      - sh
      - -c
      - 'echo "web starting, token $$API_TOKEN"; if [ "$$CRASH" = 1 ]; then echo "fatal: cannot reach the database as $$API_TOKEN" >&2; exit 3; fi; exec /entrypoint.sh'
    environment:
      PORT: "\${WEB_PORT}"
      WEB_HEALTHY: "\${WEB_HEALTHY:-1}"
      API_TOKEN: "\${API_TOKEN}"
      CRASH: "\${CRASH:-0}"
`;

/**
 * The lines under the failed health step, the two log lines sorted: the
 * engine reads stdout and stderr apart, so lines written a moment apart on
 * each may come in either order.
 */
function underFailedStep(out: string): string[] {
  const lines = out.split('\n');
  const at = lines.findIndex((l) => /^\[ *\d+\.\ds\] health failed: /.test(l));
  const block = lines.slice(at, at + 5);
  return [(block[0] ?? '').replace(/^\[ *\d+\.\ds\]/, '[time]'), ...block.slice(1, 3), ...block.slice(3).sort()];
}

const FAILURE_LINES = [
  '[time] health failed: web: container exited',
  '         web: exited with code 3',
  '           last 2 log lines:',
  '             | fatal: cannot reach the database as ***',
  '             | web starting, token ***',
];

interface Run {
  code: number | null;
  out: string;
  err: string;
}

describe('a failed deploy says why; rollback means what it says', { timeout: 300_000 }, () => {
  let a: ApiAgent;
  let stack: TestStack;
  let port: number;
  let work: string;
  let cli: string;
  let operate: string;
  let v1: string;
  let v2: string;

  const run = (...args: string[]): Promise<Run> => {
    const env = { PATH: process.env.PATH, HOME: work, XDG_CONFIG_HOME: work, DECKHAND_URL: a.url, DECKHAND_TOKEN: operate, DECKHAND_FINGERPRINT: a.tls.fingerprint };
    return runProgram(process.execPath, [cli, ...args], { cwd: work, env, timeoutMs: 120_000 });
  };
  const version = async () => (await (await fetch(`http://127.0.0.1:${port}/version`, { signal: AbortSignal.timeout(3000) })).text()).trim();
  const webHealthy = async () => (await a.agent.get('/health')).json().checks['service:web']?.[0]?.status === 'pass';
  const idOf = (r: Run, kind = 'deploy') => Number(new RegExp(`^${kind} +(\\d+) `, 'm').exec(r.out)?.[1]);
  const record = async (id: number) => JSON.parse((await run('deploys', String(id), '--json')).out).deploy;
  const count = async () => (JSON.parse((await run('deploys', '--json')).out).deploys as unknown[]).length;

  before(async () => {
    if (!existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run npm run build`);
    requireDocker();
    execFileSync('bash', [join(ROOT, 'scripts/test-env.sh'), 'web-image', '2', 'v2'], { stdio: 'ignore' });
    const healthcheck = (ref: string) => docker('image', 'inspect', '-f', '{{json .Config.Healthcheck}}', ref);
    await waitFor(() => healthcheck('deckhand-test/web:v2') === healthcheck(WEB_IMAGE), 60_000, () => 'deckhand-test/web:v2 as built by test-env.sh');
    docker('tag', WEB_IMAGE, `${REPO}:latest`);
    docker('tag', 'deckhand-test/web:v2', `${REPO}:v2`);
    v1 = docker('image', 'inspect', '-f', '{{.Id}}', `${REPO}:latest`);
    v2 = docker('image', 'inspect', '-f', '{{.Id}}', `${REPO}:v2`);

    work = tempDir('deploy-failure');
    cli = join(work, 'deckhand.js');
    copyFileSync(BUILT_CLI, cli);
    stack = TestStack.unique('deployfail', {});
    port = await freePort();
    writeFileSync(join(stack.dir, 'compose.yaml'), COMPOSE);
    writeFileSync(join(stack.dir, '.env'), `WEB_PORT=${port}\nAPI_TOKEN=${TOKEN_BEFORE}\n`);
    await stack.up();
    a = await startApiAgent({ config: { stack: { project: stack.project, dir: stack.dir, deploy: { healthTimeout: '30s', stableFor: '1s', watch: '2s' } } } });
    operate = a.token('ci-deploy', 'operate');
    await waitFor(webHealthy, 30_000, () => 'web healthy before the first deploy');
  });

  after(async () => {
    await a?.agent.stop();
    await stack?.down();
    if (a) removeDir(a.agent.dir);
    if (stack) removeDir(stack.dir);
    if (work) removeDir(work);
    const keep = spawnSync('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}', `deckhand-keep/${stack?.project}-web`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    spawnSync('docker', ['image', 'rm', '--no-prune', `${REPO}:latest`, `${REPO}:v2`, ...keep], { stdio: 'ignore' });
  });

  let first: number;
  let second: number;

  it('two good deploys: a new token, then v2', async () => {
    const token = await run('deploy', '--set', `API_TOKEN=${TOKEN_AFTER}`);
    assert.equal(token.code, 0, `${token.out}\n${token.err}`);
    first = idOf(token);
    const tag = await run('deploy', '--set', 'WEB_TAG=v2');
    assert.equal(tag.code, 0, `${tag.out}\n${tag.err}`);
    second = idOf(tag);
    assert.equal(await version(), '2');
  });

  let crashed: number;

  it('a crash: the exit code and the last log lines, masked, under the failed step; exit 1', async () => {
    const r = await run('deploy', '--set', 'CRASH=1');
    crashed = idOf(r);
    assert.equal(r.code, 1, `${r.out}\n${r.err}`);
    assert.deepEqual(underFailedStep(r.out), FAILURE_LINES, r.out);
    assert.match(r.out, /^\[ *\d+\.\ds\] rollback ok: previous version healthy$/m);
    assert.match(r.out, /\n\nresult {2}rolled back: health: web: container exited\n/);
    assert.doesNotMatch(r.out, /tok-/, 'no .env value shows');
    assert.equal(await version(), '2');
  });

  it('deckhand deploys ID shows them again after the container is gone; --json carries them', async () => {
    const r = await run('deploys', String(crashed));
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^result {2}rolled back: health: web: container exited\n/);
    assert.match(r.out, /^env {5}CRASH$/m);
    assert.match(r.out, /^steps\n/m);
    assert.deepEqual(underFailedStep(r.out), FAILURE_LINES, r.out);
    assert.doesNotMatch(r.out, /rolled_back|tok-/);
    const d = await record(crashed);
    assert.equal(d.result, 'rolled_back', '--json keeps the enum value');
    assert.equal(d.failures.length, 1);
    assert.deepEqual([d.failures[0].service, d.failures[0].exitCode, [...d.failures[0].logs].sort()], ['web', 3, ['fatal: cannot reach the database as ***', 'web starting, token ***']]);
    const missing = await run('deploys', '9999');
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no deploy 9999 on /);
  });

  it('an unhealthy service: its health and what the healthcheck said, in --json and under the step on stderr', async () => {
    const r = await run('deploy', '--set', 'WEB_HEALTHY=0', '--json');
    assert.equal(r.code, 1, `${r.out}\n${r.err}`);
    const doc = JSON.parse(r.out);
    assert.equal(doc.ok, false);
    assert.equal(doc.deploy.result, 'rolled_back');
    const [f] = doc.deploy.failures;
    assert.equal(f.service, 'web');
    assert.equal(f.health, 'unhealthy');
    assert.equal(f.exitCode, undefined);
    assert.match(f.healthOutput, /404/);
    assert.deepEqual(f.logs, ['web starting, token ***']);
    assert.match(r.err, /^\[ *\d+\.\ds\] health failed: web: healthcheck failing\n {9}web: unhealthy\n {11}healthcheck said: .*404/m);
    assert.equal(await version(), '2');
  });

  it('rollback after the automatic ones: to the good deploy before the running one, saying what changed', async () => {
    const n = await count();
    const r = await run('rollback');
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(r.out, new RegExp(`^rollback {2}\\d+ to deploy ${first} by ci-deploy, `, 'm'));
    assert.match(r.out, /^env +WEB_TAG$/m);
    assert.match(r.out, new RegExp(`^images +web  ${short(v2)} → ${short(v1)}$`, 'm'));
    assert.equal(await version(), '1');
    const d = await record(idOf(r, 'rollback'));
    assert.deepEqual([d.kind, d.result, d.targetId, d.envKeys, d.images.before.web, d.images.after.web], ['rollback', 'succeeded', first, ['WEB_TAG'], v2, v1]);
    assert.equal(await count(), n + 1);
  });

  it('rollback to the deploy that runs: "nothing to roll back", exit 0, no record; with nothing earlier, it says so', async () => {
    const n = await count();
    const same = await run('rollback', String(first));
    assert.equal(same.code, 0, `${same.out}\n${same.err}`);
    assert.equal(same.out, `nothing to roll back: deploy ${first} is running\n`);
    const json = await run('rollback', String(first), '--json');
    assert.equal(json.code, 0, json.err);
    assert.deepEqual(JSON.parse(json.out), { ok: true, unchanged: true, running: first });
    const again = await run('rollback');
    assert.equal(again.code, 1, `${again.out}\n${again.err}`);
    assert.match(again.err, new RegExp(`no earlier good deploy before deploy ${first} \\(which is running\\)`));
    const bad = await run('rollback', String(crashed));
    assert.equal(bad.code, 1);
    assert.match(bad.err, new RegExp(`deploy ${crashed} did not succeed \\(rolled back\\)`));
    assert.equal(await count(), n, 'nothing was started');
    assert.equal(await version(), '1');
    void second;
  });
});
