// The operator is told the truth about restarts: RESTARTS in `deckhand ps`,
// /health's `restarts`, deckhand_service_restarts and service.restarted count
// only what the supervisor did because a container died or turned unhealthy.
// An operator's restart, stop and start and a deploy's recreation are audit
// entries (their own in `deckhand events`), never restarts; a service an
// operator stopped shows in `deckhand ps` as stopped, by whom and when, also
// after the agent restarts. Drives the built CLI against a real agent and stack.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { removeDir, ROOT, tempDir, waitFor } from '../helpers/agent.js';
import { makeDeployEnv, type DeployEnv } from '../helpers/deploy-env.js';
import { containerState, startedAgainSince, waitForObservations } from '../helpers/observe.js';
import { run as runProgram } from '../helpers/run.js';

const BUILT_CLI = join(ROOT, 'dist/deckhand.js');

interface PsService {
  service: string;
  state: string;
  restarts: number;
  containerId?: string;
  stoppedBy?: string;
  stoppedAt?: string;
}

describe('restarts are crashes, not operations', { timeout: 240_000 }, () => {
  let e: DeployEnv;
  let work: string;
  let cli: string;
  let ops: string;

  const run = (args: string[]) => {
    const env = { PATH: process.env.PATH, HOME: work, XDG_CONFIG_HOME: work, DECKHAND_URL: e.a.url, DECKHAND_TOKEN: ops, DECKHAND_FINGERPRINT: e.a.tls.fingerprint };
    return runProgram(process.execPath, [cli, ...args], { cwd: work, env, timeoutMs: 150_000 });
  };
  const psWeb = async (): Promise<PsService> => {
    const r = await run(['ps', '--json']);
    assert.equal(r.code, 0, r.err);
    return (JSON.parse(r.out).services as PsService[]).find((s) => s.service === 'web')!;
  };
  const healthRestarts = async (): Promise<number> => (await e.a.agent.get('/health')).json().checks['service:web'][0].restarts;
  const metricRestarts = async (): Promise<number> => {
    const line = /^deckhand_service_restarts\{service="web"\} (\S+)$/m.exec((await e.a.agent.get('/metrics')).text);
    assert.ok(line, 'deckhand_service_restarts for web on /metrics');
    return Number(line[1]);
  };
  /** The three figures agree, and are `n`. */
  const assertRestarts = async (n: number, why: string) => {
    assert.deepEqual([(await psWeb()).restarts, await healthRestarts(), await metricRestarts()], [n, n, n], why);
  };
  const restartedEvents = async () => (await e.c.call('events.list', { type: 'service.restarted' })).result.events as { message: string }[];

  before(async () => {
    if (!existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run npm run build`);
    work = tempDir('restarts-truth');
    cli = join(work, 'deckhand.js');
    copyFileSync(BUILT_CLI, cli);
    e = await makeDeployEnv('truth');
    ops = e.a.token('ops', 'operate');
  });
  after(async () => {
    await e?.cleanup();
    if (work) removeDir(work);
  });

  it("an operator's restart, stop and start and a deploy's recreation count nothing", async () => {
    const first = await e.stack.containerId('web');
    const before = await containerState(first);
    const restart = await run(['restart', 'web']);
    assert.equal(restart.code, 0, restart.err);
    assert.ok(await startedAgainSince(first, before), 'the restart did start the container again');
    // Its engine events make the agent look at once and 150 and 600 ms later; three observations reach past them.
    await waitForObservations(e.a.agent, 3);
    await assertRestarts(0, 'an operator restart is not a restart');

    const deploy = await run(['deploy', '--set', 'EXIT_AFTER=86400']);
    assert.equal(deploy.code, 0, `${deploy.out}\n${deploy.err}`);
    const second = await e.stack.containerId('web');
    assert.notEqual(second, first, 'the deploy recreated the container');
    await waitForObservations(e.a.agent, 3);
    await assertRestarts(0, "a deploy's recreation is not a restart");

    const stop = await run(['stop', 'web']);
    assert.equal(stop.code, 0, stop.err);
    await waitForObservations(e.a.agent, 3);
    const stopped = await psWeb();
    assert.equal(stopped.stoppedBy, 'ops');
    assert.ok(Math.abs(Date.now() - Date.parse(stopped.stoppedAt!)) < 60_000, `stoppedAt ${stopped.stoppedAt}`);
    assert.equal(new Date(stopped.stoppedAt!).toISOString(), stopped.stoppedAt, 'an ISO time');
    assert.notEqual(stopped.state, 'running');
    assert.match((await run(['ps'])).out, /\nweb +stopped by ops (just now|\d+ s ago) +- +0 +- +deckhand-test\/web:latest\n/);

    // The stop is remembered by a restarted agent, and ps still says who and when.
    await e.restartAgent();
    await waitForObservations(e.a.agent, 1);
    const again = await psWeb();
    assert.deepEqual([again.stoppedBy, again.stoppedAt], ['ops', stopped.stoppedAt]);
    assert.match((await run(['ps'])).out, /\nweb +stopped by ops (just now|\d+ s ago) +- +0 +/);

    const start = await run(['start', 'web']);
    assert.equal(start.code, 0, start.err);
    await waitFor(async () => (await psWeb()).state === 'running', 20_000, () => 'web running again');
    await waitForObservations(e.a.agent, 3);
    const started = await psWeb();
    assert.equal(started.stoppedBy, undefined);
    assert.equal(started.stoppedAt, undefined);
    await assertRestarts(0, 'an operator start is not a restart');
    assert.deepEqual(await restartedEvents(), [], 'no service.restarted event for any of it');

    // In `deckhand events` the operator's actions are audit entries (info), with who and from where.
    const events = await run(['events', '--type', 'audit']);
    assert.equal(events.code, 0, events.err);
    assert.match(events.out, /info +audit +stack\.stop +stack\.stop ok \(ops from 127\.0\.0\.1\)/);
    assert.match(events.out, /info +audit +stack\.start +stack\.start ok \(ops from 127\.0\.0\.1\)/);
  });

  it('a container that dies is one restart, everywhere, and one service.restarted warning', async () => {
    const id = await e.stack.containerId('web');
    const before = await containerState(id);
    await e.stack.docker('kill', id);
    await waitFor(() => startedAgainSince(id, before), 15_000, () => 'web brought back');
    await waitFor(async () => (await psWeb()).restarts === 1, 10_000, () => 'the restart counted');
    await waitForObservations(e.a.agent, 1);
    await assertRestarts(1, 'the supervisor brought it back once');
    const restarted = await restartedEvents();
    assert.equal(restarted.length, 1);
    assert.match(restarted[0]!.message, /^service web was exited; deckhand did start \(1 in the last 1 min\)$/);
    const events = await run(['events', '--type', 'service.restarted']);
    assert.match(events.out, /(just now|\d+ s ago) +warning +service\.restarted +web +service web was exited/);
    const doc = JSON.parse((await run(['events', '--type', 'service.restarted', '--json'])).out);
    assert.deepEqual(
      doc.events.map((ev: { severity: string; subject: string; actor?: string | null }) => [ev.severity, ev.subject, ev.actor ?? null]),
      [['warning', 'web', null]],
      'a warning with no actor: the supervisor did it',
    );
  });
});
