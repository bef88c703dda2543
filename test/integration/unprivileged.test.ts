// The agent as the unit runs it: system user deckhand in group docker, not
// root, against a stack directory root owns and shares with the agent's
// group, as an installer sets it up. --ref in a checkout another user owns,
// .env keeping its owner, group and mode through a deploy and a rollback, and
// the errors an operator has to fix (a stack dir the agent may not write)
// saying exactly what to run.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, readFileSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_USER, freePort, removeDir, systemUser, waitFor } from '../helpers/agent.js';
import { connect, startApiAgent, type ApiAgent, type RpcClient } from '../helpers/api.js';
import { composeVersion } from '../helpers/compose.js';
import { requireDocker, TestStack } from '../helpers/stack.js';

const hostWeb = (tag: string) => `version: "2.4"
services:
  web:
    image: "deckhand-test/web:\${WEB_TAG:-${tag}}"
    network_mode: host
    init: true
    labels: { deckhand.test: "1" }
    environment:
      PORT: "\${WEB_PORT}"
      WEB_HEALTHY: "\${WEB_HEALTHY:-1}"
`;

const ownership = (st: Stats) => ({ uid: st.uid, gid: st.gid, mode: (st.mode & 0o7777).toString(8) });

describe(`the agent as user ${AGENT_USER} (group docker), not root`, { timeout: 300_000 }, () => {
  const agentUser = systemUser(AGENT_USER);
  let stack: TestStack;
  let port: number;
  let a: ApiAgent;
  let c: RpcClient;
  let envFile: string;
  const git = (...args: string[]) => execFileSync('git', ['-C', stack.dir, '-c', 'user.email=t@example.com', '-c', 'user.name=t', ...args], { encoding: 'utf8' }).trim();
  const version = async () => (await (await fetch(`http://127.0.0.1:${port}/version`, { signal: AbortSignal.timeout(3000) })).text()).trim();

  async function deploy(params: object): Promise<{ ok: boolean; deploy: any }> {
    const r = await c.call('deploy.start', params);
    assert.ok(r.result?.stream, JSON.stringify(r));
    const id = r.result.stream;
    await waitFor(() => c.notifications.some((n) => n.stream === id && n.event.type === 'end'), 120_000, () => 'deploy to end');
    const end = c.notifications.filter((n) => n.stream === id).at(-1).event;
    return { ok: end.ok, deploy: end.deploy };
  }

  before(async () => {
    requireDocker();
    for (const v of ['2', '3']) execFileSync('bash', ['scripts/test-env.sh', 'web-image', v, `v${v}`], { stdio: 'ignore' });
    stack = TestStack.unique('unpriv', {});
    port = await freePort();
    envFile = join(stack.dir, '.env');
    // A checkout root owns, shared with the agent's group (git's own way: --shared=group).
    writeFileSync(join(stack.dir, 'compose.yaml'), hostWeb('latest'));
    writeFileSync(join(stack.dir, '.gitignore'), '.env\n');
    git('init', '-q', '--shared=group');
    git('add', 'compose.yaml', '.gitignore');
    git('commit', '-qm', 'v1');
    writeFileSync(join(stack.dir, 'compose.yaml'), hostWeb('v2'));
    git('commit', '-qam', 'v2');
    git('tag', 'release-2');
    git('checkout', '-q', 'HEAD~1');
    writeFileSync(envFile, `WEB_PORT=${port}\n`);
    // Secrets: not for "other" (startAgent then adds only the group's write bit).
    chmodSync(envFile, 0o640);
    await stack.up();
    // startAgent shares the stack dir with the agent's group; the .env is then root:deckhand 0660.
    a = await startApiAgent({ config: { stack: { project: stack.project, dir: stack.dir, deploy: { healthTimeout: '20s', stableFor: '1s', watch: '2s' } } } });
    c = await connect(a.url, a.token('ops', 'operate'));
    await waitFor(async () => (await a.agent.get('/health')).json().checks['service:web']?.[0]?.status === 'pass', 30_000, () => 'stack healthy');
  });

  after(async () => {
    c?.close();
    await a?.agent.stop();
    await stack?.down();
    if (a) removeDir(a.agent.dir);
    if (stack) removeDir(stack.dir);
  });

  it(`runs as ${AGENT_USER} with group docker among its groups, and with this run's compose`, async () => {
    const status = readFileSync(`/proc/${a.agent.child.pid}/status`, 'utf8');
    assert.equal(/^Uid:\s+(\d+)/m.exec(status)?.[1], String(agentUser.uid));
    const dockerGid = statSync('/var/run/docker.sock').gid;
    assert.ok(/^Groups:(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).includes(String(dockerGid)), status);
    assert.equal(statSync(envFile).uid, 0, 'the stack dir stays root\'s');
  });

  it('--ref checks out a commit in a checkout root owns (git would call it dubious ownership)', async () => {
    const before = git('rev-parse', 'HEAD');
    const r = await deploy({ ref: 'release-2' });
    assert.equal(r.deploy.result, 'succeeded', JSON.stringify(r.deploy));
    assert.equal(r.deploy.ref.before, before);
    assert.equal(git('rev-parse', 'HEAD'), git('rev-parse', 'release-2^{commit}'));
    assert.equal(await version(), '2');
    // The agent's own compose recreated the container: its label names this run's compose version.
    const label = (await stack.docker('inspect', '-f', '{{index .Config.Labels "com.docker.compose.version"}}', await stack.containerId('web'))).trim();
    assert.match(label, composeVersion() === 'v1' ? /^1\./ : /^2\./);
  });

  it('.env keeps its owner, group and mode through a deploy --set and through its rollback', async () => {
    const was = ownership(statSync(envFile));
    assert.deepEqual(was, { uid: 0, gid: agentUser.gid, mode: '660' });
    const good = await deploy({ env: { WEB_TAG: 'v3' } });
    assert.equal(good.deploy.result, 'succeeded', JSON.stringify(good.deploy));
    assert.equal(await version(), '3');
    assert.match(readFileSync(envFile, 'utf8'), /^WEB_TAG=v3$/m);
    assert.deepEqual(ownership(statSync(envFile)), was, 'after the deploy');
    const content = readFileSync(envFile, 'utf8');
    const bad = await deploy({ env: { WEB_TAG: 'v2', WEB_HEALTHY: '0' } });
    assert.equal(bad.deploy.result, 'rolled_back', JSON.stringify(bad.deploy));
    assert.equal(readFileSync(envFile, 'utf8'), content, 'the rollback put the content back');
    assert.deepEqual(ownership(statSync(envFile)), was, 'after the rollback');
    assert.equal(await version(), '3');
  });

  it('a deploy --set into a stack dir the agent may not write fails saying what to run, and changes nothing', async () => {
    // As if nobody had shared the checkout with the agent: root:root, 0755 / 0644.
    chownSync(stack.dir, 0, 0);
    chmodSync(stack.dir, 0o755);
    chownSync(envFile, 0, 0);
    chmodSync(envFile, 0o644);
    const content = readFileSync(envFile, 'utf8');
    const running = await version();
    const id = await stack.containerId('web');
    const startedAt = (await stack.docker('inspect', '-f', '{{.State.StartedAt}}', id)).trim();
    const r = await deploy({ env: { WEB_TAG: 'v2' } });
    assert.equal(r.deploy.result, 'failed', JSON.stringify(r.deploy));
    assert.equal(
      r.deploy.error,
      `env: cannot write ${envFile}: the agent runs as user ${AGENT_USER} (group ${AGENT_USER}) and may not write it; ` +
        `let it with: chgrp ${AGENT_USER} ${envFile} && chmod g+w ${envFile}`,
    );
    assert.equal(readFileSync(envFile, 'utf8'), content);
    assert.deepEqual(ownership(statSync(envFile)), { uid: 0, gid: 0, mode: '644' });
    assert.equal(await stack.containerId('web'), id, 'the running container untouched');
    assert.equal((await stack.docker('inspect', '-f', '{{.State.StartedAt}}', id)).trim(), startedAt);
    assert.equal(await version(), running);
  });

  it('a --ref into a checkout the agent may not write fails saying what to run, and changes nothing', async () => {
    // The checkout as root left it when nobody shared it: root:root, readable, not writable by others.
    execFileSync('chown', ['-R', 'root:root', join(stack.dir, '.git')]);
    execFileSync('chmod', ['-R', 'go-w,o+rX', join(stack.dir, '.git')]);
    const head = git('rev-parse', 'HEAD');
    const r = await deploy({ ref: 'HEAD~1' });
    assert.equal(r.deploy.result, 'failed', JSON.stringify(r.deploy));
    assert.match(r.deploy.error, /^checkout: .*[Pp]ermission denied/);
    assert.ok(
      r.deploy.error.endsWith(`the agent runs as user ${AGENT_USER} (group ${AGENT_USER}) and may not change the checkout in ${stack.dir}: let it with: chgrp -R ${AGENT_USER} ${stack.dir} && chmod -R g+w ${stack.dir}`),
      r.deploy.error,
    );
    assert.equal(git('rev-parse', 'HEAD'), head, 'the checkout is where it was');
    // Not even readable: git would only say "not a git repository".
    execFileSync('chmod', ['-R', 'o-rwx', join(stack.dir, '.git')]);
    const unreadable = await deploy({ ref: 'HEAD~1' });
    assert.equal(
      unreadable.deploy.error,
      `checkout: ${join(stack.dir, '.git')} exists but the agent runs as user ${AGENT_USER} (group ${AGENT_USER}) and may not read it: let it with: chgrp -R ${AGENT_USER} ${stack.dir} && chmod -R g+rwX ${stack.dir}`,
    );
  });
});

// A user not in group docker: `run` (and `check-config`) refuse at start with
// exit 2, naming the user and the usermod that fixes it, before any duty
// starts: test/integration/check-config.test.ts.

