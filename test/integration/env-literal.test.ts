// .env values set by a deploy reach the container byte for byte, under
// docker-compose v1 and docker compose v2 alike: the agent runs with
// `stack.compose` set to each CLI, deploys tricky values through deploy.start,
// and the test reads them inside the running container. The operator's own
// lines stay as written; a value no .env line can carry is refused before
// anything runs. The same stack (one host-network service without a
// healthcheck, stableFor and watch 0s) runs a migration under each CLI.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { composeMigrate, composeResolved } from '../../agent/duties/deploy/commands.js';
import { COMPOSE_V1, COMPOSE_V2, type ComposeCli } from '../../agent/duties/stack/compose.js';
import { run, runChecked } from '../../agent/exec/runner.js';
import { removeDir, tempDir, waitFor } from '../helpers/agent.js';
import { connect, startApiAgent, type ApiAgent, type RpcClient } from '../helpers/api.js';
import { requireDocker } from '../helpers/stack.js';

const VALUES: Record<string, string> = {
  DOLLAR: 'a$b',
  DOLLAR_NAME: '$HOME and $$ and ${ alone',
  MIXED: `it's $5, "quoted" # not a comment`,
  HASH: 'a # b',
  QUOTES: `'single' and "double"`,
  BACKSLASHES: 'C:\\path\\to\\n\\t and a\\\\b',
  TRAILING_BACKSLASH: 'x"\\',
  SPACES: '  spaced = out  ',
  EQUALS: '==a=b=',
  EMPTY: '',
  UNICODE: 'pässwörd ✓ 日本 🚀',
};

const OPERATOR_LINES = [`# set by hand: keep $this "as is"`, `OPERATOR_DSN='postgres://u:p$w@h/db'`, `export OPERATOR_FLAG=1   # trailing comment`];

const cleanups: (() => Promise<void>)[] = [];
let stacks = 0;
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

interface LiteralEnv {
  project: string;
  dir: string;
  cli: ComposeCli;
  a: ApiAgent;
  c: RpcClient;
}

function composeFile(): string {
  const environment = Object.keys(VALUES).map((k) => `      ${k}: "\${${k}}"`).join('\n');
  return `version: "2.4"
services:
  app:
    image: deckhand-test/busybox:latest
    command: ["sleep", "3600"]
    network_mode: host
    init: true
    labels: { deckhand.test: "1" }
    environment:
${environment}
`;
}

async function makeEnv(cli: ComposeCli, configName: 'docker-compose' | 'docker compose', migrate?: string[]): Promise<LiteralEnv> {
  requireDocker();
  const dir = tempDir('envlit');
  const project = `dhtest-envlit-${process.pid}-${++stacks}`;
  writeFileSync(join(dir, 'compose.yaml'), composeFile());
  writeFileSync(join(dir, '.env'), `${OPERATOR_LINES.join('\n')}\n${Object.keys(VALUES).map((k) => `${k}=before`).join('\n')}\n`);
  const compose = (args: string[]) => runChecked({ argv: [...cli, '--project-name', project, ...args], cwd: dir, timeoutMs: 120_000 });
  await compose(['up', '-d']);
  const a = await startApiAgent({
    config: {
      stack: {
        project,
        dir,
        compose: configName,
        restart: { backoff: '200ms', maxBackoff: '1s', crashloop: { restarts: 5, within: '1m' } },
        deploy: { healthTimeout: '30s', stableFor: '0s', watch: '0s', ...(migrate ? { migrate: { service: 'app', command: migrate } } : {}) },
      },
    },
  });
  const c = await connect(a.url, a.token(`ops${Date.now()}`, 'operate'));
  cleanups.push(async () => {
    c.close();
    await a.agent.stop();
    await compose(['down', '--volumes', '--remove-orphans', '--timeout', '2']).catch(() => undefined);
    removeDir(a.agent.dir);
    removeDir(dir);
  });
  await waitFor(async () => (await a.agent.get('/health')).json().checks['service:app']?.[0]?.status === 'pass', 30_000, () => 'stack healthy');
  return { project, dir, cli, a, c };
}

async function appContainer(project: string): Promise<string> {
  const r = await runChecked({
    argv: ['docker', 'ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=app', '--filter', 'label=com.docker.compose.oneoff=False'],
  });
  const ids = r.stdout.trim().split('\n').filter(Boolean);
  assert.equal(ids.length, 1, `one app container: ${r.stdout}`);
  return ids[0]!;
}

/** The environment as the process inside the container sees it (busybox `env`: one KEY=VALUE a line; no value here holds a newline). */
async function insideContainer(id: string): Promise<Map<string, string>> {
  const r = await runChecked({ argv: ['docker', 'exec', id, 'env'], timeoutMs: 30_000 });
  const lines = r.stdout.split('\n').slice(0, -1);
  return new Map(lines.map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
}

async function deployToEnd(e: LiteralEnv, params: object): Promise<{ ok: boolean; deploy: { result: string; error?: string; envKeys: string[] }; steps: string[] }> {
  const r = await e.c.call('deploy.start', params);
  assert.ok(r.result?.stream, JSON.stringify(r));
  const id = r.result.stream;
  await waitFor(() => e.c.notifications.some((n) => n.stream === id && n.event.type === 'end'), 120_000, () => 'deploy to end');
  const events = e.c.notifications.filter((n) => n.stream === id).map((n) => n.event);
  const end = events.at(-1);
  return { ok: end.ok, deploy: end.deploy, steps: events.filter((x) => x.type === 'step' && x.status === 'ok').map((x) => x.step) };
}

const CLIS: [ComposeCli, 'docker-compose' | 'docker compose'][] = [
  [COMPOSE_V1, 'docker-compose'],
  [COMPOSE_V2, 'docker compose'],
];

for (const [cli, configName] of CLIS) {
  describe(`.env values under ${configName}`, { timeout: 300_000 }, () => {
    it('deploy.start env values reach the container byte for byte; the operator lines stay; a value compose cannot carry is refused', async () => {
      // The deploy also runs a migration on the host-network service (under v1
      // as a copy of the service, from the resolved file the deploy has).
      const e = await makeEnv(cli, configName, ['sh', '-c', 'echo "$DOLLAR"; echo migrated']);
      const before = await appContainer(e.project);

      const refused = await e.c.call('deploy.start', { env: { DOLLAR: 'fine$', PASSWORD: 's3cr3t${HOME}' } });
      assert.equal(refused.error?.code, -32602, JSON.stringify(refused));
      assert.match(refused.error.message, /env\.PASSWORD: contains \$\{\.\.\.\}, which docker-compose v1 expands/);
      assert.ok(!JSON.stringify(refused.error).includes('s3cr3t'), `the value is not echoed: ${JSON.stringify(refused.error)}`);

      const r = await deployToEnd(e, { env: VALUES });
      assert.equal(r.ok, true, JSON.stringify(r.deploy));
      assert.deepEqual([...r.deploy.envKeys].sort(), Object.keys(VALUES).sort());
      assert.ok(r.steps.includes('migrate'), r.steps.join(' '));
      const id = await appContainer(e.project);
      assert.notEqual(id, before, 'the container was recreated with the new values');
      const inside = await insideContainer(id);
      for (const [key, value] of Object.entries(VALUES)) assert.equal(inside.get(key), value, `${key} inside the container`);

      const text = readFileSync(join(e.dir, '.env'), 'utf8');
      assert.ok(text.startsWith(`${OPERATOR_LINES.join('\n')}\n`), `the operator's lines are kept byte for byte:\n${text}`);
      assert.doesNotMatch(text, /=before$/m, 'every key set replaced its old line');
    });

    it('a migration on a network_mode: host service runs while the service is up', async () => {
      const e = await makeEnv(cli, configName);
      const p = { cli, project: e.project, dir: e.dir };
      await deployToEnd(e, { env: { DOLLAR: 'a$b' } });
      const resolved = (await runChecked(composeResolved(p))).stdout;
      const migrated = await runChecked(composeMigrate(p, 'app', ['sh', '-c', 'echo "$DOLLAR"; echo migrated'], resolved));
      assert.match(migrated.stdout, /^a\$b\nmigrated$/m);
      if (configName === 'docker-compose') {
        // What the plain `run` of the service itself does under v1: the reason for the copy.
        const plain = await run(composeMigrate(p, 'app', ['true']));
        assert.notEqual(plain.code, 0);
        assert.match(plain.stderr, /host type networking can't be used with links/);
      }
      const left = await runChecked({ argv: ['docker', 'ps', '-aq', '--filter', `label=com.docker.compose.project=${e.project}`, '--filter', 'label=com.docker.compose.oneoff=True'] });
      assert.equal(left.stdout.trim(), '', 'no one-off container is left');
    });
  });
}
