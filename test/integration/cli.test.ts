// The built CLI (dist/deckhand.js, copied alone into an empty directory to
// prove it needs nothing else) as a process, against the real agent over real
// TLS: hosts and pins, every read command with and without --json, tokens,
// exit codes 0/1/2/3, the CI environment variables, status --all with an
// unreachable host, logs, and a certificate that changes under a pinned host.
import assert from 'node:assert/strict';
import { release } from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, removeDir, ROOT, startAgent, tempDir, waitFor, type AgentProcess } from '../helpers/agent.js';
import { createToken, makeCert, type ApiAgent } from '../helpers/api.js';
import { requireDocker, TestStack } from '../helpers/stack.js';

const BUILT_CLI = join(ROOT, 'dist/deckhand.js');

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** `SHA256:AB:CD:...`, as the CLI shows fingerprints. */
const shown = (hex: string) => `SHA256:${hex.toUpperCase().match(/../g)!.join(':')}`;

/** An agent that did not get ready, kept so that `after` can stop it and remove its directory. */
let failedStart: AgentProcess | undefined;

/** Like startApiAgent, but the process is not lost when it fails to get ready. */
async function startCliAgent(config: Record<string, unknown>): Promise<ApiAgent> {
  const dir = tempDir('cli-agent');
  const tls = makeCert(dir);
  const port = await freePort();
  const agent = await startAgent({ dir, config: { ...config, api: { listen: `127.0.0.1:${port}`, tls: { cert: tls.cert, key: tls.key } } } });
  try {
    await agent.waitReady();
  } catch (err) {
    failedStart = agent;
    throw err;
  }
  return { agent, url: `wss://127.0.0.1:${port}/v1`, tls, port, token: (name, scope) => createToken(agent.configFile, name, scope) };
}

describe('deckhand CLI against a real agent', { timeout: 240_000 }, () => {
  let a: ApiAgent;
  let stack: TestStack;
  let work: string;
  let cli: string;
  let admin: string;
  let reader: string;

  /** A fresh, empty config home per scenario, so hosts files do not leak between tests. */
  const home = (name: string) => {
    const dir = join(work, name);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  const baseEnv = (config: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    HOME: config,
    XDG_CONFIG_HOME: config,
    ...extra,
  });
  const run = (config: string, args: string[], extra: Record<string, string> = {}): Run => {
    const r = spawnSync(process.execPath, [cli, ...args], { cwd: work, env: baseEnv(config, extra), encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const addHost = (config: string, name: string, token: string, fingerprint = a.tls.fingerprint, url = a.url): Run => run(config, ['host', 'add', name, url, '--token', token, '--fingerprint', fingerprint]);

  before(async () => {
    if (!existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run npm run build`);
    requireDocker();
    work = tempDir('cli');
    // The bundle alone, away from the repository's node_modules.
    cli = join(work, 'deckhand.js');
    copyFileSync(BUILT_CLI, cli);
    stack = TestStack.unique('cli', {
      web: { environment: { PORT: String(await freePort()) } },
      talker: { image: 'deckhand-test/busybox:latest', command: ['sh', '-c', 'i=0; while true; do i=$$((i+1)); echo "tick $$i"; sleep 0.2; done'] },
    });
    await stack.up();
    a = await startCliAgent({ host: { name: 'cli-host' }, stack: { project: stack.project, dir: stack.dir } });
    admin = a.token('laptop', 'admin');
    reader = a.token('dashboard', 'read');
  });

  after(async () => {
    await a?.agent.stop();
    await stack?.down();
    if (a) removeDir(a.agent.dir);
    if (failedStart) {
      await failedStart.stop();
      removeDir(failedStart.dir);
    }
    if (stack) removeDir(stack.dir);
    if (work) removeDir(work);
  });

  describe('host add', () => {
    it('without --fingerprint and no terminal: exit 2, the fingerprint and the exact option to add; nothing saved', () => {
      const config = home('refuse');
      const r = run(config, ['host', 'add', 'web-1', a.url, '--token', admin]);
      assert.equal(r.code, 2, r.err);
      assert.ok(r.err.includes(`fingerprint: ${shown(a.tls.fingerprint)}`), r.err);
      assert.ok(r.err.includes(`--fingerprint ${shown(a.tls.fingerprint)}`), r.err);
      assert.ok(!r.err.includes(admin), 'the token is not echoed');
      assert.equal(existsSync(join(config, 'deckhand', 'hosts.json')), false);
    });

    it('with --fingerprint (any spelling): pin and token checked, saved 0600', () => {
      const config = home('add');
      const r = run(config, ['host', 'add', 'web-1', `127.0.0.1:${a.port}`, '--token', admin, '--fingerprint', a.tls.fingerprint.toUpperCase()]);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out, `added web-1 (${a.url}), certificate pinned: ${shown(a.tls.fingerprint)}\n`);
      const file = join(config, 'deckhand', 'hosts.json');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { hosts: { 'web-1': { url: a.url, token: admin, fingerprint: a.tls.fingerprint } } });
      const list = run(config, ['host', 'list', '--json']);
      assert.deepEqual(JSON.parse(list.out).hosts, [{ name: 'web-1', url: a.url, fingerprint: a.tls.fingerprint, pinned: true }]);
      assert.ok(!list.out.includes(admin));
    });

    it('a wrong token is refused at add time: exit 3 with the fix, nothing saved', () => {
      const config = home('add-wrong-token');
      const r = addHost(config, 'web-1', 'dh_not-a-real-token');
      assert.equal(r.code, 3);
      assert.match(r.err, /token rejected by web-1: create one with `deckhand-agent token create --name NAME --scope read` on the server/);
      assert.equal(existsSync(join(config, 'deckhand', 'hosts.json')), false);
    });
  });

  describe('read commands', () => {
    let config: string;
    before(() => {
      config = home('reads');
      assert.equal(addHost(config, 'web-1', admin).code, 0);
    });

    it('status: human and --json', () => {
      const human = run(config, ['status']);
      assert.equal(human.code, 0, human.err);
      // The host header (it wraps at the terminal width): name, then the facts, the box's uptime last.
      const header = human.out.split('\nagent ')[0]!;
      assert.match(header, /^web-1 \(cli-host\) {2}\S/);
      assert.match(header, new RegExp(`kernel ${release().replace(/[.+]/g, '\\$&')}`));
      assert.match(header, /· up \d/);
      assert.match(human.out, /\nagent \d+\.\d+\.\d+, up [^\n]* \(Node\.js v\d+\.\d+\.\d+\)\n/);
      assert.match(human.out, /\nhealth {2}(PASS|WARN|FAIL)\n/);
      assert.match(human.out, /\nservices {2}\d\/2 running\n {2}SERVICE +STATE +HEALTH +RESTARTS +UP\n/);
      assert.match(human.out, /\nresources {2}/);
      assert.ok(!human.out.includes('\x1b['), 'no colour in a pipe');
      const json = run(config, ['status', '--json']);
      assert.equal(json.code, 0);
      const doc = JSON.parse(json.out);
      assert.equal(doc.host.name, 'cli-host');
      assert.deepEqual(doc.services.map((s: { service: string }) => s.service).sort(), ['talker', 'web']);
    });

    it('ps: human and --json', async () => {
      await waitFor(() => /talker +running/.test(run(config, ['ps']).out), 20_000, () => 'talker running');
      const human = run(config, ['ps']);
      assert.match(human.out, /^SERVICE +STATE +HEALTH +RESTARTS +UP +IMAGE\n/);
      assert.match(human.out, /\ntalker +running +- +\d+ +\S.* +deckhand-test\/busybox/);
      const doc = JSON.parse(run(config, ['ps', '--json']).out);
      assert.ok(doc.services.some((s: { service: string; state: string }) => s.service === 'web'));
    });

    it('metrics: a series as plain numbers in a pipe, --json, the list of series, an unknown one is exit 1', async () => {
      await waitFor(() => (JSON.parse(run(config, ['metrics', 'cpu', '--since', '10m', '--json']).out).points?.length ?? 0) >= 2, 20_000, () => 'two CPU samples');
      const plain = run(config, ['metrics', 'cpu', '--since', '10m']);
      assert.equal(plain.code, 0, plain.err);
      assert.match(plain.out, /^host\.cpu on web-1, last 10m \(step raw, \d+ points\)\nTIME +MIN \(%\) +AVG \(%\) +MAX \(%\)\n\d{4}-\d\d-\d\dT[\d:.]+Z +[\d.]+ +[\d.]+ +[\d.]+\n/);
      const mem = JSON.parse(run(config, ['metrics', 'mem', '--since', '10m', '--json']).out);
      assert.equal(mem.series, 'host.mem.used');
      assert.ok(mem.points[0][2] > 0);
      const net = JSON.parse(run(config, ['metrics', 'net', '--json']).out);
      assert.deepEqual([net.rx.series, net.tx.series], ['host.net.rx', 'host.net.tx']);
      const list = run(config, ['metrics']);
      assert.match(list.out, /^host\.cpu$/m);
      assert.match(list.out, /^host\.disk\.used:\/$/m);
      const unknown = run(config, ['metrics', 'host.disk.used:/nope']);
      assert.equal(unknown.code, 1);
      assert.match(unknown.err, /keeps no series host\.disk\.used:\/nope; did you mean host\.disk\.used:\//);
      assert.equal(run(config, ['metrics', 'cpu', '--since', 'last tuesday']).code, 2);
    });

    it('events: human and --json, with --type and --limit', () => {
      const json = run(config, ['events', '--json', '--limit', '50']);
      assert.equal(json.code, 0, json.err);
      const doc = JSON.parse(json.out);
      assert.ok(Array.isArray(doc.events));
      assert.ok(doc.events.some((e: { type: string }) => e.type === 'agent.started'), json.out);
      const human = run(config, ['events', '--type', 'agent.started']);
      assert.equal(human.code, 0);
      assert.match(human.out, /^WHEN +SEVERITY +TYPE +SUBJECT +MESSAGE\n.*agent\.started/);
    });

    it('logs: `service | text` lines that end; -f until SIGINT, exit 130', async () => {
      await waitFor(() => run(config, ['logs', 'talker', '--tail', '3']).out.split('\n').filter(Boolean).length === 3, 15_000, () => 'three talker lines');
      const tail = run(config, ['logs', 'talker', '--tail', '3']);
      assert.equal(tail.code, 0, tail.err);
      assert.match(tail.out, /^(talker \| tick \d+\n){3}$/);
      const json = run(config, ['logs', 'talker', '--tail', '2', '--json']);
      assert.deepEqual(
        json.out.trimEnd().split('\n').map((l) => JSON.parse(l).service),
        ['talker', 'talker'],
      );

      const child = spawn(process.execPath, [cli, 'logs', 'talker', '-f', '--tail', '0'], { env: baseEnv(config), stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
      await waitFor(() => (out.match(/talker \| tick/g) ?? []).length >= 3, 15_000, () => `live lines, got: ${out}`);
      const t0 = Date.now();
      child.kill('SIGINT');
      assert.equal(await exited, 130);
      assert.ok(Date.now() - t0 < 2500, 'Ctrl-C ends promptly');
    });
  });

  describe('tokens and scopes', () => {
    it('create (alone on stdout), use, list, revoke; a revoked token is exit 3', () => {
      const config = home('tokens');
      assert.equal(addHost(config, 'web-1', admin).code, 0);
      const created = run(config, ['token', 'create', 'ci-deploy', '--scope', 'read']);
      assert.equal(created.code, 0, created.err);
      const token = created.out.trim();
      assert.match(created.out, /^dh_[A-Za-z0-9_-]+\n$/);
      assert.match(created.err, /shown only this once/);

      const ci = { DECKHAND_URL: a.url, DECKHAND_TOKEN: token, DECKHAND_FINGERPRINT: shown(a.tls.fingerprint) };
      assert.equal(run(home('ci-env'), ['status', '--json'], ci).code, 0);

      const list = run(config, ['token', 'list']);
      assert.match(list.out, /^NAME +SCOPE +CREATED +LAST USED\n/);
      assert.match(list.out, /\nci-deploy +read +(just now|\d+ s ago) +(just now|\d+ s ago)\n/);
      assert.ok(JSON.parse(run(config, ['token', 'list', '--json']).out).tokens.some((t: { name: string }) => t.name === 'ci-deploy'));

      assert.equal(run(config, ['token', 'revoke', 'ci-deploy']).code, 0);
      const refused = run(home('ci-env'), ['status'], ci);
      assert.equal(refused.code, 3);
      assert.match(refused.err, /token rejected by 127\.0\.0\.1:\d+: create one with `deckhand-agent token create --name NAME --scope read` on the server, then set DECKHAND_TOKEN/);
      const again = run(config, ['token', 'revoke', 'ci-deploy']);
      assert.equal(again.code, 1);
      const json = JSON.parse(run(config, ['token', 'create', 'x', '--scope', 'read', '--json']).out);
      assert.equal(json.name, 'x');
      assert.match(json.token, /^dh_/);
    });

    it('a read token calling token.create: exit 3 naming the scope needed; --json error document', () => {
      const config = home('reader');
      assert.equal(addHost(config, 'ro', reader).code, 0);
      const r = run(config, ['token', 'create', 'sneaky', '--scope', 'admin']);
      assert.equal(r.code, 3);
      assert.match(r.err, /token lacks the scope to create the token sneaky on ro \(needs admin, this token is read\)/);
      const json = run(config, ['token', 'list', '--json']);
      assert.equal(json.code, 3);
      assert.equal(JSON.parse(json.out).error.code, -32003);
      assert.equal(run(config, ['status']).code, 0, 'reading is fine');
    });
  });

  describe('choosing a host, CI variables, usage errors', () => {
    it('an unknown host is exit 2; several hosts need -H', () => {
      const config = home('choose');
      assert.equal(addHost(config, 'web-1', admin).code, 0);
      assert.equal(addHost(config, 'web-2', reader).code, 0);
      const unknown = run(config, ['status', '-H', 'nope']);
      assert.equal(unknown.code, 2);
      assert.match(unknown.err, /no host named "nope"/);
      assert.equal(run(config, ['status']).code, 2);
      assert.equal(run(config, ['ps', '-H', 'web-2']).code, 0);
      assert.equal(run(config, ['ps'], { DECKHAND_HOST: 'web-2' }).code, 0);
      assert.equal(run(config, ['frobnicate']).code, 2);
      assert.equal(run(config, ['host', 'add', 'bad/name', a.url, '--token', admin]).code, 2);
    });

    it('DECKHAND_URL + DECKHAND_TOKEN + DECKHAND_FINGERPRINT work without a hosts file; a wrong token is exit 3', () => {
      const config = home('ci');
      const ci = { DECKHAND_URL: a.url, DECKHAND_TOKEN: reader, DECKHAND_FINGERPRINT: a.tls.fingerprint };
      const r = run(config, ['ps', '--json'], ci);
      assert.equal(r.code, 0, r.err);
      assert.ok(JSON.parse(r.out).services.length === 2);
      assert.equal(existsSync(join(config, 'deckhand')), false);
      const wrong = run(config, ['status'], { ...ci, DECKHAND_TOKEN: 'dh_wrong' });
      assert.equal(wrong.code, 3);
      assert.match(wrong.err, /token rejected by/);
      const unpinned = run(config, ['status'], { DECKHAND_URL: a.url, DECKHAND_TOKEN: reader });
      assert.equal(unpinned.code, 3, 'a self-signed certificate needs the pin');
      assert.ok(unpinned.err.includes(`DECKHAND_FINGERPRINT=${shown(a.tls.fingerprint)}`), unpinned.err);
    });

    it('status --all: one row per host, the unreachable one marked, exit 3', async () => {
      const config = home('all');
      assert.equal(addHost(config, 'web-1', admin).code, 0);
      assert.equal(addHost(config, 'web-2', reader).code, 0);
      const file = join(config, 'deckhand', 'hosts.json');
      const hosts = JSON.parse(readFileSync(file, 'utf8'));
      hosts.hosts['web-3'] = { url: `wss://127.0.0.1:${await freePort()}/v1`, token: 'x', fingerprint: a.tls.fingerprint };
      writeFileSync(file, JSON.stringify(hosts), { mode: 0o600 });
      const t0 = Date.now();
      const r = run(config, ['status', '--all']);
      assert.equal(r.code, 3);
      assert.ok(Date.now() - t0 < 15_000);
      const lines = r.out.trimEnd().split('\n');
      assert.match(lines[0]!, /^HOST +HEALTH +SERVICES +CPU +MEM +DISK +ALERTS$/);
      assert.match(lines[1]!, /^web-1 +(pass|warn|fail) +\d\/2 +[\d.]+% +[\d.]+% +[\d.]+% +\d+$/);
      assert.match(lines[2]!, /^web-2 +(pass|warn|fail) +\d\/2 /);
      assert.equal(lines[3], 'web-3  unreachable (connection refused)');
      assert.match(r.err, /web-3: cannot connect to wss:\/\/127\.0\.0\.1:\d+\/v1 \(host web-3\): connection refused/);
      const json = JSON.parse(run(config, ['status', '--all', '--json']).out);
      assert.deepEqual(
        json.hosts.map((h: { name: string; ok: boolean }) => `${h.name}:${h.ok}`),
        ['web-1:true', 'web-2:true', 'web-3:false'],
      );
      delete hosts.hosts['web-3'];
      writeFileSync(file, JSON.stringify(hosts), { mode: 0o600 });
      assert.equal(run(config, ['status', '--all']).code, 0, 'all reachable: exit 0');
    });
  });

  describe('a certificate that changes under a pinned host', () => {
    let restarted: AgentProcess | undefined;
    let next: ReturnType<typeof makeCert>;
    after(async () => {
      await restarted?.stop();
    });

    it('is refused loudly (exit 3) before the token is sent; re-adding with the new pin works', async () => {
      const config = home('changed');
      assert.equal(addHost(config, 'web-1', admin).code, 0);

      // The same address, a new certificate: the agent restarted with a replaced key pair.
      await a.agent.stop();
      next = makeCert(a.agent.dir, 'replaced');
      restarted = await startAgent({
        dir: a.agent.dir,
        config: {
          host: { name: 'cli-host' },
          stack: { project: stack.project, dir: stack.dir },
          api: { listen: `127.0.0.1:${a.port}`, tls: { cert: next.cert, key: next.key } },
        },
        // Failed authentications are written as counts when their window closes: a short one, so one would show below.
        env: { DECKHAND_AUTH_AUDIT_WINDOW_MS: '300' },
      });
      await restarted.waitReady();
      // What is audited of failed authentications before the refused attempt (the old agent wrote its counts as it stopped).
      const fresh = createToken(restarted.configFile, 'after-restart', 'admin');
      const check = { DECKHAND_URL: a.url, DECKHAND_TOKEN: fresh, DECKHAND_FINGERPRINT: next.fingerprint };
      const failedAuths = () =>
        (JSON.parse(run(home('changed-check'), ['events', '--type', 'audit', '--limit', '1000', '--json'], check).out).events as { subject?: string; data?: { count?: number } }[])
          .filter((e) => e.subject === 'auth')
          .reduce((n, e) => n + (e.data?.count ?? 1), 0);
      const failedAuthBefore = failedAuths();

      const r = run(config, ['status']);
      assert.equal(r.code, 3);
      assert.match(r.err, /WARNING: THE AGENT CERTIFICATE HAS CHANGED!/);
      assert.ok(r.err.includes(`pinned:    ${shown(a.tls.fingerprint)}`), r.err);
      assert.ok(r.err.includes(`presented: ${shown(next.fingerprint)}`), r.err);
      assert.match(r.err, /the token did not leave this machine/);

      // The agent saw no attempt at all: no failed authentication was audited (past the window).
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(failedAuths(), failedAuthBefore);

      assert.equal(run(config, ['host', 'remove', 'web-1']).code, 0);
      assert.equal(addHost(config, 'web-1', admin, next.fingerprint).code, 0);
      assert.equal(run(config, ['status']).code, 0);
    });

    it('after repeated failed tokens the agent answers 429: exit 3, wait a minute', () => {
      // Last on purpose: 127.0.0.1 is then refused by this agent for a minute.
      const config = home('ratelimit');
      const attempt = (i: number) => run(config, ['status'], { DECKHAND_URL: a.url, DECKHAND_TOKEN: `dh_wrong_${i}`, DECKHAND_FINGERPRINT: next.fingerprint });
      for (let i = 0; i < 10; i++) assert.match(attempt(i).err, /token rejected/);
      const last = attempt(10);
      assert.equal(last.code, 3);
      assert.match(last.err, /too many failed attempts; wait a minute/);
    });
  });
});
