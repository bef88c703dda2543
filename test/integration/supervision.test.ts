// Supervision against a real engine: killed containers come back, unhealthy
// ones are restarted, crash loops stop and alert, operator stops stick, and
// the engine going away and coming back is survived.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { freePort, removeDir, waitFor } from '../helpers/agent.js';
import { connect, startApiAgent, type ApiAgent } from '../helpers/api.js';
import { containerState, startedAgainSince, waitForObservations } from '../helpers/observe.js';
import { SocketProxy } from '../helpers/socket-proxy.js';
import { requireDocker, TestStack } from '../helpers/stack.js';

const FAST_RESTART = { backoff: '200ms', maxBackoff: '1s', crashloop: { restarts: 3, within: '1m' } };

interface Setup {
  stack: TestStack;
  a: ApiAgent;
  /** Each service's container as compose started it, before the agent ran. */
  initial: Record<string, { id: string; startedAt: string }>;
}

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(name: string, services: ConstructorParameters<typeof TestStack>[1], restart: object = FAST_RESTART, env: Record<string, string> = {}): Promise<Setup> {
  requireDocker();
  const stack = TestStack.unique(name, services);
  await stack.up();
  const initial: Setup['initial'] = {};
  for (const service of Object.keys(services)) {
    // A service that exits at once (a crash loop) may already have stopped: look among all its containers.
    const id = (await stack.containerId(service)) || (await stack.docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${stack.project}`, '--filter', `label=com.docker.compose.service=${service}`)).trim().split('\n')[0]!;
    initial[service] = { id, startedAt: (await containerState(id)).startedAt };
  }
  const a = await startApiAgent({ config: { stack: { project: stack.project, dir: stack.dir, restart } }, env });
  cleanups.push(async () => {
    await a.agent.stop();
    await stack.down();
    removeDir(a.agent.dir);
    removeDir(stack.dir);
  });
  return { stack, a, initial };
}

const health = async (s: Pick<Setup, 'a'>) => (await s.a.agent.get('/health')).json();
const check = async (s: Pick<Setup, 'a'>, service: string) => (await health(s)).checks[`service:${service}`]?.[0];

// Each test has its own stack and agent (the engine test its own socket
// proxy) and mostly waits on containers: three at a time.
describe('supervision', { timeout: 300_000, concurrency: 3 }, () => {
  it('a killed container is running again within seconds; each restart is an event', async () => {
    const s = await setup('kill', { web: { environment: { PORT: String(await freePort()) } } });
    await waitFor(async () => (await check(s, 'web'))?.observedValue === 'healthy', 30_000);
    const id = await s.stack.containerId('web');
    assert.ok(['', 'no'].includes((await containerState(id)).restartPolicy), 'the engine itself would never start it again');
    for (let round = 1; round <= 3; round++) {
      const before = await containerState(id);
      const t0 = Date.now();
      await s.stack.docker('kill', id);
      await waitFor(() => startedAgainSince(id, before), 10_000, () => `round ${round}: started again after the kill`);
      const took = Date.now() - t0;
      assert.ok(took < 5000, `round ${round}: back in ${took} ms`);
      const after = await containerState(id);
      assert.ok(Date.parse(after.finishedAt) > Date.parse(before.startedAt), `round ${round}: it did die (finished ${after.finishedAt}) before starting again`);
      await waitFor(async () => (await check(s, 'web'))?.restarts === round, 10_000, () => `restart ${round} counted`);
    }
    // Counted once each: the agent looks again and the figure stays at 3.
    await waitForObservations(s.a.agent, 1);
    assert.equal((await check(s, 'web')).restarts, 3);
    const c = await connect(s.a.url, s.a.token('ev', 'read'));
    const events = (await c.call('events.list', { type: 'service.restarted' })).result.events;
    assert.equal(events.length, 3);
    assert.match(events[0].message, /^service web was exited; deckhand did start \(\d in the last 1 min\)$/);
    c.close();
  });

  it('an unhealthy container is restarted (Docker never does that itself)', async () => {
    const s = await setup('unhealthy', { web: { environment: { PORT: String(await freePort()), WEB_HEALTHY: '0' } } }, { backoff: '200ms', maxBackoff: '1s', crashloop: { restarts: 10, within: '10m' } });
    await waitFor(async () => ((await check(s, 'web'))?.restarts ?? 0) >= 1, 60_000, () => 'restarted for being unhealthy');
    // The same container (a restart, not a recreation), started later than compose started it.
    const { id, startedAt } = s.initial.web!;
    assert.equal(await s.stack.containerId('web'), id);
    assert.ok(Date.parse((await containerState(id)).startedAt) > Date.parse(startedAt), 'the container was started again');
    const c = await connect(s.a.url, s.a.token('ev', 'read'));
    const events = (await c.call('events.list', { type: 'service.restarted' })).result.events;
    assert.match(events.at(-1).message, /^service web was unhealthy; deckhand did restart/);
    c.close();
  });

  it('a crash loop stops the restarts, fails /health, alerts once, and an operator restart clears it', async () => {
    const s = await setup('crashloop', { web: { environment: { PORT: String(await freePort()), EXIT_AFTER: '0' } } });
    await waitFor(async () => (await check(s, 'web'))?.observedValue === 'crashloop', 60_000, () => 'crashloop');
    const res = await s.a.agent.get('/health');
    assert.equal(res.status, 503);
    assert.match(res.json().checks['service:web'][0].output, /crash loop/);
    const restartsAtLoop = (await check(s, 'web')).restarts;
    const id = s.initial.web!.id;
    const atLoop = await containerState(id);
    assert.equal(atLoop.running, false);
    // The agent looks again (the container stays down: its 5 s timer does) and leaves it.
    await waitForObservations(s.a.agent, 1);
    assert.equal((await check(s, 'web')).restarts, restartsAtLoop, 'no more restarts after the crash loop');
    const later = await containerState(id);
    assert.deepEqual([later.running, later.startedAt], [false, atLoop.startedAt], 'the container was not started again');

    const c = await connect(s.a.url, s.a.token('ops', 'operate'));
    let loops = (await c.call('events.list', { type: 'service.crashloop' })).result.events;
    assert.deepEqual(loops.map((e: any) => e.type), ['service.crashloop'], 'alerted once');
    assert.match(loops[0].message, /crash-looping: 3 restarts within 1 min/);
    const restartEvents = (await c.call('events.list', { type: 'service.restarted' })).result.events;
    assert.equal(restartEvents.length, 3, 'three restarts, then none');
    assert.deepEqual((await c.call('stack.restart', { service: 'web' })).result, { ok: true });
    assert.ok(Date.parse((await containerState(id)).startedAt) > Date.parse(atLoop.startedAt), 'the operator restart did start it');
    loops = (await c.call('events.list', { type: 'service.crashloop' })).result.events;
    assert.equal(loops[0].type, 'service.crashloop.resolved');
    // Still broken: it loops again, and says so again.
    await waitFor(async () => (await check(s, 'web'))?.observedValue === 'crashloop', 60_000);
    c.close();
  });

  it('a service stopped by an operator stays down, across an agent restart, until started', async () => {
    const s = await setup('opstop', { web: { environment: { PORT: String(await freePort()) } }, other: { environment: { PORT: String(await freePort()) } } });
    const c = await connect(s.a.url, s.a.token('ops', 'operate'));
    assert.deepEqual((await c.call('stack.stop', { service: 'web' })).result, { ok: true });
    c.close();
    const web = s.initial.web!.id;
    const stopped = await containerState(web);
    assert.equal(stopped.running, false, 'stack.stop stopped it');
    await waitFor(async () => (await check(s, 'web'))?.observedValue === 'stopped', 15_000);
    const w = await check(s, 'web');
    assert.equal(w.status, 'warn');
    assert.match(w.output, /^stopped by ops /);
    // The control: `other` dies now and is brought back, so the supervisor did
    // review a stack in which web was down, and left web alone.
    const other = s.initial.other!.id;
    const otherBefore = await containerState(other);
    await s.stack.docker('kill', other);
    await waitFor(() => startedAgainSince(other, otherBefore), 15_000, () => 'other brought back');
    await waitForObservations(s.a.agent, 1);
    assert.deepEqual(await containerState(web).then((x) => [x.running, x.startedAt]), [false, stopped.startedAt], 'web stays down');
    // A restarted agent remembers.
    await s.a.agent.stop();
    const again = await startApiAgent({ dir: s.a.agent.dir, config: { dataDir: s.a.agent.dataDir, stack: { project: s.stack.project, dir: s.stack.dir, restart: FAST_RESTART } } });
    cleanups.push(async () => void (await again.agent.stop()));
    // Its first observation happened before it was ready; one more, begun after, ends at its 5 s timer.
    await waitForObservations(again.agent, 1);
    const doc = (await again.agent.get('/health')).json();
    assert.equal(doc.checks['service:web'][0].observedValue, 'stopped');
    assert.equal(doc.checks['service:web'][0].restarts, 0);
    assert.deepEqual(await containerState(web).then((x) => [x.running, x.startedAt]), [false, stopped.startedAt], 'web still down after the agent restart');
    const c2 = await connect(again.url, again.token('ops2', 'operate'));
    assert.equal((await c2.call('stack.start', { service: 'nope' })).error.code, -32001);
    assert.deepEqual((await c2.call('stack.start', { service: 'web' })).result, { ok: true });
    await waitFor(async () => (await again.agent.get('/health')).json().checks['service:web'][0].status === 'pass', 30_000);
    assert.ok(Date.parse((await containerState(web)).startedAt) > Date.parse(stopped.startedAt), 'stack.start started it');
    const audit = (await c2.call('events.list', { type: 'audit' })).result.events.map((e: any) => `${e.actor} ${e.subject} ${e.data.ok}`);
    assert.ok(audit.includes('ops stack.stop true'), audit.join('\n'));
    assert.ok(audit.includes('ops2 stack.start true'), audit.join('\n'));
    c2.close();
  });

  it('one-off containers (compose run) are left alone', async () => {
    const s = await setup('oneoff', { web: { environment: { PORT: String(await freePort()) } } });
    // What `compose run` makes: a container with the project's labels and oneoff=True.
    // (compose v1 cannot `run` a host-network service: it adds links.)
    const oneoff = execFileSync('docker', [
      'run', '-d', '--network', 'host', '--label', 'deckhand.test=1',
      '--label', `com.docker.compose.project=${s.stack.project}`, '--label', 'com.docker.compose.service=web', '--label', 'com.docker.compose.oneoff=True',
      'deckhand-test/busybox:latest', 'sleep', '600',
    ], { encoding: 'utf8' }).trim();
    const oneoffBefore = await containerState(oneoff);
    // The control: web, the service the one-off claims to belong to, dies at the same moment and is
    // brought back; the review that restarted web saw the dead one-off too, and left it.
    const web = s.initial.web!.id;
    const webBefore = await containerState(web);
    await s.stack.docker('kill', oneoff, web);
    await waitFor(() => startedAgainSince(web, webBefore), 15_000, () => 'web brought back');
    await waitForObservations(s.a.agent, 1);
    const state = await containerState(oneoff);
    assert.deepEqual([state.status, state.startedAt], ['exited', oneoffBefore.startedAt], 'the one-off container was not started again');
    assert.equal((await check(s, 'web')).restarts, 1, 'the restart of web counted, nothing for the one-off');
    const doc = await health(s);
    assert.deepEqual(Object.keys(doc.checks).filter((k) => k.startsWith('service:')), ['service:web']);
    await s.stack.docker('rm', '-f', oneoff);
  });

  it('the engine going away: docker:engine fails, then supervision resumes without an agent restart', async () => {
    requireDocker();
    const stack = TestStack.unique('engine', { web: { environment: { PORT: String(await freePort()) } } });
    await stack.up();
    const proxy = new SocketProxy(join(stack.dir, 'docker.sock'));
    await proxy.listen();
    const a = await startApiAgent({ config: { stack: { project: stack.project, dir: stack.dir, restart: FAST_RESTART } }, env: { DOCKER_HOST: `unix://${proxy.path}` } });
    cleanups.push(async () => {
      await a.agent.stop();
      await proxy.cut();
      await stack.down();
      removeDir(a.agent.dir);
      removeDir(stack.dir);
    });
    const s = { stack, a };
    await waitFor(async () => (await health(s)).checks['docker:engine'][0].status === 'pass', 15_000);
    await proxy.cut();
    await waitFor(async () => (await health(s)).checks['docker:engine'][0].status === 'fail', 15_000, () => 'engine reported down');
    assert.equal((await a.agent.get('/health')).status, 503);
    // While it is away, the container dies; when it is back, deckhand notices and restarts it.
    const web = await stack.containerId('web');
    const webBefore = await containerState(web);
    await stack.docker('kill', web);
    await proxy.listen();
    await waitFor(async () => (await health(s)).checks['docker:engine'][0].status === 'pass', 60_000, () => 'engine back');
    await waitFor(async () => (await check(s, 'web'))?.restarts === 1, 30_000, () => 'web restarted after the engine came back');
    assert.equal(await startedAgainSince(web, webBefore), true, 'the killed container runs again, started after the kill');
    assert.equal(a.agent.child.exitCode, null, 'the agent itself never restarted');
    const c = await connect(a.url, a.token('ev', 'read'));
    const types = (await c.call('events.list', { type: 'docker.unreachable' })).result.events.map((e: any) => e.type);
    assert.deepEqual(types, ['docker.unreachable.resolved', 'docker.unreachable']);
    c.close();
  });
});
