// An interrupted deploy, rollback or recovery always ends on the last state
// known good before it began, however often the agent dies on the way: the
// agent is killed (SIGKILL, failpoint) at every step of an operator's
// rollback and of a deploy's own rollback, killed again in the middle of its
// recovery, and stopped with SIGTERM during a health gate.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../helpers/agent.js';
import { DEPLOY, makeDeployEnv, runOp, servedVersion, settledDeploys, type DeployEnv } from '../helpers/deploy-env.js';
import { shareOfMatrix } from '../helpers/compose.js';

const FAILPOINT = 'DECKHAND_FAILPOINT_KILL_AT_STEP';
const envs: DeployEnv[] = [];
after(async () => {
  for (const e of envs.reverse()) await e.cleanup().catch(() => undefined);
});

const envText = (e: DeployEnv) => readFileSync(join(e.stack.dir, '.env'), 'utf8');
const healthy = async (e: DeployEnv) => (await e.a.agent.get('/health')).json().checks['service:web']?.[0]?.status === 'pass';

/** Starts `method` on an agent armed to kill itself at `at`, and waits for the kill. */
async function killedDuring(e: DeployEnv, at: string, method: 'deploy.start' | 'deploy.rollback', params: object): Promise<void> {
  await e.restartAgent({ env: { [FAILPOINT]: at } });
  await killOf(e, at, e.c.call(method, params));
}

/** The agent's exit by its failpoint; fails at once if the call was refused, or after 2 minutes. */
async function killOf(e: DeployEnv, at: string, answer: Promise<any> = new Promise(() => {})): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([
    e.a.agent.exited,
    answer.then((r) => (r?.error ? Promise.reject(new Error(`refused: ${JSON.stringify(r.error)}`)) : new Promise<never>(() => {}))),
    new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`the agent did not reach ${at}:\n${e.a.agent.output.slice(-3000)}`)), 120_000))),
  ]).finally(() => clearTimeout(timer));
  assert.equal(exit.signal, 'SIGKILL', `the agent was to kill itself at ${at}`);
}

// The tests have their own stacks and agents and mostly wait on containers:
// they run side by side.
describe('deploy recovery', { timeout: 900_000, concurrency: 5 }, () => {
  before(() => {
    for (const v of ['2', '3']) execFileSync('bash', ['scripts/test-env.sh', 'web-image', v, `v${v}`], { stdio: 'ignore' });
  });

  // Each step under one compose version of the matrix (shareOfMatrix): every
  // step once, both versions. The steps are shared out between two stacks,
  // each a chain of kills and recoveries, that run side by side.
  const steps = shareOfMatrix(['record', 'restore-files', 'validate', 'images', 'disk', 'up', 'health', 'watch']);
  const chains = [steps.filter((_, i) => i % 2 === 0), steps.filter((_, i) => i % 2 === 1)].filter((c) => c.length > 0);
  for (const [n, chain] of chains.entries()) it(`an operator's rollback killed at each of its steps is finished towards its target on restart (${chain.join(', ')})`, async (t) => {
    const e = await makeDeployEnv(`rb-kill${n}`);
    envs.push(e);
    const good = await runOp(e, 'deploy.start', { env: { WEB_TAG: 'v2' } });
    assert.equal(good.deploy.result, 'succeeded');
    const goodEnv = envText(e);
    // The good state to roll back to: each finished recovery is the newest record of it (older ones leave the rollback window).
    let goodId: number = good.deploy.id;
    for (const step of chain) {
      await t.test(`killed at rollback step "${step}"`, async () => {
        if ((await servedVersion(e.port)) !== '3') assert.equal((await runOp(e, 'deploy.start', { env: { WEB_TAG: 'v3' } })).deploy.result, 'succeeded');
        const v3Env = envText(e);
        await killedDuring(e, `rollback:${step}`, 'deploy.rollback', { id: goodId });
        await e.relaunch();
        const list = await settledDeploys(e);
        const rollback = list.find((d) => d.kind === "rollback" && d.result === "interrupted");
        assert.ok(rollback, JSON.stringify(list.slice(0, 3)));
        assert.match(rollback.error, new RegExp(`died during step ${step}$`));
        if (step === 'record') {
          // Nothing had changed: nothing to finish, the stack stays where it was.
          assert.equal(list[0].id, rollback.id, 'no recovery for a rollback that changed nothing');
          assert.equal(await servedVersion(e.port), '3');
          assert.equal(envText(e), v3Env);
          return;
        }
        const recovery = list[0];
        assert.deepEqual([recovery.kind, recovery.result, recovery.targetId], ['recovery', 'succeeded', rollback.id], JSON.stringify(recovery));
        assert.equal(await servedVersion(e.port), '2', 'on the version the rollback was going to');
        assert.equal(envText(e), goodEnv);
        await waitFor(() => healthy(e), 30_000, () => 'web healthy');
        goodId = recovery.id;
      });
    }
  });

  it("a deploy killed while rolling itself back (restoring files) ends on the version before it", async () => {
    const e = await makeDeployEnv('self-rb-kill');
    envs.push(e);
    const before = envText(e);
    // v3 with a failing healthcheck: the gate fails and the deploy's own rollback starts.
    await killedDuring(e, 'deploy:rollback', 'deploy.start', { env: { WEB_TAG: 'v3', WEB_HEALTHY: '0' } });
    await e.relaunch();
    const [recovery, deploy] = await settledDeploys(e);
    assert.deepEqual([deploy.kind, deploy.result], ['deploy', 'interrupted']);
    assert.match(deploy.error, /died during step rollback$/);
    assert.deepEqual([recovery.kind, recovery.result, recovery.targetId], ['recovery', 'succeeded', deploy.id]);
    assert.equal(await servedVersion(e.port), '1');
    assert.equal(envText(e), before);
  });

  it('a recovery killed, and killed again, still ends on the version before the deploy', async () => {
    const e = await makeDeployEnv('rec-kill');
    envs.push(e);
    const before = envText(e);
    // The deploy dies with v3 up and its .env written: a half-applied deploy.
    await killedDuring(e, 'deploy:health', 'deploy.start', { env: { WEB_TAG: 'v3' } });
    assert.equal(await servedVersion(e.port), '3');
    // Its recovery dies before `up`: files back, v3 still running. Then the next recovery dies in its gate.
    for (const at of ['recovery:up', 'recovery:health']) {
      await e.relaunchToDie({ env: { [FAILPOINT]: at } });
      await killOf(e, at);
    }
    await e.relaunch();
    const list = await settledDeploys(e);
    assert.deepEqual(
      list.map((d) => [d.kind, d.result]),
      [['recovery', 'succeeded'], ['recovery', 'interrupted'], ['recovery', 'interrupted'], ['deploy', 'interrupted']],
    );
    const [last, second, first, deploy] = list;
    assert.match(first.error, /died during step up$/);
    assert.match(second.error, /died during step health$/);
    assert.deepEqual([first.targetId, second.targetId, last.targetId], [deploy.id, first.id, second.id], 'each recovery says which record it finished');
    // The goal never moved: the images and .env from before the deploy, not the half-applied ones a recovery found.
    assert.deepEqual(last.images.after, deploy.images.before);
    assert.equal(await servedVersion(e.port), '1');
    assert.equal(envText(e), before);
    await waitFor(() => healthy(e), 30_000, () => 'web healthy');
  });

  it('SIGTERM during a deploy ends the agent within the stop deadline; the next start finishes cleanly', async () => {
    const e = await makeDeployEnv('sigterm');
    envs.push(e);
    const before = envText(e);
    await e.restartAgent({ deploy: { ...DEPLOY, stableFor: '30s' } });
    const r = await e.c.call('deploy.start', { env: { WEB_TAG: 'v2' } });
    const id = r.result.stream;
    await waitFor(() => e.c.notifications.some((n) => n.stream === id && n.event.step === 'health' && n.event.status === 'started'), 60_000, () => 'health gate started');
    const stopped = await e.a.agent.stop('SIGTERM');
    assert.equal(stopped.code, 0, e.a.agent.output.slice(-2000));
    assert.ok(stopped.ms < 5000, `stopped in ${stopped.ms} ms`);
    const end = e.c.notifications.find((n) => n.stream === id && n.event.type === 'end');
    assert.deepEqual([end?.event.ok, end?.event.error], [false, 'the agent is stopping; its next start completes this deploy (deckhand deploys)']);
    await e.relaunch();
    const [recovery, deploy] = await settledDeploys(e);
    assert.deepEqual([deploy.result, recovery.kind, recovery.result, recovery.targetId], ['interrupted', 'recovery', 'succeeded', deploy.id]);
    assert.match(deploy.error, /was stopped during step health$/);
    assert.equal(deploy.steps.at(-1).step, 'stopped');
    assert.equal(await servedVersion(e.port), '1');
    assert.equal(envText(e), before);
  });
});
