import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');

describe('systemd unit', () => {
  it('passes systemd-analyze verify with no warning', () => {
    // Point the unit at files that exist here; everything else is checked as shipped.
    const unit = readFileSync(join(ROOT, 'systemd/deckhand-agent.service'), 'utf8')
      .replaceAll('/opt/deckhand/current/node/bin/node', process.execPath)
      .replaceAll('/opt/deckhand/current/dist/', `${ROOT}/dist/`);
    const dir = mkdtempSync(join(tmpdir(), 'dh-unit-'));
    try {
      writeFileSync(join(dir, 'deckhand-agent.service'), unit);
      const r = spawnSync('systemd-analyze', ['verify', join(dir, 'deckhand-agent.service')], { encoding: 'utf8' });
      assert.equal(r.error, undefined, 'systemd-analyze must be installed (scripts/test-env.sh up installs it)');
      // An unknown key is only a warning on stderr: any stderr is a failure.
      assert.equal(r.stderr.trim(), '');
      assert.equal(r.status, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('restarts always and stops within its budget', () => {
    const unit = readFileSync(join(ROOT, 'systemd/deckhand-agent.service'), 'utf8');
    assert.match(unit, /^Restart=always$/m);
    assert.match(unit, /^ExecStart=\S+ .*deckhand-agent\.js run$/m);
    assert.match(unit, /^User=deckhand$/m);
    assert.match(unit, /^StartLimitIntervalSec=0$/m, 'never gives up for good');
  });

  it('is Type=notify with a watchdog, hardened, and may bind port 80', () => {
    const unit = readFileSync(join(ROOT, 'systemd/deckhand-agent.service'), 'utf8');
    for (const line of ['Type=notify', 'NotifyAccess=main', 'ProtectSystem=strict', 'ProtectHome=read-only', 'PrivateTmp=yes', 'NoNewPrivileges=yes', 'AmbientCapabilities=CAP_NET_BIND_SERVICE']) {
      assert.match(unit, new RegExp(`^${line}$`, 'm'), line);
    }
    assert.match(unit, /^WatchdogSec=\d+s$/m);
    assert.match(unit, /^MemoryMax=\S+$/m);
    assert.doesNotMatch(unit, /^MemoryDenyWriteExecute=yes$/m, 'V8 compiles code at run time');
  });

  it('allows more file descriptors than the agent caps its connections at', () => {
    const unit = readFileSync(join(ROOT, 'systemd/deckhand-agent.service'), 'utf8');
    const limit = Number(/^LimitNOFILE=(\d+)$/m.exec(unit)?.[1]);
    assert.ok(limit >= 16_384, `LimitNOFILE=${limit}`);
  });
});
