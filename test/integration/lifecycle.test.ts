// The agent's command line and lifecycle: config errors, start-up failures,
// SIGTERM, and faults it must survive while telling the truth.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AGENT_BIN, freePort, removeDir, startAgent, tempDir, waitFor } from '../helpers/agent.js';
import { requireDocker, TestStack } from '../helpers/stack.js';

function agentCli(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [AGENT_BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
}

describe('deckhand-agent command line', () => {
  it('check-config: exit 0 for a good file', () => {
    const dir = tempDir('cfg');
    writeFileSync(join(dir, 'agent.yaml'), `dataDir: ${dir}/data\nhealth: {listen: "127.0.0.1:7070"}\n`);
    const r = agentCli(['check-config', '--config', join(dir, 'agent.yaml')]);
    assert.equal(r.status, 0, r.stderr);
    removeDir(dir);
  });

  it('check-config: exit 2 and one line per problem, naming the key path', () => {
    const dir = tempDir('cfg');
    writeFileSync(
      join(dir, 'agent.yaml'),
      'backups:\n  - {name: db, schedule: "0 25 * * *", source: {url: "postgres://b@127.0.0.1/app", database: app}}\nmetrics: {interval: soon}\nsurprise: true\n',
    );
    const r = agentCli(['check-config'], { DECKHAND_CONFIG: join(dir, 'agent.yaml') });
    assert.equal(r.status, 2);
    assert.deepEqual(r.stderr.trim().split('\n').sort(), [
      'backups[0].schedule: invalid cron expression "0 25 * * *"',
      'metrics.interval: invalid duration "soon" (use a number and a unit: ms, s, m, h, d)',
      'surprise: unknown key',
    ]);
    assert.equal(r.stdout, '');
    removeDir(dir);
  });

  it('check-config: a missing file is a config error (exit 2)', () => {
    const r = agentCli(['check-config', '--config', '/nonexistent/agent.yaml']);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, 'cannot read config: /nonexistent/agent.yaml: file not found\n', 'names the file it looked for');
  });

  it('run refuses a bad config and never starts half-configured', () => {
    const dir = tempDir('cfg');
    writeFileSync(join(dir, 'agent.yaml'), `dataDir: ${dir}/data\nstack: {project: Bad Name, dir: /srv}\n`);
    const r = agentCli(['run', '--config', join(dir, 'agent.yaml')]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^stack\.project: invalid compose project name/m);
    removeDir(dir);
  });

  it('version and unknown commands', () => {
    assert.match(agentCli(['version']).stdout, /^\d+\.\d+\.\d+\n$/);
    assert.equal(agentCli(['frobnicate']).status, 2);
  });
});

describe('agent lifecycle', { timeout: 120_000 }, () => {
  it('stops cleanly on SIGTERM within 5 s, exit 0', async () => {
    const agent = await startAgent();
    await agent.waitReady();
    const r = await agent.stop('SIGTERM');
    assert.equal(r.code, 0, agent.output);
    assert.ok(r.ms < 5000, `stopped in ${r.ms} ms`);
    assert.ok(agent.logLines().some((l) => l.msg === 'stopped'));
    removeDir(agent.dir);
  });

  it('exits non-zero with a clear message when the health port is taken', async () => {
    const port = await freePort();
    const blocker = createServer().listen(port, '127.0.0.1');
    try {
      const agent = await startAgent({ config: { health: { listen: `127.0.0.1:${port}` } } });
      const r = await agent.exited;
      assert.equal(r.code, 1);
      assert.match(agent.output, /health server cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE.*\(health\.listen\)/);
      removeDir(agent.dir);
    } finally {
      blocker.close();
    }
  });

  it('records agent.started in the events table', async () => {
    const agent = await startAgent();
    await agent.waitReady();
    await agent.stop();
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(join(agent.dataDir, 'deckhand.db'), { readonly: true });
    const types = db.prepare('SELECT type FROM events ORDER BY id').pluck().all();
    db.close();
    assert.deepEqual(types, ['agent.started']);
    removeDir(agent.dir);
  });
});

describe('faults the agent survives', { timeout: 180_000 }, () => {
  it('Docker engine unreachable: docker:engine and services fail, the agent keeps serving', async () => {
    requireDocker();
    const stack = TestStack.unique('noengine', { web: { environment: { PORT: String(await freePort()) } } });
    const agent = await startAgent({
      config: { stack: { project: stack.project, dir: stack.dir } },
      env: { DOCKER_HOST: `unix://${join(stack.dir, 'no-such.sock')}` },
    });
    try {
      await agent.waitReady();
      await waitFor(async () => (await agent.get('/health')).status === 503, 15_000, () => '503');
      const doc = (await agent.get('/health')).json();
      assert.equal(doc.checks['docker:engine'][0].status, 'fail');
      assert.match(doc.checks['docker:engine'][0].output, /Docker engine unreachable: .*ENOENT/);
      assert.equal(doc.checks['service:web'][0].status, 'fail');
      assert.equal((await agent.get('/livez')).status, 200);
      assert.equal((await agent.get('/readyz')).status, 200);
      const metrics = (await agent.get('/metrics')).text;
      assert.match(metrics, /^deckhand_docker_engine_up 0/m);
    } finally {
      await agent.stop();
      removeDir(agent.dir);
      removeDir(stack.dir);
    }
  });

  it('a full disk under dataDir: samples fail, /health says so, the agent keeps running and recovers', async (t) => {
    const dir = tempDir('full');
    const mnt = join(dir, 'mnt');
    const mount = spawnSync('sh', ['-c', `mkdir -p "$1" && mount -t tmpfs -o size=3m tmpfs "$1"`, 'sh', mnt]);
    if (mount.status !== 0) throw new Error(`cannot mount a tmpfs for the disk-full test (needs root): ${mount.stderr}`);
    try {
      const agent = await startAgent({ dir, config: { dataDir: join(mnt, 'data'), alerts: { diskLowPercent: 99 } } });
      await agent.waitReady();
      // Fill the filesystem to the last byte.
      spawnSync('sh', ['-c', `dd if=/dev/zero of="$1" bs=64k 2>/dev/null; sync`, 'sh', join(mnt, 'filler')]);
      await waitFor(async () => (await agent.get('/health')).json().checks['agent:metrics']?.[0]?.status === 'warn', 20_000, () => `metrics write failing:\n${agent.output.slice(-2000)}`);
      const doc = (await agent.get('/health')).json();
      assert.match(doc.checks['agent:metrics'][0].output, /last metrics sample not kept: .*(full|SQLITE_FULL|disk)/i);
      assert.equal((await agent.get('/livez')).status, 200);
      assert.ok(agent.logLines().some((l) => l.level === 50 && String(l.msg).startsWith('metrics:')), 'the failure is logged');
      // Space comes back: the next tick writes again and the warning clears.
      spawnSync('rm', ['-f', join(mnt, 'filler')]);
      await waitFor(async () => (await agent.get('/health')).json().checks['agent:metrics'] === undefined, 20_000, () => 'recovery');
      const r = await agent.stop();
      assert.equal(r.code, 0);
      const check = spawnSync('sqlite3', [join(mnt, 'data', 'deckhand.db'), 'PRAGMA integrity_check'], { encoding: 'utf8' });
      if (check.error) t.diagnostic('sqlite3 CLI not installed; integrity checked through better-sqlite3');
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(join(mnt, 'data', 'deckhand.db'));
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      db.close();
    } finally {
      spawnSync('umount', ['-l', mnt]);
      removeDir(dir);
    }
  });
});
