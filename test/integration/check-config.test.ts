// check-config is run without side effects: whatever `run` would refuse at
// start, check-config refuses, with its key path, as the user who runs it;
// `run` refuses the same before any duty starts (exit 2), and neither creates
// anything. `audit verify` on a dataDir without a database says so (exit 1)
// and creates nothing. Drives the built agent as the unit's user.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { AGENT_BIN, AGENT_USER, AGENT_USER_NODOCKER, asUserArgv, freePort, removeDir, systemUser, tempDir, userEnv } from '../helpers/agent.js';
import { makeCert } from '../helpers/api.js';
import { requireDocker, TestStack } from '../helpers/stack.js';

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function agentAs(user: string, args: string[]): Run {
  const [file, ...rest] = asUserArgv(user, [process.execPath, AGENT_BIN, ...args]);
  const r = spawnSync(file!, rest, { encoding: 'utf8', env: { ...process.env, ...userEnv(user) }, timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const dirs: string[] = [];
after(() => dirs.forEach(removeDir));

/**
 * A config directory as an installer makes it (root:GROUP 0750, files 0640)
 * with agent.yaml; dataDir defaults to `data` inside a directory the user owns,
 * not yet created (the agent would create it).
 */
function configFor(user: string, sections: Record<string, unknown>, prepare: (dir: string) => void = () => undefined) {
  const u = systemUser(user);
  const dir = tempDir('chk');
  dirs.push(dir);
  const home = join(dir, 'home');
  mkdirSync(home);
  chownSync(home, u.uid, u.gid);
  const config = { dataDir: join(home, 'data'), ...sections };
  const file = join(dir, 'agent.yaml');
  writeFileSync(file, stringify(config));
  prepare(dir);
  for (const name of readdirSync(dir)) {
    if (name === 'home') continue;
    chownSync(join(dir, name), 0, u.gid);
    chmodSync(join(dir, name), 0o640);
  }
  chownSync(dir, 0, u.gid);
  chmodSync(dir, 0o750);
  return { dir, file, dataDir: String(config.dataDir) };
}

const health = async () => ({ listen: `127.0.0.1:${await freePort()}` });

/** check-config and run both exit 2 with exactly these lines, and run started nothing. */
async function assertRefused(user: string, file: string, dataDir: string, lines: string[]): Promise<void> {
  const check = agentAs(user, ['check-config', '--config', file]);
  assert.deepEqual([check.code, check.out, check.err], [2, '', `${lines.join('\n')}\n`], 'check-config');
  const run = agentAs(user, ['run', '--config', file]);
  assert.equal(run.code, 2, `run: ${run.out}${run.err}`);
  assert.equal(run.err, `${lines.join('\n')}\n`, 'run refuses with the same lines');
  assert.doesNotMatch(run.out, /duty started/, 'no duty started');
  assert.equal(existsSync(dataDir), false, 'nothing created: no dataDir');
}

describe('check-config refuses what run would refuse', { timeout: 120_000 }, () => {
  it('a missing config file is named with its path (exit 2)', () => {
    const r = agentAs(AGENT_USER, ['check-config', '--config', '/nonexistent/agent.yaml']);
    assert.deepEqual([r.code, r.out, r.err], [2, '', 'cannot read config: /nonexistent/agent.yaml: file not found\n']);
  });

  it('stack.dir missing, or without a compose file', async () => {
    const missing = configFor(AGENT_USER, { health: await health(), stack: { project: 'chk', dir: '/nonexistent/stack' } });
    await assertRefused(AGENT_USER, missing.file, missing.dataDir, ['stack.dir: /nonexistent/stack does not exist']);
    const emptyDir = tempDir('chk-empty');
    dirs.push(emptyDir);
    chmodSync(emptyDir, 0o755);
    const empty = configFor(AGENT_USER, { health: await health(), stack: { project: 'chk', dir: emptyDir } });
    await assertRefused(AGENT_USER, empty.file, empty.dataDir, [
      `stack.dir: no compose file in ${emptyDir} (looked for compose.yaml, compose.yml, docker-compose.yml, docker-compose.yaml)`,
    ]);
    const named = configFor(AGENT_USER, { health: await health(), stack: { project: 'chk', dir: emptyDir, files: ['prod.yaml'] } });
    await assertRefused(AGENT_USER, named.file, named.dataDir, [`stack.files[0]: ${join(emptyDir, 'prod.yaml')} does not exist`]);
  });

  it('api.tls.cert missing, api.tls.key unreadable by the user', async () => {
    let key = '';
    const c = configFor(AGENT_USER, {}, (dir) => {
      key = makeCert(dir).key;
    });
    // The key is root's alone (0600), as a careless copy leaves it.
    chmodSync(key, 0o600);
    chownSync(key, 0, 0);
    const cert = join(c.dir, 'missing.crt');
    writeFileSync(c.file, stringify({ dataDir: c.dataDir, health: await health(), api: { listen: `127.0.0.1:${await freePort()}`, tls: { cert, key } } }));
    chownSync(c.file, 0, systemUser(AGENT_USER).gid);
    await assertRefused(AGENT_USER, c.file, c.dataDir, [`api.tls.cert: ${cert} does not exist`, `api.tls.key: ${key} is not readable by user ${AGENT_USER}`]);
  });

  it('dataDir not writable by the user running the command', async () => {
    const c = configFor(AGENT_USER, { health: await health() });
    const locked = join(c.dir, 'locked');
    mkdirSync(locked, { mode: 0o755 });
    writeFileSync(c.file, stringify({ dataDir: locked, health: await health() }));
    await assertRefused(AGENT_USER, c.file, join(locked, 'never'), [`dataDir: ${locked} is not writable by user ${AGENT_USER}; run: chown ${AGENT_USER} ${locked}`]);
    assert.deepEqual(readdirSync(locked), [], 'nothing created in it');
    const under = join(locked, 'data');
    writeFileSync(c.file, stringify({ dataDir: under, health: await health() }));
    await assertRefused(AGENT_USER, c.file, under, [
      `dataDir: ${under} does not exist and user ${AGENT_USER} may not create it in ${locked}; create it: mkdir -m 0750 ${under} && chown ${AGENT_USER} ${under}`,
    ]);
  });

  it('the Docker socket not accessible for stack, for a user not in group docker', async () => {
    requireDocker();
    const stack = TestStack.unique('chk', { web: {} });
    dirs.push(stack.dir);
    chmodSync(stack.dir, 0o755);
    const c = configFor(AGENT_USER_NODOCKER, { health: await health(), stack: { project: stack.project, dir: stack.dir } });
    await assertRefused(AGENT_USER_NODOCKER, c.file, c.dataDir, [
      `stack: no access to the Docker socket /var/run/docker.sock (EACCES): the agent runs as user ${AGENT_USER_NODOCKER}, which must be in group docker: ` +
        `usermod -aG docker ${AGENT_USER_NODOCKER}, then restart the agent`,
    ]);
  });

  it('a good config with a stack and the API: exit 0, and nothing created', async () => {
    requireDocker();
    const stack = TestStack.unique('chk', { web: {} });
    dirs.push(stack.dir);
    chmodSync(stack.dir, 0o755);
    let tls = { cert: '', key: '' };
    const c = configFor(AGENT_USER, {}, (dir) => {
      tls = makeCert(dir);
    });
    writeFileSync(c.file, stringify({ dataDir: c.dataDir, health: await health(), api: { listen: `127.0.0.1:${await freePort()}`, tls: { cert: tls.cert, key: tls.key } }, stack: { project: stack.project, dir: stack.dir } }));
    for (const f of [c.file, tls.cert, tls.key]) {
      chownSync(f, 0, systemUser(AGENT_USER).gid);
      chmodSync(f, 0o640);
    }
    const r = agentAs(AGENT_USER, ['check-config', '--config', c.file]);
    assert.deepEqual([r.code, r.out, r.err], [0, `${c.file}: ok\n`, '']);
    assert.equal(existsSync(c.dataDir), false, 'check-config created no dataDir');
  });
});

describe('check-config warns about what a duty will need later', { timeout: 60_000 }, () => {
  it('a missing webroot, an unreadable caBundle, a hook that is not executable: exit 0 with one warning line each; run starts and logs them', async () => {
    const c = configFor(AGENT_USER, { health: await health() });
    const webroot = join(c.dir, 'no-such-www');
    const bundle = join(c.dir, 'root-only-ca.pem');
    writeFileSync(bundle, 'x');
    chmodSync(bundle, 0o600);
    const hook = join(c.dir, 'hook.sh');
    writeFileSync(hook, '#!/bin/sh\n');
    chmodSync(hook, 0o644);
    const certs = (challenge: Record<string, unknown>) => ({ email: 'ops@example.com', directory: 'https://127.0.0.1:1/dir', caBundle: bundle, challenge, certificates: [{ name: 'main', domains: ['a.test'] }] });
    const tail = '; certificate orders will fail until it is fixed';
    const me = AGENT_USER;

    writeFileSync(c.file, stringify({ dataDir: c.dataDir, health: await health(), certs: certs({ type: 'http-01', webroot }) }));
    chownSync(c.file, 0, systemUser(me).gid);
    let r = agentAs(me, ['check-config', '--config', c.file]);
    assert.deepEqual([r.code, r.out, r.err], [0, `${c.file}: ok (2 warnings)\n`, `warning: certs.challenge.webroot: ${webroot} does not exist${tail}\nwarning: certs.caBundle: ${bundle} is not readable by user ${me}${tail}\n`]);

    writeFileSync(c.file, stringify({ dataDir: c.dataDir, health: await health(), certs: certs({ type: 'dns-01', hook }) }));
    chownSync(c.file, 0, systemUser(me).gid);
    r = agentAs(me, ['check-config', '--config', c.file]);
    assert.equal(r.code, 0);
    assert.match(r.err, new RegExp(`^warning: certs.challenge.hook: ${hook} is not executable by user ${me}`));

    // run is not refused for it: the agent starts (and is stopped at once by the timeout).
    const [file, ...rest] = asUserArgv(me, [process.execPath, AGENT_BIN, 'run', '--config', c.file]);
    const run = spawnSync(file!, rest, { encoding: 'utf8', env: { ...process.env, ...userEnv(me) }, timeout: 4000, killSignal: 'SIGTERM' });
    assert.match(run.stdout, /"level":40[^\n]*certs\.challenge\.hook: .* is not executable/, run.stdout + run.stderr);
    assert.match(run.stdout, /duty started/);
  });
});

describe('audit verify without a database', () => {
  it('says so, exit 1, and creates nothing', async () => {
    const c = configFor(AGENT_USER, { health: await health() });
    const r = agentAs('root', ['audit', 'verify', '--config', c.file]);
    assert.equal(r.code, 1);
    assert.equal(r.err, `deckhand-agent: no database at ${join(c.dataDir, 'deckhand.db')}: the agent has not run with dataDir ${c.dataDir}, so there is no audit log to verify\n`);
    assert.equal(existsSync(c.dataDir), false, 'no dataDir created');
  });
});
