// What counts as a restart: only the supervisor's remedies for a service that
// died or turned unhealthy. An operator's restart, stop or start and a
// deploy's recreation are theirs (audit entries, deploy records), never a restart.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PassThrough } from 'node:stream';
import { classify, NO_OTHER_HANDS, type OtherHands } from '../../agent/duties/stack/restart-policy.js';
import type { ServiceView } from '../../agent/duties/stack/services.js';
import { Supervisor } from '../../agent/duties/stack/supervisor.js';
import { renderPs } from '../../server-cli/commands/ps.js';
import { createCtx } from '../../server-cli/commands/common.js';
import type { Io } from '../../server-cli/io.js';

const view = (state: string, health: ServiceView['health'] = 'none', containerId = 'c1'): ServiceView => ({ service: 'web', state, health, containerId, restarts: 0 });
const hands = (h: Partial<OtherHands>): OtherHands => ({ ...NO_OTHER_HANDS, ...h });

describe('classify: whose business a service is', () => {
  it('a container that exited, died or was never started, with nobody at work on it, is a crash: start it', () => {
    for (const state of ['exited', 'dead', 'created']) assert.deepEqual(classify(view(state), NO_OTHER_HANDS), { cause: 'crash', remedy: 'start' }, state);
  });

  it('no container at all is a crash: recreate; running but unhealthy: restart', () => {
    assert.deepEqual(classify(view('missing'), NO_OTHER_HANDS), { cause: 'crash', remedy: 'recreate' });
    assert.deepEqual(classify(view('running', 'unhealthy'), NO_OTHER_HANDS), { cause: 'crash', remedy: 'restart' });
  });

  it('running (a replaced container included), starting, or restarted by Docker itself needs nothing', () => {
    for (const v of [view('running'), view('running', 'healthy', 'new-id'), view('running', 'starting'), view('restarting'), view('paused')]) {
      assert.deepEqual(classify(v, NO_OTHER_HANDS), { cause: 'fine', remedy: 'none' }, `${v.state}/${v.health}`);
    }
  });

  it("an operator's restart, stop or start in progress is the operator's, even while the container is down", () => {
    for (const state of ['exited', 'missing', 'running']) assert.deepEqual(classify(view(state), hands({ operating: true })), { cause: 'operator', remedy: 'none' }, state);
  });

  it('a service an operator stopped stays theirs', () => {
    assert.deepEqual(classify(view('exited'), hands({ operatorStopped: true })), { cause: 'operator-stop', remedy: 'none' });
  });

  it("a deploy's recreation (the old container gone, the new one not yet there) is the deploy's", () => {
    assert.deepEqual(classify(view('missing'), hands({ deploying: true })), { cause: 'deploy', remedy: 'none' });
    assert.deepEqual(classify(view('running', 'unhealthy', 'new-id'), hands({ deploying: true })), { cause: 'deploy', remedy: 'none' });
  });
});

function supervisorWith(policy = { backoffMs: 1, maxBackoffMs: 1, crashloopRestarts: 100, crashloopWithinMs: 60_000 }) {
  const applied: string[] = [];
  const events: { type: string; data?: unknown }[] = [];
  let current = view('exited');
  const ctx = {
    conditions: { raise: () => undefined, clear: () => undefined },
    events: { record: (e: { type: string; data?: unknown }) => void events.push(e) },
    log: { warn: () => undefined, error: () => undefined },
    reportError: () => undefined,
  };
  const sup = new Supervisor(
    policy,
    {
      current: () => current,
      apply: async (remedy) => {
        applied.push(remedy);
        current = view('running');
      },
    },
    ctx as unknown as ConstructorParameters<typeof Supervisor>[2],
  );
  return { sup, applied, events, set: (v: ServiceView) => (current = v) };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe('the supervisor counts its own remedies, and only those', () => {
  it('a crash brought back is one restart and one service.restarted event', async () => {
    const s = supervisorWith();
    s.sup.review([view('exited')], () => NO_OTHER_HANDS);
    await settle();
    assert.deepEqual(s.applied, ['start']);
    assert.equal(s.sup.restarts('web'), 1);
    assert.deepEqual(s.events.map((e) => e.type), ['service.restarted']);
    assert.equal((s.events[0]!.data as { restarts: number }).restarts, 1);
  });

  it('a service down while an operator or a deploy works on it is left alone and not counted', async () => {
    const s = supervisorWith();
    for (const h of [hands({ operating: true }), hands({ deploying: true }), hands({ operatorStopped: true })]) s.sup.review([view('exited')], () => h);
    await settle();
    assert.deepEqual(s.applied, []);
    assert.equal(s.sup.restarts('web'), 0);
    assert.deepEqual(s.events, []);
  });

  it('a restart scheduled before an operator took the service is dropped when its time comes', async () => {
    const s = supervisorWith({ backoffMs: 30, maxBackoffMs: 30, crashloopRestarts: 100, crashloopWithinMs: 60_000 });
    let h = NO_OTHER_HANDS;
    s.sup.review([view('exited')], () => h); // first restart: at once
    await settle();
    s.set(view('exited'));
    s.sup.review([view('exited')], () => h); // second: after the 30 ms backoff
    h = hands({ operating: true }); // the operator's restart begins meanwhile
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual(s.applied, ['start']);
    assert.equal(s.sup.restarts('web'), 1);
  });

  it("forget() (an operator's restart, a deploy) starts the crash-loop window afresh but keeps the count", async () => {
    const s = supervisorWith();
    s.sup.review([view('exited')], () => NO_OTHER_HANDS);
    await settle();
    s.sup.forget('web');
    assert.equal(s.sup.restartsInWindow('web'), 0);
    assert.equal(s.sup.restarts('web'), 1);
  });
});

const NOW = Date.parse('2026-05-01T12:00:00Z');

function plainCtx() {
  let out = '';
  const stream = { write: (t: string) => void (out += t), isTTY: false, columns: 120 };
  const io: Io = { env: {}, stdout: stream, stderr: stream, stdin: Object.assign(new PassThrough(), { isTTY: false }), now: () => NOW, onInterrupt: () => () => undefined };
  return { ctx: createCtx(io), out: () => out };
}

describe('deckhand ps', () => {
  it('a service an operator stopped: by whom and when, in relative time', () => {
    const { ctx } = plainCtx();
    const text = renderPs(ctx, {
      services: [
        { service: 'web', state: 'exited', health: 'none', restarts: 0, image: 'app:1', stoppedBy: 'ops', stoppedAt: new Date(NOW - 5 * 60_000).toISOString() },
        { service: 'db', state: 'running', health: 'healthy', restarts: 2, image: 'pg:15', startedAt: new Date(NOW - 3600_000).toISOString() },
      ],
    });
    const lines = text.trimEnd().split('\n');
    assert.match(lines[1]!, /^web +stopped by ops 5 min ago +- +0 +- +app:1$/);
    assert.match(lines[2]!, /^db +running +healthy +2 +1 h +pg:15$/);
  });
});
