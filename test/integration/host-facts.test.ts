// Host facts in status.get from the real agent, checked against what this
// machine says of itself: os-release, uname, nproc, /proc/meminfo,
// systemd-detect-virt, the Docker engine and the configured compose CLI.
// Facts are collected in the background: /health and status.get answer at
// once while a (test-delayed) collection is still under way.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { removeDir, waitFor } from '../helpers/agent.js';
import { connect, startApiAgent, type ApiAgent } from '../helpers/api.js';
import { requireDocker, TestStack } from '../helpers/stack.js';

function out(file: string, ...args: string[]): string {
  return execFileSync(file, args, { encoding: 'utf8' }).trim();
}

/** systemd-detect-virt's answer, "none" included (it exits 1 then). */
function detectVirt(kind: string): string {
  return spawnSync('systemd-detect-virt', [`--${kind}`], { encoding: 'utf8' }).stdout.trim();
}

function osRelease(): Record<string, string> {
  return Object.fromEntries(
    readFileSync('/etc/os-release', 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).replace(/^"|"$/g, '')]),
  );
}

function memTotalBytes(): number {
  return Number(/^MemTotal:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
}

async function statusOf(a: ApiAgent): Promise<any> {
  const c = await connect(a.url, a.token(`reader-${Date.now()}`, 'read'));
  try {
    return (await c.call('status.get')).result;
  } finally {
    c.close();
  }
}

async function collected(a: ApiAgent): Promise<any> {
  let host: any;
  await waitFor(async () => (host = (await statusOf(a)).host).factsCollectedAt !== null, 30_000, () => `facts never collected:\n${a.agent.output}`);
  return host;
}

describe('host facts', { timeout: 120_000 }, () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  async function agentWith(config: Record<string, unknown>, env: Record<string, string> = {}): Promise<ApiAgent> {
    const a = await startApiAgent({ config, env });
    cleanup.push(async () => {
      await a.agent.stop();
      removeDir(a.agent.dir);
    });
    return a;
  }

  function stackFor(compose: 'docker compose' | 'docker-compose'): Record<string, unknown> {
    // A compose project on disk is all the stack needs to know its CLI (the supervisor
    // still starts its one service, so it is taken down after).
    const stack = TestStack.unique('facts', { web: {} });
    cleanup.push(async () => {
      await stack.down();
      removeDir(stack.dir);
    });
    return { project: stack.project, dir: stack.dir, compose };
  }

  it('status.get and /health answer at once while facts are still being collected; then the facts are this machine', async () => {
    requireDocker();
    const a = await agentWith({ host: { name: 'facts-v2' }, stack: stackFor('docker compose') }, { DECKHAND_FAILPOINT_HOST_FACTS_DELAY_MS: '4000' });

    let t0 = Date.now();
    const early = await statusOf(a);
    const statusMs = Date.now() - t0;
    t0 = Date.now();
    const health = await a.agent.get('/health');
    const healthMs = Date.now() - t0;
    assert.equal(early.host.factsCollectedAt, null, 'the delayed collection is still under way');
    assert.ok(statusMs < 1500 && healthMs < 1000, `status.get ${statusMs} ms, /health ${healthMs} ms`);
    assert.ok([200, 503].includes(health.status));
    // Read without asking anything: there at once.
    assert.equal(early.host.distribution.pretty, osRelease().PRETTY_NAME);
    assert.deepEqual(early.host.docker, { engine: null, api: null, compose: null, composeCli: null });

    const host = await collected(a);
    const rel = osRelease();
    assert.deepEqual(host.distribution, { id: rel.ID, name: rel.NAME, version: rel.VERSION_ID ?? null, codename: rel.VERSION_CODENAME ?? null, pretty: rel.PRETTY_NAME });
    assert.equal(host.os, rel.PRETTY_NAME);
    assert.equal(host.kernel, out('uname', '-r'));
    assert.equal(host.cpu.cores, Number(out('nproc', '--all')));
    assert.equal(host.cpus, host.cpu.cores);
    const lscpuModel = /^Model name:\s+(.+)$/m.exec(out('lscpu'))![1]!.replace(/\((R|TM)\)/g, '').replace(/\s+/g, ' ').trim();
    assert.equal(host.cpu.model, lscpuModel);
    assert.equal(host.memTotal, memTotalBytes());
    assert.deepEqual(host.virtualization, { vm: detectVirt('vm'), container: detectVirt('container') });
    assert.deepEqual(host.docker, {
      engine: out('docker', 'version', '--format', '{{.Server.Version}}'),
      api: out('docker', 'version', '--format', '{{.Server.APIVersion}}'),
      compose: out('docker', 'compose', 'version', '--short').replace(/^v/, ''),
      composeCli: 'docker compose',
    });
    assert.ok(a.agent.logLines().some((l) => l.msg === 'host facts collected'));
  });

  it('compose v1: its own version; no stack: no Docker at all', async () => {
    requireDocker();
    const [v1, bare] = await Promise.all([agentWith({ host: { name: 'facts-v1' }, stack: stackFor('docker-compose') }), agentWith({ host: { name: 'facts-bare' } })]);
    const [h1, hb] = await Promise.all([collected(v1), collected(bare)]);
    assert.equal(h1.docker.compose, out('docker-compose', 'version', '--short'));
    assert.equal(h1.docker.composeCli, 'docker-compose');
    assert.equal(h1.docker.engine, out('docker', 'version', '--format', '{{.Server.Version}}'));
    assert.equal(hb.docker, null);
    assert.equal(hb.kernel, out('uname', '-r'));
  });
});
