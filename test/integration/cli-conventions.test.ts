// The CLI's conventions, with the built CLI (dist/deckhand.js) against a real
// agent: -H and --json before or after the subcommand; piped output is never
// cut; Ctrl-C exits 130; messages in the operator's words; a refusal to
// revoke the token the CLI itself uses; `host add` errors that fit a first
// add; metrics whose window follows the data, with units and hints.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, removeDir, ROOT, tempDir, waitFor } from '../helpers/agent.js';
import { makeCert, startApiAgent, type ApiAgent } from '../helpers/api.js';
import { requireDocker, TestStack } from '../helpers/stack.js';

const BUILT_CLI = join(ROOT, 'dist/deckhand.js');

interface Run {
  code: number | null;
  out: string;
  err: string;
}

const shown = (hex: string) => `SHA256:${hex.toUpperCase().match(/../g)!.join(':')}`;

describe('deckhand CLI conventions against a real agent', { timeout: 120_000 }, () => {
  let a: ApiAgent | undefined;
  let stack: TestStack | undefined;
  let work: string;
  let admin: string;

  const home = (name: string) => {
    const dir = join(work, name);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  const env = (config: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: config, XDG_CONFIG_HOME: config, ...extra });
  const run = (config: string, args: string[], extra: Record<string, string> = {}): Run => {
    const r = spawnSync(process.execPath, [BUILT_CLI, ...args], { cwd: work, env: env(config, extra), encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const agent = () => a!;
  const addHost = (config: string, name: string, token: string, url = agent().url): Run => run(config, ['host', 'add', name, url, '--token', token, '--fingerprint', agent().tls.fingerprint]);

  before(async () => {
    if (!existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run npm run build`);
    requireDocker();
    work = tempDir('cli-conv');
    stack = TestStack.unique('cliconv', {
      talker: { image: 'deckhand-test/busybox:latest', command: ['sh', '-c', 'i=0; while true; do i=$$((i+1)); echo "tick $$i"; sleep 0.2; done'] },
    });
    await stack.up();
    a = await startApiAgent({ config: { host: { name: 'conv-host' }, stack: { project: stack.project, dir: stack.dir }, metrics: { interval: '1s' } } });
    admin = a.token('laptop', 'admin');
  });

  after(async () => {
    await a?.agent.stop();
    await stack?.down();
    if (a) removeDir(a.agent.dir);
    if (stack) removeDir(stack.dir);
    if (work) removeDir(work);
  });

  describe('-H and --json before or after the subcommand', () => {
    let config: string;
    before(async () => {
      config = home('global');
      assert.equal(addHost(config, 'web-1', admin).code, 0);
      // A second host that refuses connections: the wrong one answers exit 3, no host at all exit 2.
      const closed = await freePort();
      const file = join(config, 'deckhand', 'hosts.json');
      const hosts = JSON.parse(readFileSync(file, 'utf8'));
      hosts.hosts['web-2'] = { url: `wss://127.0.0.1:${closed}/v1`, token: admin, fingerprint: agent().tls.fingerprint };
      writeFileSync(file, JSON.stringify(hosts), { mode: 0o600 });
    });

    it('deckhand -H web-1 ps, deckhand ps -H web-1, and the other host by either position', () => {
      assert.equal(run(config, ['ps']).code, 2, 'two hosts and no -H');
      for (const args of [['-H', 'web-1', 'ps'], ['ps', '-H', 'web-1'], ['--host', 'web-1', 'ps']]) {
        const r = run(config, args);
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
        assert.match(r.out, /^SERVICE +STATE/, args.join(' '));
      }
      const other = run(config, ['-H', 'web-2', 'ps']);
      assert.equal(other.code, 3);
      assert.match(other.err, /cannot connect to wss:\/\/127\.0\.0\.1:\d+\/v1 \(host web-2\): connection refused/);
    });

    it('deckhand --json -H web-1 status and deckhand ps --json -H web-1: one JSON document each', () => {
      const status = run(config, ['--json', '-H', 'web-1', 'status']);
      assert.equal(status.code, 0, status.err);
      assert.equal(JSON.parse(status.out).host.name, 'conv-host');
      const ps = run(config, ['ps', '--json', '-H', 'web-1']);
      assert.equal(ps.code, 0, ps.err);
      assert.ok(JSON.parse(ps.out).services.some((s: { service: string }) => s.service === 'talker'));
      const failed = run(config, ['--json', 'ps', '-H', 'web-2']);
      assert.equal(failed.code, 3);
      assert.equal(JSON.parse(failed.out).error.exitCode, 3);
    });

    it('DECKHAND_HOST and --json before the subcommand', () => {
      const r = run(config, ['--json', 'events', '--limit', '5'], { DECKHAND_HOST: 'web-1' });
      assert.equal(r.code, 0, r.err);
      assert.ok(Array.isArray(JSON.parse(r.out).events));
    });
  });

  describe('output', () => {
    let config: string;
    before(() => {
      config = home('output');
      assert.equal(addHost(config, 'web-1', admin).code, 0);
    });

    it('events | cat: whole messages, nothing cut to 80 columns', () => {
      const long = `a-token-with-a-rather-long-name-for-a-narrow-pipe-${'x'.repeat(8)}`;
      agent().token(long, 'read');
      const r = run(config, ['events', '--type', 'audit']);
      assert.equal(r.code, 0, r.err);
      const line = r.out.split('\n').find((l) => l.includes(long));
      assert.ok(line, r.out);
      assert.ok(line.length > 80, 'a line wider than a terminal is kept whole');
      assert.ok(!r.out.includes('…'), r.out);
      assert.match(line, /token a-token-\S+ \(read\) created on the server \(local from local\)$/);
    });

    it('a reader that stops early (logs -f | head -1): no stack trace, exit 0', () => {
      // -f keeps writing after head has gone: the next line meets a closed pipe.
      const r = spawnSync('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" "${BUILT_CLI}" logs talker -f --tail 0 | head -1`], { env: env(config), encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 0);
      assert.match(r.stdout, /^talker \| tick \d+\n$/);
      assert.equal(r.stderr, '');
    });

    it('logs --json: one JSON object per line; its error too', () => {
      const ok = run(config, ['logs', 'talker', '--tail', '2', '--json']);
      assert.equal(ok.code, 0, ok.err);
      const lines = ok.out.trimEnd().split('\n');
      assert.equal(lines.length, 2);
      for (const l of lines) assert.equal(JSON.parse(l).service, 'talker');
      const bad = run(config, ['logs', 'nosuch', '--json']);
      assert.notEqual(bad.code, 0);
      assert.equal(bad.out.trimEnd().split('\n').length, 1, bad.out);
      assert.ok(JSON.parse(bad.out).error.message);
    });

    it('messages say what the operator asked for, not the method', () => {
      const r = run(config, ['logs', 'nosuch']);
      assert.notEqual(r.code, 0);
      assert.match(r.err, /cannot read the logs of nosuch on web-1: /);
      assert.ok(!/stack\.logs/.test(r.err), r.err);
    });

    it('Ctrl-C: logs -f exits 130 after cancelling its stream', async () => {
      const child = spawn(process.execPath, [BUILT_CLI, 'logs', 'talker', '-f', '--tail', '0'], { env: env(config), stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
      try {
        await waitFor(() => /talker \| tick/.test(out), 15_000, () => `live lines, got: ${out}`);
        const t0 = Date.now();
        child.kill('SIGINT');
        assert.equal(await exited, 130);
        assert.ok(Date.now() - t0 < 2500, 'Ctrl-C ends promptly');
      } finally {
        child.kill('SIGKILL');
      }
    });

    it('Ctrl-C: any other command, here one stuck connecting, exits 130', async () => {
      // A port that accepts and then says nothing: the CLI waits in the TLS handshake.
      const sockets: Socket[] = [];
      const silent: Server = createServer((s) => void sockets.push(s));
      await new Promise<void>((res) => silent.listen(0, '127.0.0.1', res));
      const port = (silent.address() as { port: number }).port;
      const child = spawn(process.execPath, [BUILT_CLI, 'status'], {
        env: env(home('stuck'), { DECKHAND_URL: `wss://127.0.0.1:${port}/v1`, DECKHAND_TOKEN: 'dh_x', DECKHAND_FINGERPRINT: agent().tls.fingerprint }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const exited = new Promise<{ code: number | null; signal: string | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
      try {
        await waitFor(() => sockets.length > 0, 10_000, () => 'the CLI connected');
        child.kill('SIGINT');
        assert.deepEqual(await exited, { code: 130, signal: null });
      } finally {
        child.kill('SIGKILL');
        for (const s of sockets) s.destroy();
        silent.close();
      }
    });
  });

  describe('host add errors that fit a first add', () => {
    it('a --fingerprint that does not match: says so, nothing pinned, nothing to remove', () => {
      const config = home('add-mismatch');
      const other = makeCert(home('other-cert'), 'someone-else');
      const r = run(config, ['host', 'add', 'web-1', agent().url, '--token', admin, '--fingerprint', other.fingerprint]);
      assert.equal(r.code, 3);
      assert.match(r.err, /not added: the certificate of wss:\/\/127\.0\.0\.1:\d+\/v1 does not match the fingerprint given with --fingerprint/);
      assert.ok(r.err.includes(`given:     ${shown(other.fingerprint)}`), r.err);
      assert.ok(r.err.includes(`presented: ${shown(agent().tls.fingerprint)}`), r.err);
      assert.ok(!/CHANGED|host remove/.test(r.err), r.err);
      assert.equal(existsSync(join(config, 'deckhand', 'hosts.json')), false);
    });

    it('a rejected token does not suggest removing a host that was never saved', () => {
      const config = home('add-bad-token');
      const r = addHost(config, 'web-1', 'dh_not-a-real-token');
      assert.equal(r.code, 3);
      assert.match(r.err, /token rejected by web-1: create one with `deckhand-agent token create --name NAME --scope read` on the server, then run `deckhand host add` again with it as --token; nothing was saved/);
      assert.ok(!r.err.includes('host remove'), r.err);
    });

    it('the plain-HTTP health port: "this port does not speak TLS", not an OpenSSL line', () => {
      const config = home('add-health');
      const r = run(config, ['host', 'add', 'web-1', `127.0.0.1:${agent().agent.healthPort}`, '--token', admin, '--fingerprint', agent().tls.fingerprint]);
      assert.equal(r.code, 3);
      assert.match(r.err, /this port does not speak TLS \(it answers plain HTTP\): is it `health\.listen`\? The API is on `api\.listen`/);
      assert.ok(!/SSL|ssl3|routines|version number/i.test(r.err), r.err);
      const json = run(config, ['host', 'add', 'web-1', `127.0.0.1:${agent().agent.healthPort}`, '--token', admin, '--fingerprint', agent().tls.fingerprint, '--json']);
      assert.equal(JSON.parse(json.out).error.reason, 'port does not speak TLS');
    });
  });

  describe('metrics', () => {
    let config: string;
    before(async () => {
      config = home('metrics');
      assert.equal(addHost(config, 'web-1', admin).code, 0);
      await waitFor(() => (JSON.parse(run(config, ['metrics', 'cpu', '--since', '10m', '--json']).out).points?.length ?? 0) >= 3, 20_000, () => 'three CPU samples');
    });

    it('the default window follows the data of a fresh agent; piped tables carry units', () => {
      const r = run(config, ['metrics', 'cpu']);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^host\.cpu on web-1, last 24h, data only since (just now|\d+ s ago|\d+ min ago) \(step raw, \d+ points\)\nTIME +MIN \(%\) +AVG \(%\) +MAX \(%\)\n/);
      const mem = run(config, ['metrics', 'mem', '--since', '10m']);
      assert.match(mem.out, /\nTIME +MIN \(bytes\) +AVG \(bytes\) +MAX \(bytes\)\n/);
      assert.match(run(config, ['metrics', 'net']).out, /\nTIME +MIN \(bytes\/s\) +AVG \(bytes\/s\) +MAX \(bytes\/s\)\n/);
      assert.match(run(config, ['metrics', 'host.load1']).out, /^host\.load1 on web-1, last 24h, data only since .*\nTIME +MIN +AVG +MAX\n/, 'a count has no unit');
      const explicit = run(config, ['metrics', 'cpu', '--since', '24h']);
      assert.match(explicit.out, /^host\.cpu on web-1, last 24h \(step raw/, 'an explicit window is kept');
    });

    it('no data at a coarse step: a hint at --step raw when raw points exist', () => {
      // A young agent has raw points only; once a minute (or an hour) has
      // closed since it started, that step has a point and charts it instead.
      const hinted = (out: string, window: string, step: string) => {
        if (new RegExp(`^host\\.cpu on web-1, last ${window} \\(step ${step}, [1-9]\\d* points?\\)\n`).test(out)) return false;
        assert.match(out, new RegExp(`^host\\.cpu on web-1, last ${window} \\(step ${step}, 0 points\\): no data in this window; \\d+ raw points exist: try --step raw\n$`));
        return true;
      };
      const r = run(config, ['metrics', 'cpu', '--step', '1h']);
      assert.equal(r.code, 0, r.err);
      const week = run(config, ['metrics', 'cpu', '--since', '7d']);
      assert.equal(week.code, 0, week.err);
      const hints = [hinted(r.out, '24h', '1h'), hinted(week.out, '7d', '1m')];
      assert.ok(hints.includes(true), `neither window was empty at its step:\n${r.out}\n${week.out}`);
      if (hints[0]) assert.deepEqual(JSON.parse(run(config, ['metrics', 'cpu', '--step', '1h', '--json']).out).points, [], '--json: the empty window as it is');
    });

    it('an ISO --since is shown as the time it means', () => {
      const since = new Date(Date.now() - 30 * 60_000);
      since.setUTCMilliseconds(0);
      const iso = since.toISOString().replace('.000Z', '+00:00');
      const r = run(config, ['metrics', 'cpu', '--since', iso]);
      assert.equal(r.code, 0, r.err);
      const when = since.toISOString().replace('T', ' ').replace('.000Z', ' UTC');
      assert.ok(r.out.startsWith(`host.cpu on web-1, since ${when} (30 min ago) (step raw`), r.out.split('\n')[0]);
    });
  });

  describe('revoking the token this CLI uses', () => {
    it('refused (exit 2) without --yes, nothing revoked; with --yes revoked, naming the host', () => {
      const config = home('revoke-own');
      const own = agent().token('own-laptop', 'admin');
      assert.equal(addHost(config, 'web-1', own).code, 0);
      const list = JSON.parse(run(config, ['token', 'list', '--json']).out);
      assert.deepEqual(
        list.tokens.filter((t: { current?: boolean }) => t.current).map((t: { name: string }) => t.name),
        ['own-laptop'],
      );

      const refused = run(config, ['token', 'revoke', 'own-laptop']);
      assert.equal(refused.code, 2);
      assert.match(refused.err, /not revoked: own-laptop is the token this command uses for web-1 \(the hosts file entry of web-1\); revoking it locks this CLI out of web-1\. Run again with --yes/);
      assert.equal(run(config, ['status']).code, 0, 'the token still works');

      const viaEnv = run(home('revoke-env'), ['token', 'revoke', 'own-laptop', '--json'], { DECKHAND_URL: agent().url, DECKHAND_TOKEN: own, DECKHAND_FINGERPRINT: agent().tls.fingerprint });
      assert.equal(viaEnv.code, 2);
      assert.match(JSON.parse(viaEnv.out).error.message, /\(DECKHAND_TOKEN\)/);

      // Another admin token's revocation is not questioned.
      assert.equal(run(config, ['token', 'create', 'spare', '--scope', 'read']).code, 0);
      assert.equal(run(config, ['token', 'revoke', 'spare']).code, 0);

      const done = run(config, ['token', 'revoke', 'own-laptop', '--yes']);
      assert.equal(done.code, 0, done.err);
      assert.equal(done.out, 'revoked token own-laptop on web-1\n');
      assert.match(done.err, /own-laptop was the token this CLI uses for web-1: calls to web-1 are refused until you `deckhand host remove web-1` and add it again with another --token/);
      assert.equal(run(config, ['status']).code, 3, 'locked out, as warned');
    });
  });
});
