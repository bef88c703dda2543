import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { composeMigrate, composePull, composeUp, gitCheckout, gitFetch, gitHead, gitIsRepo, gitRemotes, gitResolve, keepTag } from '../../agent/duties/deploy/commands.js';
import { applyEnvChanges, writeFileAtomic } from '../../agent/duties/deploy/envfile.js';
import { evaluate } from '../../agent/duties/deploy/gate.js';
import { COMPOSE_V1, COMPOSE_V2 } from '../../agent/duties/stack/compose.js';

describe('.env changes', () => {
  it('replaces keys in place, appends new ones, keeps comments and blank lines', () => {
    const before = '# app settings\nWEB_TAG=v1\n\nexport DB_URL=postgres://x\nOTHER=1\n';
    assert.equal(applyEnvChanges(before, { WEB_TAG: 'v2', NEW: 'yes', DB_URL: 'postgres://y' }), '# app settings\nWEB_TAG=v2\n\nDB_URL=postgres://y\nOTHER=1\nNEW=yes\n');
  });
  it('quotes values that need it', () => {
    assert.equal(applyEnvChanges(null, { A: 'has space', B: 'say "hi"', C: 'plain-1.2:3/x@y' }), 'A="has space"\nB="say \\"hi\\""\nC=plain-1.2:3/x@y\n');
  });
  it('writes atomically, mode 0600, leaving no temp file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dh-env-'));
    try {
      const f = join(dir, '.env');
      writeFileAtomic(f, 'A=1\n');
      writeFileAtomic(f, 'A=2\n');
      assert.equal(readFileSync(f, 'utf8'), 'A=2\n');
      assert.equal(statSync(f).mode & 0o777, 0o600);
      assert.deepEqual(readdirSync(dir), ['.env']);
      writeFileAtomic(f, null);
      assert.deepEqual(readdirSync(dir), [], 'null restores "no .env"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('keeps the owner, group and mode of the file it replaces; a new file takes the directory\'s group (as root, like the suite)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dh-env-'));
    try {
      const f = join(dir, '.env');
      writeFileSync(f, 'A=1\n');
      chownSync(f, 4321, 4322);
      chmodSync(f, 0o640);
      writeFileAtomic(f, 'A=2\n');
      const st = statSync(f);
      assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [4321, 4322, 0o640]);
      assert.equal(readFileSync(f, 'utf8'), 'A=2\n');
      rmSync(f);
      chownSync(dir, 0, 4323);
      writeFileAtomic(f, 'B=1\n');
      const fresh = statSync(f);
      assert.deepEqual([fresh.gid, fresh.mode & 0o7777], [4323, 0o600]);
      assert.deepEqual(readdirSync(dir), ['.env']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy commands as data', () => {
  const p = { project: 'app', dir: '/srv/app' };
  it('up: the whole stack removes orphans; a limited deploy touches only its services', () => {
    assert.deepEqual(composeUp({ ...p, cli: COMPOSE_V2 }, ['web', 'db'], { whole: true }).argv, ['docker', 'compose', '--project-name', 'app', 'up', '--detach', '--no-build', '--remove-orphans']);
    assert.deepEqual(composeUp({ ...p, cli: COMPOSE_V1 }, ['web', 'worker'], { whole: false }).argv, ['docker-compose', '--project-name', 'app', 'up', '--detach', '--no-build', '--no-deps', 'web', 'worker']);
  });
  it('migrate runs a one-off container without a TTY (a TTY corrupts output)', () => {
    assert.deepEqual(composeMigrate({ ...p, cli: COMPOSE_V2 }, 'web', ['alembic', 'upgrade', 'head']).argv, ['docker', 'compose', '--project-name', 'app', 'run', '--rm', '--no-deps', '-T', 'web', 'alembic', 'upgrade', 'head']);
  });
  it('migrate on a host-network service under v1: a copy of the service from the resolved file on stdin, so nothing links to it', () => {
    const resolved = 'services:\n  web:\n    build: {context: /srv/app}\n    container_name: web1\n    network_mode: host\n    ports: ["8080:8080"]\n    depends_on: [db]\n    environment: {DSN: "a$$b"}\n    volumes: ["data:/data"]\n  db:\n    image: postgres\nvolumes:\n  data: {}\n';
    const cmd = composeMigrate({ ...p, cli: COMPOSE_V1 }, 'web', ['migrate', 'up'], resolved);
    assert.deepEqual(cmd.argv, ['docker-compose', '--project-name', 'app', '--file', '-', 'run', '--rm', '--no-deps', '-T', 'web-deckhand-migrate', 'migrate', 'up']);
    assert.equal(cmd.cwd, '/srv/app', 'the project directory, where .env is');
    const file = parseYaml(String(cmd.input)) as { services: Record<string, Record<string, unknown>>; volumes: unknown };
    assert.deepEqual(file.services['web-deckhand-migrate'], { network_mode: 'host', environment: { DSN: 'a$$b' }, volumes: ['data:/data'], image: 'app_web' });
    assert.deepEqual(Object.keys(file.services).sort(), ['db', 'web', 'web-deckhand-migrate']);
    assert.deepEqual(file.volumes, { data: {} }, 'same project, same volumes');
  });
  it('migrate: v2, or a service on its own network, runs the service itself', () => {
    const host = 'services:\n  web:\n    image: app:v2\n    network_mode: host\n';
    const bridge = 'services:\n  web:\n    image: app:v2\n';
    assert.deepEqual(composeMigrate({ ...p, cli: COMPOSE_V2 }, 'web', ['m'], host), { argv: ['docker', 'compose', '--project-name', 'app', 'run', '--rm', '--no-deps', '-T', 'web', 'm'], cwd: '/srv/app', timeoutMs: 1_800_000 });
    assert.deepEqual(composeMigrate({ ...p, cli: COMPOSE_V1 }, 'web', ['m'], bridge).argv, ['docker-compose', '--project-name', 'app', 'run', '--rm', '--no-deps', '-T', 'web', 'm']);
  });
  it('pull names the services whose images come from a registry', () => {
    assert.deepEqual(composePull({ ...p, cli: COMPOSE_V1 }, ['web']).argv.slice(3), ['pull', 'web']);
  });
  it('git: a ref can never be taken for an option', () => {
    assert.deepEqual(gitResolve('/srv/app', '-x').argv, ['git', '-c', 'safe.directory=/srv/app', '-C', '/srv/app', 'rev-parse', '--verify', '--end-of-options', '-x^{commit}']);
    assert.deepEqual(gitCheckout('/srv/app', 'abc123').argv, ['git', '-c', 'safe.directory=/srv/app', '-C', '/srv/app', 'checkout', '--quiet', '--detach', 'abc123']);
  });
  it('git trusts the checkout (owned by another user) for that one invocation, by its absolute path', () => {
    assert.deepEqual(gitRemotes('/srv/app/').argv, ['git', '-c', 'safe.directory=/srv/app', '-C', '/srv/app', 'remote']);
    assert.deepEqual(gitFetch('/srv/./app').argv, ['git', '-c', 'safe.directory=/srv/app', '-C', '/srv/app', 'fetch', '--quiet', '--all', '--tags']);
    for (const cmd of [gitHead('/srv/app'), gitIsRepo('/srv/app'), gitResolve('/srv/app', 'main'), gitCheckout('/srv/app', 'abc'), gitRemotes('/srv/app'), gitFetch('/srv/app')]) {
      assert.deepEqual(cmd.argv.slice(0, 3), ['git', '-c', 'safe.directory=/srv/app']);
    }
  });
  it('keep tags name the project, service and deploy', () => {
    assert.equal(keepTag('app', 'web', 7), 'deckhand-keep/app-web:deploy-7');
  });
});

describe('health gate verdicts', () => {
  const c = (o: Partial<Parameters<typeof evaluate>[1] & object>) => ({ id: 'x', imageId: 'sha256:1', state: 'running', health: undefined, startedAt: 0, ...o });
  it('fails at once on exit, restart or unhealthy; waits for starting; passes on healthy', () => {
    assert.equal(evaluate('web', c({ state: 'exited' }), 0, 1000).kind, 'fail');
    assert.equal(evaluate('web', c({ state: 'restarting' }), 0, 1000).kind, 'fail');
    assert.equal(evaluate('web', c({ health: 'unhealthy' }), 0, 1000).kind, 'fail');
    assert.equal(evaluate('web', c({ health: 'starting' }), 0, 1000).kind, 'pending');
    assert.equal(evaluate('web', c({ health: 'healthy' }), 0, 1000).kind, 'ok');
    assert.equal(evaluate('web', undefined, 0, 1000).kind, 'pending');
  });
  it('without a healthcheck: running for stableFor', () => {
    assert.deepEqual(evaluate('web', c({ startedAt: 10_000 }), 13_000, 10_000), { kind: 'pending', why: 'web: running 3s of 10s' });
    assert.equal(evaluate('web', c({ startedAt: 10_000 }), 20_000, 10_000).kind, 'ok');
  });
  it('stableFor 0s: running is enough, even a moment before the engine says it started; a healthcheck still decides', () => {
    assert.equal(evaluate('web', c({ startedAt: 10_000 }), 10_000, 0).kind, 'ok');
    assert.equal(evaluate('web', c({ startedAt: 10_005 }), 10_000, 0).kind, 'ok');
    assert.equal(evaluate('web', c({ health: 'starting' }), 10_000, 0).kind, 'pending');
    assert.equal(evaluate('web', c({ state: 'created' }), 10_000, 0).kind, 'pending');
    assert.equal(evaluate('web', c({ state: 'exited' }), 10_000, 0).kind, 'fail');
  });
});

import { splitImageRef } from '../../agent/docker/engine.js';

describe('image references', () => {
  it('split into repository and tag, registry ports included', () => {
    assert.deepEqual(splitImageRef('deckhand-test/web:v2'), { repo: 'deckhand-test/web', tag: 'v2' });
    assert.deepEqual(splitImageRef('registry.example.com:5000/team/app'), { repo: 'registry.example.com:5000/team/app', tag: 'latest' });
    assert.deepEqual(splitImageRef('registry.example.com:5000/team/app:1.2'), { repo: 'registry.example.com:5000/team/app', tag: '1.2' });
    assert.deepEqual(splitImageRef('postgres'), { repo: 'postgres', tag: 'latest' });
  });
});
