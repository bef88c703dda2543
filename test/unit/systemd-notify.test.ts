import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { findAddon, watchdogIntervalMs } from '../../agent/systemd/notify.js';

describe('watchdogIntervalMs', () => {
  it('pings at a quarter of WATCHDOG_USEC', () => {
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '20000000' }, 42), 5000);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '400000', WATCHDOG_PID: '42' }, 42), 100);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '1' }, 42), 1, 'never 0 ms');
  });
  it('no watchdog: unset, zero, malformed, or meant for another process', () => {
    assert.equal(watchdogIntervalMs({}, 42), undefined);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 42), undefined);
    for (const bad of ['', '-5', '1e6', '20s', ' 100', '9'.repeat(16)]) assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: bad }, 42), undefined, bad);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '7' }, 42), undefined);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '' }, 42), 5000, 'an empty WATCHDOG_PID names nobody else');
  });
});

describe('findAddon', () => {
  it('finds the release layout (native/ beside dist/) and the checkout build, looking up from the module', () => {
    const root = mkdtempSync(join(tmpdir(), 'dh-addon-'));
    try {
      mkdirSync(join(root, 'dist', 'chunks'), { recursive: true });
      assert.equal(findAddon(join(root, 'dist', 'chunks')), undefined);
      mkdirSync(join(root, 'native', 'sd-notify', 'build', 'Release'), { recursive: true });
      writeFileSync(join(root, 'native', 'sd-notify', 'build', 'Release', 'sd_notify.node'), '');
      assert.equal(findAddon(join(root, 'dist')), join(root, 'native', 'sd-notify', 'build', 'Release', 'sd_notify.node'));
      writeFileSync(join(root, 'native', 'sd_notify.node'), '');
      assert.equal(findAddon(join(root, 'dist', 'chunks')), join(root, 'native', 'sd_notify.node'), 'the release file first');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
