// The built CLI (dist/deckhand.js, copied alone into an empty directory) as a
// process against the real agent and a real compose stack: deploy to a new
// image version, a deploy that fails its health gate and is rolled back
// (exit 1), the deploys list, rollback, a second deploy refused while one
// runs, Ctrl-C that leaves the deploy running on the server (exit 130),
// restart / stop / start, and a read token refused (exit 3).
//
// The stack's image is tagged under a registry on a closed loopback port, so
// the `compose pull` of each deploy fails at once on 127.0.0.1 (and is
// ignored) instead of asking a public registry; the tags are this test's own,
// so other tests that re-tag deckhand-test/web:* cannot change them under us.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, removeDir, ROOT, tempDir, waitFor } from '../helpers/agent.js';
import { startApiAgent, type ApiAgent } from '../helpers/api.js';
import { containerState, waitForObservations } from '../helpers/observe.js';
import { requireDocker, TestStack, WEB_IMAGE } from '../helpers/stack.js';
import { run as runProgram } from '../helpers/run.js';

const BUILT_CLI = join(ROOT, 'dist/deckhand.js');
const REPO = `127.0.0.1:1/dhtest-cli-deploy-${process.pid}/web`;

interface Run {
  code: number | null;
  out: string;
  err: string;
}

const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8', timeout: 60_000 }).trim();
const imageId = (ref: string) => docker('image', 'inspect', '-f', '{{.Id}}', ref);
const short = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

describe('deckhand deploy, rollback, deploys, restart/stop/start against a real agent', { timeout: 600_000 }, () => {
  let a: ApiAgent;
  let stack: TestStack;
  let port: number;
  let work: string;
  let cli: string;
  let operate: string;
  let reader: string;
  let v1: string;
  let v2: string;

  const env = (token: string): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    HOME: work,
    XDG_CONFIG_HOME: work,
    DECKHAND_URL: a.url,
    DECKHAND_TOKEN: token,
    DECKHAND_FINGERPRINT: a.tls.fingerprint,
  });
  const run = (args: string[], token = operate): Promise<Run> => runProgram(process.execPath, [cli, ...args], { cwd: work, env: env(token), timeoutMs: 150_000 });
  const version = async () => (await (await fetch(`http://127.0.0.1:${port}/version`, { signal: AbortSignal.timeout(3000) })).text()).trim();
  const webHealthy = async () => (await a.agent.get('/health')).json().checks['service:web']?.[0]?.status === 'pass';
  const psWeb = async () => (JSON.parse((await run(['ps', '--json'], reader)).out).services as { service: string; state: string; health: string }[]).find((s) => s.service === 'web');

  before(async () => {
    if (!existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run npm run build`);
    requireDocker();
    execFileSync('bash', [join(ROOT, 'scripts/test-env.sh'), 'web-image', '2', 'v2'], { stdio: 'ignore' });
    // deckhand-test/web:v2 as built: another test may briefly move that tag to a broken image (a different healthcheck).
    const healthcheck = (ref: string) => docker('image', 'inspect', '-f', '{{json .Config.Healthcheck}}', ref);
    await waitFor(() => healthcheck('deckhand-test/web:v2') === healthcheck(WEB_IMAGE), 60_000, () => 'deckhand-test/web:v2 as built by test-env.sh');
    docker('tag', WEB_IMAGE, `${REPO}:latest`);
    docker('tag', 'deckhand-test/web:v2', `${REPO}:v2`);
    v1 = imageId(`${REPO}:latest`);
    v2 = imageId(`${REPO}:v2`);
    assert.notEqual(v1, v2);

    work = tempDir('cli-deploy');
    cli = join(work, 'deckhand.js');
    copyFileSync(BUILT_CLI, cli);

    stack = TestStack.unique('clideploy', {});
    port = await freePort();
    writeFileSync(
      join(stack.dir, 'compose.yaml'),
      `version: "2.4"
services:
  web:
    image: "${REPO}:\${WEB_TAG:-latest}"
    network_mode: host
    init: true
    labels: { deckhand.test: "1" }
    environment:
      PORT: "\${WEB_PORT}"
      WEB_HEALTHY: "\${WEB_HEALTHY:-1}"
`,
    );
    writeFileSync(join(stack.dir, '.env'), `WEB_PORT=${port}\n`);
    await stack.up();
    a = await startApiAgent({
      config: { host: { name: 'deploy-host' }, stack: { project: stack.project, dir: stack.dir, deploy: { healthTimeout: '30s', stableFor: '1s', watch: '2s' } } },
    });
    operate = a.token('ci-deploy', 'operate');
    reader = a.token('dashboard', 'read');
    await waitFor(webHealthy, 30_000, () => 'web healthy before the first deploy');
  });

  after(async () => {
    await a?.agent.stop();
    await stack?.down();
    if (a) removeDir(a.agent.dir);
    if (stack) removeDir(stack.dir);
    if (work) removeDir(work);
    // Our tags, and the ones the agent keeps for rollbacks of this project.
    const keep = spawnSync('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}', `deckhand-keep/${stack?.project}-web`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    spawnSync('docker', ['image', 'rm', '--no-prune', `${REPO}:latest`, `${REPO}:v2`, ...keep], { stdio: 'ignore' });
  });

  let goodId: number;
  let badId: number;

  it('deploy --set WEB_TAG=v2: plain step lines, a summary with the images before → after, exit 0; the new version serves', async () => {
    assert.equal(await version(), '1');
    const r = await run(['deploy', '--set', 'WEB_TAG=v2']);
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    const [steps, summary] = r.out.split('\n\n');
    goodId = Number(/^deploy {2}(\d+) /m.exec(summary ?? '')?.[1]);
    assert.deepEqual(
      steps!.split('\n').filter((l) => l.startsWith('[')).map((l) => /^\[ *\d+\.\ds\] (\S+) (ok|failed|skipped)\b/.exec(l)?.slice(1).join(' ')),
      ['record ok', 'env ok', 'validate ok', 'images ok', 'disk ok', 'up ok', 'health ok', 'watch ok'],
    );
    assert.match(steps!, /^\[ *\d+\.\ds\] env ok: set WEB_TAG$/m);
    assert.match(summary!, /^result {2}succeeded\ndeploy {2}(\d+) by ci-deploy, \d+\.\ds\nenv {5}WEB_TAG\nimages {2}web {2}(\w{12}) → (\w{12})\n$/);
    assert.ok(summary!.includes(`web  ${short(v1)} → ${short(v2)}`), summary);
    assert.equal(r.err, '');
    assert.equal(await version(), '2');
  });

  it('deploy --set WEB_HEALTHY=0: the gate fails, rolled back, exit 1; the old version still serves', async () => {
    const r = await run(['deploy', '--set', 'WEB_HEALTHY=0']);
    assert.equal(r.code, 1, `${r.out}\n${r.err}`);
    assert.match(r.out, /^\[ *\d+\.\ds\] health failed: .*web: healthcheck.*\n {9}web: unhealthy\n {11}healthcheck said: /m);
    assert.match(r.out, /^\[ *\d+\.\ds\] rollback ok: previous version healthy$/m);
    assert.match(r.out, /\n\nresult {2}rolled back: health: .*web: healthcheck/);
    badId = Number(/^deploy {2}(\d+) by ci-deploy/m.exec(r.out)![1]);
    assert.ok(r.out.includes(`images  web  ${short(v2)} (unchanged)`), r.out);
    assert.equal(await version(), '2');
    assert.doesNotMatch(readFileSync(join(stack.dir, '.env'), 'utf8'), /WEB_HEALTHY/);
  });

  it('deploys --json lists both with their results; the table says the same; a read token may list', async () => {
    const json = await run(['deploys', '--json'], reader);
    assert.equal(json.code, 0, json.err);
    const deploys = JSON.parse(json.out).deploys as { id: number; result: string; envKeys: string[]; actor: string; kind: string }[];
    assert.deepEqual(
      deploys.map((d) => [d.id, d.kind, d.result, d.envKeys, d.actor]),
      [
        [badId, 'deploy', 'rolled_back', ['WEB_HEALTHY'], 'ci-deploy'],
        [goodId, 'deploy', 'succeeded', ['WEB_TAG'], 'ci-deploy'],
      ],
    );
    const table = await run(['deploys']);
    assert.equal(table.code, 0);
    const lines = table.out.trimEnd().split('\n');
    assert.match(lines[0]!, /^ID +WHEN +WHO +KIND +RESULT +CHANGE +DURATION$/);
    assert.match(lines[1]!, new RegExp(`^ *${badId} +(just now|\\d+ s ago) +ci-deploy +deploy +rolled back +env WEB_HEALTHY +\\d+\\.\\ds$`));
    assert.match(lines[2]!, new RegExp(`^ *${goodId} +(just now|\\d+ s ago) +ci-deploy +deploy +succeeded +env WEB_TAG +\\d+\\.\\ds$`));
    assert.equal((await run(['deploys', '--limit', '1', '--json'])).out.includes(`"id": ${goodId}`), false, '--limit');
  });

  it('rollback after the automatic one: nothing earlier than the running deploy, exit 1; to the running one: "nothing to roll back", exit 0', async () => {
    const r = await run(['rollback']);
    assert.equal(r.code, 1, `${r.out}\n${r.err}`);
    assert.match(r.err, new RegExp(`no earlier good deploy before deploy ${goodId} \\(which is running\\)`));
    const same = await run(['rollback', String(goodId), '--json']);
    assert.equal(same.code, 0, `${same.out}\n${same.err}`);
    assert.deepEqual(JSON.parse(same.out), { ok: true, unchanged: true, running: goodId });
    const human = await run(['rollback', String(goodId)]);
    assert.equal(human.code, 0, human.err);
    assert.equal(human.out, `nothing to roll back: deploy ${goodId} is running\n`);
    assert.equal(await version(), '2');
    const bad = await run(['rollback', String(badId)]);
    assert.equal(bad.code, 1, 'a deploy that did not succeed is no target');
    assert.match(bad.err, new RegExp(`deploy ${badId} did not succeed \\(rolled back\\)`));
    assert.equal((await run(['rollback', 'latest'])).code, 2);
  });

  it('a second deploy while one runs: exit 1 "already running"; Ctrl-C stops watching (exit 130) and the deploy carries on', async () => {
    const child = spawn(process.execPath, [cli, 'deploy', '--set', 'WEB_TAG=latest'], { cwd: work, env: env(operate), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    await waitFor(() => /\] record ok/.test(out), 30_000, () => `the first step, got: ${out} ${err}`);

    const second = await run(['deploy', '--set', 'WEB_TAG=v2']);
    assert.equal(second.code, 1);
    assert.match(second.err, /cannot start a deploy on 127\.0\.0\.1:\d+: a deploy or rollback is already running/);

    const t0 = Date.now();
    child.kill('SIGINT');
    assert.equal(await exited, 130, `${out}\n${err}`);
    assert.ok(Date.now() - t0 < 3_000, 'Ctrl-C ends promptly');
    assert.match(err, /stopped watching: the deploy continues on 127\.0\.0\.1:\d+; see how it ends with `deckhand deploys`/);
    assert.doesNotMatch(out, /^result/m, 'no summary: it did not end while we watched');

    // The deploy was not cancelled: it finishes on its own.
    let latest: { kind: string; result: string; envKeys: string[] } | undefined;
    await waitFor(
      async () => {
        latest = JSON.parse((await run(['deploys', '--limit', '1', '--json'])).out).deploys[0];
        return latest?.result !== 'running';
      },
      90_000,
      () => `the deploy to finish: ${JSON.stringify(latest)}`,
    );
    assert.deepEqual([latest!.kind, latest!.result, latest!.envKeys], ['deploy', 'succeeded', ['WEB_TAG']]);
    assert.equal(await version(), '1');
  });

  it('restart, stop (stays down), start web', async () => {
    await waitFor(webHealthy, 30_000, () => 'web healthy');
    const id = await stack.containerId('web');
    const before = await containerState(id);
    const restart = await run(['restart', 'web']);
    assert.equal(restart.code, 0, restart.err);
    assert.match(restart.out, /^restarted web on 127\.0\.0\.1:\d+\n$/);
    const restarted = await containerState(id);
    assert.ok(restarted.running && Date.parse(restarted.startedAt) > Date.parse(before.startedAt), `restarted: started ${restarted.startedAt}, before ${before.startedAt}`);

    const stop = await run(['stop', 'web']);
    assert.equal(stop.code, 0, stop.err);
    assert.match(stop.out, /^stopped web on 127\.0\.0\.1:\d+; it stays down until `deckhand start web`\n$/);
    const stopped = await containerState(id);
    assert.equal(stopped.running, false, 'stopped when the command returns');
    // The stop's own engine events make the agent look at once and again 150 and 600 ms later;
    // three observations begun after now reach past those to its 5 s timer, past anything a
    // review of the dead container could have set going (the first restart is immediate).
    await waitForObservations(a.agent, 3);
    assert.notEqual((await psWeb())?.state, 'running', 'the agent does not bring it back');
    assert.deepEqual(await containerState(id).then((x) => [x.running, x.startedAt]), [false, stopped.startedAt], 'the container was not started again');

    const start = await run(['start', 'web', '--json']);
    assert.equal(start.code, 0, start.err);
    assert.deepEqual(JSON.parse(start.out), { ok: true });
    await waitFor(async () => (await psWeb())?.state === 'running', 20_000, () => 'web running again');
    await waitFor(async () => (await version().catch(() => '')) === '1', 20_000, () => 'web serving');
    assert.ok(Date.parse((await containerState(await stack.containerId('web'))).startedAt) > Date.parse(stopped.startedAt), 'started by `deckhand start`');

    const unknown = await run(['restart', 'nope']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /no service "nope"/);
  });

  it('a read token: deploy, rollback, restart are exit 3 naming the scope', async () => {
    const r = await run(['deploy', '--set', 'WEB_TAG=v2'], reader);
    assert.equal(r.code, 3);
    assert.match(r.err, /token lacks the scope to start a deploy on \S+ \(needs operate, this token is read\)/);
    assert.equal((await run(['rollback'], reader)).code, 3);
    assert.equal((await run(['restart', 'web'], reader)).code, 3);
    assert.equal((await run(['deploy', '--set', 'NOT VALID'], reader)).code, 2, 'usage is checked first');
  });
});
