// The real Docker engine restarted under a running agent: dockerd stops every
// container on the way down and, without a restart policy, starts none on the
// way up. deckhand notices the engine leave and return, without restarting
// itself, and brings the stack back.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { freePort, removeDir, ROOT, waitFor } from '../helpers/agent.js';
import { connect, startApiAgent, type ApiAgent } from '../helpers/api.js';
import { requireDocker, TestStack } from '../helpers/stack.js';

describe('engine restart', { timeout: 180_000 }, () => {
  let stack: TestStack | undefined;
  let a: ApiAgent | undefined;
  after(async () => {
    await a?.agent.stop();
    await stack?.down();
    if (a) removeDir(a.agent.dir);
    if (stack) removeDir(stack.dir);
  });

  it('dockerd restarted: engine reported down then up, the stack running again, the agent never restarted', async () => {
    requireDocker();
    stack = TestStack.unique('dockerd', { web: { environment: { PORT: String(await freePort()) } }, api: { environment: { PORT: String(await freePort()) } } });
    await stack.up();
    a = await startApiAgent({ config: { stack: { project: stack.project, dir: stack.dir } } });
    const health = async () => (await a!.agent.get('/health')).json();
    await waitFor(async () => (await health()).status === 'pass', 30_000, () => 'healthy before');

    execFileSync('bash', [join(ROOT, 'scripts/test-env.sh'), 'engine-restart'], { stdio: 'ignore', timeout: 120_000 });

    await waitFor(async () => {
      const doc = await health();
      return doc.status === 'pass' && doc.checks['service:web'][0].restarts >= 1 && doc.checks['service:api'][0].restarts >= 1;
    }, 60_000, () => 'the stack back after the engine restart');
    assert.equal(a.agent.child.exitCode, null, 'the agent kept running');
    const c = await connect(a.url, a.token('ev', 'read'));
    const types = (await c.call('events.list', { limit: 100 })).result.events.map((e: any) => e.type);
    assert.ok(types.includes('docker.unreachable') && types.includes('docker.unreachable.resolved'), types.join(', '));
    assert.ok(types.includes('service.restarted'));
    c.close();
  });
});
