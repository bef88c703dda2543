import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diskCheck } from '../../agent/duties/metrics/duty.js';
import { currentContainers, healthFromStatus, serviceCheck, type ServiceView } from '../../agent/duties/stack/services.js';
import { worstStatus } from '../../agent/duty.js';
import type { ContainerSummary } from '../../agent/docker/engine.js';

const view = (v: Partial<ServiceView>): ServiceView => ({ service: 'web', state: 'running', health: 'none', restarts: 0, ...v });
const container = (c: Partial<ContainerSummary>): ContainerSummary => ({
  id: 'x', service: 'web', oneoff: false, state: 'running', status: 'Up 1 second', image: 'img', imageId: 'sha256:1', created: 1, ...c,
});

describe('health rules', () => {
  it('a service is fail when down or unhealthy, warn while starting, pass otherwise', () => {
    assert.equal(serviceCheck(view({ state: 'missing' })).status, 'fail');
    assert.equal(serviceCheck(view({ state: 'exited' })).status, 'fail');
    assert.equal(serviceCheck(view({ state: 'restarting' })).status, 'fail');
    assert.equal(serviceCheck(view({ health: 'unhealthy' })).status, 'fail');
    assert.equal(serviceCheck(view({ health: 'starting' })).status, 'warn');
    assert.deepEqual(serviceCheck(view({ health: 'healthy', restarts: 2 })), { status: 'pass', observedValue: 'healthy', restarts: 2 });
    assert.equal(serviceCheck(view({})).observedValue, 'running');
  });

  it('disk is warn at or over the threshold', () => {
    assert.deepEqual(diskCheck(41.04, 90), { status: 'pass', observedValue: 41, observedUnit: '%' });
    assert.equal(diskCheck(90, 90).status, 'warn');
    assert.match(String(diskCheck(95.5, 90).output), /95.5% full \(threshold 90%\)/);
  });

  it('the worst check decides', () => {
    assert.equal(worstStatus([]), 'pass');
    assert.equal(worstStatus(['pass', 'warn']), 'warn');
    assert.equal(worstStatus(['warn', 'fail', 'pass']), 'fail');
  });

  it('reads health from the engine status text', () => {
    assert.equal(healthFromStatus('Up 3 minutes (healthy)'), 'healthy');
    assert.equal(healthFromStatus('Up 3 minutes (unhealthy)'), 'unhealthy');
    assert.equal(healthFromStatus('Up 2 seconds (health: starting)'), 'starting');
    assert.equal(healthFromStatus('Exited (1) 2 seconds ago'), 'none');
  });

  it('picks the running container of a service and ignores one-off ones', () => {
    const picked = currentContainers([
      container({ id: 'old', state: 'exited', created: 5 }),
      container({ id: 'live', state: 'running', created: 3 }),
      container({ id: 'run', oneoff: true, created: 9 }),
      container({ id: 'db1', service: 'db', state: 'exited', created: 1 }),
      container({ id: 'db2', service: 'db', state: 'exited', created: 2 }),
    ]);
    assert.equal(picked.get('web')?.id, 'live');
    assert.equal(picked.get('db')?.id, 'db2');
    assert.equal(picked.size, 2);
  });
});

import { decideRestart, remedyFor, restartDelay } from '../../agent/duties/stack/restart-policy.js';

describe('restart policy', () => {
  const policy = { backoffMs: 2000, maxBackoffMs: 10_000, crashloopRestarts: 5, crashloopWithinMs: 600_000 };
  it('first restart at once, then doubling from backoff to maxBackoff', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5].map((n) => restartDelay(n, policy)), [0, 2000, 4000, 8000, 10_000, 10_000]);
  });
  it('five restarts within ten minutes, and the next death is a crash loop', () => {
    const now = 1_000_000;
    assert.deepEqual(decideRestart([], now, policy), { action: 'restart', delayMs: 0 });
    assert.deepEqual(decideRestart([now - 1000, now - 500], now, policy), { action: 'restart', delayMs: 4000 });
    const five = [1, 2, 3, 4, 5].map((i) => now - i * 1000);
    assert.deepEqual(decideRestart(five, now, policy), { action: 'crashloop', restarts: 5 });
    const old = [1, 2, 3, 4, 5].map((i) => now - 600_000 - i);
    assert.deepEqual(decideRestart(old, now, policy), { action: 'restart', delayMs: 0 }, 'old restarts are forgotten');
  });
  it('the remedy depends on what the container is doing', () => {
    const v = (state: string, health: ServiceView['health'] = 'none') => ({ service: 's', state, health, restarts: 0 });
    assert.equal(remedyFor(v('exited')), 'start');
    assert.equal(remedyFor(v('created')), 'start');
    assert.equal(remedyFor(v('missing')), 'recreate');
    assert.equal(remedyFor(v('running', 'unhealthy')), 'restart');
    assert.equal(remedyFor(v('running', 'healthy')), 'none');
    assert.equal(remedyFor(v('restarting')), 'none');
    assert.equal(remedyFor(v('paused')), 'none');
  });
});
