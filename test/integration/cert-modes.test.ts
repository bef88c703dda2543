// The certificate challenge modes other than the agent's own responder,
// end to end: the built agent (as user deckhand, so every file it writes or
// runs must be reachable by that user, as on a server) against a real Pebble.
// cert-challenges.test.ts drives the solvers in the test process; this file
// checks what only the whole agent shows: the config reaching the order
// process, what lands on disk, what cert.list, the alerts and /health say.
//
//   webroot  a static server (the "proxy") on Pebble's HTTP-01 port serves the
//            webroot the agent writes the token files into
//   dns-01   the hook is an executable Node script setting and clearing TXT
//            records in Pebble's challtestsrv, which is also the resolver the
//            propagation wait asks
//
// Both modes are tested passing (issue at start, a forced renewal, a
// wildcard) and failing (a missing webroot, a hook exiting 1). A wildcard
// with http-01 refused at config load is covered by test/unit/config.test.ts
// ("wildcard with http-01"), so it is not repeated here.
//
//   node --import tsx --test --test-concurrency=1 test/integration/cert-modes.test.ts
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CertificateInfo, EventInfo } from '../../agent/api/protocol.js';
import { AGENT_USER, freePort, removeDir, shareWithGroup, startAgent, systemUser, tempDir, waitFor, type AgentProcess } from '../helpers/agent.js';
import { connect, createToken, makeCert, streamed, type RpcClient } from '../helpers/api.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';

interface Running {
  agent: AgentProcess;
  c: RpcClient;
}

/** A challenge token as Pebble (and Let's Encrypt) send it: 43 characters of base64url. */
const TOKEN_PATH = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]{43})$/;

async function info(c: RpcClient, name: string): Promise<CertificateInfo | undefined> {
  const r = await c.call('cert.list', {});
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  return (r.result.certificates as CertificateInfo[]).find((x) => x.name === name);
}

async function events(c: RpcClient, type: string): Promise<EventInfo[]> {
  const r = await c.call('events.list', { type, limit: 100 });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  return r.result.events as EventInfo[];
}

function leafOf(dataDir: string, name: string): X509Certificate {
  // X509Certificate reads the first PEM block of the chain: the leaf.
  return new X509Certificate(readFileSync(join(dataDir, 'certs', name, 'fullchain.pem')));
}

/** The TXT values challtestsrv serves for NAME (none: an empty list). */
async function txtAt(dnsAddress: string, name: string): Promise<string[]> {
  const resolver = new Resolver({ timeout: 1000, tries: 2 });
  resolver.setServers([dnsAddress]);
  try {
    return (await resolver.resolveTxt(name)).map((chunks) => chunks.join(''));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENODATA' || code === 'ENOTFOUND') return [];
    throw e;
  }
}

describe('challenge modes through the built agent against Pebble', { timeout: 180_000 }, () => {
  let pebble: Pebble;
  /** The agent running now and its API client, kept apart so after() stops an agent that never got ready. */
  let agentUp: AgentProcess | undefined;
  let clientUp: RpcClient | undefined;
  const dirs: string[] = [];
  const deckhand = systemUser(AGENT_USER);

  /** A config dir of its own per agent: a fresh dataDir, so no state (failures, backoff) of an earlier test carries over. */
  function newDir(prefix: string): string {
    const dir = tempDir(prefix);
    dirs.push(dir);
    // startAgent makes the files at the top of DIR root:deckhand 0640, which is what a CA bundle wants.
    copyFileSync(pebble.caBundlePath, join(dir, 'pebble-ca.pem'));
    return dir;
  }

  async function start(dir: string, challenge: Record<string, unknown>, certificates: unknown[]): Promise<Running> {
    await stop(); // the agent of a test that failed before its own stop()
    const apiPort = await freePort();
    const tls = makeCert(dir, 'modes');
    const agent = await startAgent({
      dir,
      config: {
        api: { listen: `127.0.0.1:${apiPort}`, tls: { cert: tls.cert, key: tls.key } },
        certs: { email: 'ops@example.com', directory: pebble.directoryUrl, caBundle: join(dir, 'pebble-ca.pem'), challenge, certificates },
      },
    });
    agentUp = agent;
    await agent.waitReady(60_000);
    const c = await connect(`wss://127.0.0.1:${apiPort}/v1`, createToken(agent.configFile, `ops${Date.now()}`, 'operate', agent.user));
    clientUp = c;
    return { agent, c };
  }

  async function stop(): Promise<void> {
    clientUp?.close();
    await agentUp?.stop();
    clientUp = undefined;
    agentUp = undefined;
  }

  /** The failure the agent's order at start left: waits for cert.list to show a last error. */
  async function failedAtStart(r: Running, name: string): Promise<CertificateInfo> {
    let i: CertificateInfo | undefined;
    await waitFor(async () => (i = await info(r.c, name))?.lastError !== undefined, 30_000, () => `no failed order at start:\n${r.agent.output.slice(-2000)}`);
    return i!;
  }

  /** What a failed first issuance must leave: nothing installed, the agent up, the check failing. */
  async function assertFailedIssuance(r: Running, name: string, pattern: RegExp): Promise<void> {
    const i = await failedAtStart(r, name);
    assert.match(i.lastError!, pattern);
    assert.equal(i.failures, 1);
    assert.equal(i.serial, undefined, 'no certificate');
    assert.equal(existsSync(join(r.agent.dataDir, 'certs', name, 'current')), false, 'nothing installed');
    const raised = await events(r.c, 'cert.renew_failed');
    assert.equal(raised.length, 1, JSON.stringify(raised));
    assert.equal(raised[0]!.subject, name);
    assert.match(raised[0]!.message, new RegExp(`^certificate ${name} could not be issued: .*; there is no certificate yet; next attempt `));
    assert.match(raised[0]!.message, pattern);
    assert.equal(r.agent.child.exitCode, null, 'the agent keeps running');
    const health = await r.agent.get('/health');
    const check = health.json().checks[`certificate:${name}`][0];
    assert.equal(check.status, 'fail', JSON.stringify(check));
    assert.match(check.output, /^no certificate: last attempt failed at /);
    assert.match(check.output, pattern);
  }

  before(async () => {
    pebble = await startPebble({ httpPort: await freePort() });
  });

  after(async () => {
    await stop();
    await pebble?.stop();
    dirs.forEach(removeDir);
  });

  describe('webroot', () => {
    let proxy: Server;
    /** The directory the proxy serves now; each test points it at its own webroot. */
    let root = '';
    /** Every file the proxy served: the Host asked for, the path, the file's mode and content. */
    const served: { host: string; path: string; mode: number; body: string }[] = [];

    before(async () => {
      // The "proxy" already on port 80 that webroot is for: serves the files
      // of `root`, as nginx's `root` would, on the port Pebble validates.
      proxy = createHttpServer((req, res) => {
        const path = req.url ?? '/';
        const file = join(root, path);
        if (!root || !file.startsWith(`${root}/`) || !existsSync(file) || !statSync(file).isFile()) {
          res.writeHead(404).end();
          return;
        }
        const body = readFileSync(file, 'utf8');
        served.push({ host: (req.headers.host ?? '').replace(/:\d+$/, ''), path, mode: statSync(file).mode & 0o777, body });
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
      });
      await new Promise<void>((r) => proxy.listen(pebble.httpPort, '127.0.0.1', () => r()));
    });

    after(async () => {
      await new Promise((r) => proxy?.close(r));
    });

    /** The tokens the proxy served in this order, one per domain, each file the token's key authorization. */
    function tokensServed(domains: string[]): Map<string, string> {
      const byHost = new Map<string, string>();
      for (const s of served) {
        const m = TOKEN_PATH.exec(s.path);
        assert.ok(m, `a challenge path: ${s.path}`);
        assert.ok(s.body.startsWith(`${m[1]}.`), `the file of ${m[1]} holds its key authorization: ${s.body}`);
        assert.equal(s.mode, 0o644, 'readable by a proxy running as another user');
        // Pebble may validate from several perspectives: one token per name, fetched at least once.
        const seen = byHost.get(s.host);
        assert.ok(seen === undefined || seen === m[1], `one token for ${s.host}`);
        byHost.set(s.host, m[1]!);
      }
      assert.deepEqual([...byHost.keys()].sort(), [...domains].sort(), JSON.stringify(served));
      assert.equal(new Set(byHost.values()).size, domains.length, 'a token of its own per name');
      return byHost;
    }

    it('issues at start through the files the proxy serves, removes them after, and renews the same way', async () => {
      const dir = newDir('certmodes-webroot');
      const webroot = join(dir, 'www');
      mkdirSync(webroot);
      // The agent writes into a webroot it does not own, as an installer would share it.
      shareWithGroup(webroot, deckhand.gid);
      root = webroot;
      served.length = 0;
      const domains = ['w.test', 'www.w.test'];
      const { agent, c } = await start(dir, { type: 'http-01', webroot }, [{ name: 'web', domains }]);
      await waitFor(() => existsSync(join(agent.dataDir, 'certs', 'web', 'current')), 60_000, () => `not issued:\n${agent.output.slice(-3000)}`);

      const first = tokensServed(domains);
      const challengeDir = join(webroot, '.well-known', 'acme-challenge');
      // Cleanup runs before the order process answers, so before the install.
      assert.deepEqual(readdirSync(challengeDir), [], 'token files removed after the order');
      const leaf = leafOf(agent.dataDir, 'web');
      assert.match(leaf.subjectAltName ?? '', /DNS:w\.test/);
      assert.match(leaf.subjectAltName ?? '', /DNS:www\.w\.test/);
      const i = await info(c, 'web');
      assert.equal(i?.serial, leaf.serialNumber);
      assert.equal(i?.check, 'pass', JSON.stringify(i));

      served.length = 0;
      const r = await streamed(c, 'cert.renew', { name: 'web', force: true });
      assert.equal(r.end.ok, true, JSON.stringify(r.end));
      const presented = r.events.filter((e) => e.type === 'step' && e.step === 'present').map((e) => e.detail);
      assert.deepEqual(presented.sort(), ['http-01 w.test', 'http-01 www.w.test']);
      const second = tokensServed(domains);
      for (const d of domains) assert.notEqual(second.get(d), first.get(d), `a new token for ${d}: the CA validated again`);
      assert.deepEqual(readdirSync(challengeDir), [], 'token files removed after the renewal');
      const renewed = leafOf(agent.dataDir, 'web');
      assert.notEqual(renewed.serialNumber, leaf.serialNumber, 'a new certificate');
      assert.equal((await info(c, 'web'))?.serial, renewed.serialNumber);
      await stop();
    });

    it('a webroot that does not exist: the issuance fails saying so, nothing is created or installed, the agent runs on', async () => {
      const dir = newDir('certmodes-nowebroot');
      const missing = join(dir, 'no-such-www');
      root = missing;
      served.length = 0;
      const r = await start(dir, { type: 'http-01', webroot: missing }, [{ name: 'lost', domains: ['l.test'] }]);
      await assertFailedIssuance(r, 'lost', /certs\.challenge\.webroot \S*no-such-www is not an existing directory/);
      // Refused before the CA was told to validate: it never came looking.
      assert.deepEqual(served, []);
      assert.equal(existsSync(missing), false, 'the agent does not create the webroot');
      await stop();
    });
  });

  describe('dns-01 through a hook', () => {
    /**
     * An executable Node script as the hook, in DIR/hooks (startAgent makes
     * only DIR's own files 0640, which would take the exec bit). It logs its
     * uid and argv to DIR/hooklog/hook.log (a directory the agent's user
     * owns: the hook runs as that user), then runs BODY with action, domain,
     * name, value and `cts` (a POST to challtestsrv's management API) in scope.
     */
    function hook(dir: string, body: string): { file: string; log: string } {
      const hooks = join(dir, 'hooks');
      mkdirSync(hooks, { mode: 0o755 });
      const logDir = join(dir, 'hooklog');
      mkdirSync(logDir);
      chownSync(logDir, deckhand.uid, deckhand.gid);
      const log = join(logDir, 'hook.log');
      const file = join(hooks, 'dns-hook.mjs');
      writeFileSync(
        file,
        [
          `#!${process.execPath}`,
          `import { appendFileSync } from 'node:fs';`,
          `const [action, domain, name, value] = process.argv.slice(2);`,
          `appendFileSync(${JSON.stringify(log)}, process.getuid() + ' ' + process.argv.slice(2).join(' ') + '\\n');`,
          `const cts = (path, body) => fetch(${JSON.stringify(pebble.challtestsrv.managementUrl)} + path, { method: 'POST', body: JSON.stringify(body) }).then((r) => { if (!r.ok) throw new Error(path + ': HTTP ' + r.status); });`,
          body,
          '',
        ].join('\n'),
      );
      chmodSync(file, 0o755);
      return { file, log };
    }

    /** The hook's log lines, split: uid, action, domain, name, value. */
    const calls = (log: string) => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : []).map((l) => l.split(' '));

    it('issues a name and its wildcard at start: present and cleanup for each, as the agent user, the TXT values gone after', async () => {
      const dir = newDir('certmodes-dns');
      const { file, log } = hook(
        dir,
        // set-txt adds a value (both authorizations share the name); clear-txt removes the name's values.
        `if (action === 'present') await cts('/set-txt', { host: name + '.', value });
         else await cts('/clear-txt', { host: name + '.' });`,
      );
      const dns = pebble.challtestsrv.dnsAddress;
      const { agent, c } = await start(dir, { type: 'dns-01', hook: file, resolver: dns, propagationTimeout: '20s' }, [{ name: 'wild', domains: ['d.test', '*.d.test'] }]);
      await waitFor(() => existsSync(join(agent.dataDir, 'certs', 'wild', 'current')), 60_000, () => `not issued:\n${agent.output.slice(-3000)}\nhook log: ${JSON.stringify(calls(log))}`);

      const san = leafOf(agent.dataDir, 'wild').subjectAltName ?? '';
      assert.match(san, /DNS:d\.test(,|$)/);
      assert.match(san, /DNS:\*\.d\.test/);

      const lines = calls(log);
      assert.equal(lines.length, 4, JSON.stringify(lines));
      for (const [uid, action, domain, name, value] of lines) {
        assert.equal(uid, String(deckhand.uid), 'the hook runs as the agent user');
        assert.match(action!, /^(present|cleanup)$/);
        // The wildcard's authorization is for the base name: both share the record name.
        assert.equal(domain, 'd.test');
        assert.equal(name, '_acme-challenge.d.test');
        assert.match(value!, /^[A-Za-z0-9_-]{43}$/);
      }
      const present = lines.filter((l) => l[1] === 'present').map((l) => l[4]!);
      const cleanup = lines.filter((l) => l[1] === 'cleanup').map((l) => l[4]!);
      assert.equal(present.length, 2);
      assert.notEqual(present[0], present[1], 'two authorizations, two TXT values');
      assert.deepEqual([...cleanup].sort(), [...present].sort(), 'every value presented is cleaned up');
      for (const v of present) assert.ok(lines.findIndex((l) => l[1] === 'cleanup' && l[4] === v) > lines.findIndex((l) => l[1] === 'present' && l[4] === v), `cleanup of ${v} after its present`);
      assert.deepEqual(await txtAt(dns, '_acme-challenge.d.test'), [], 'no TXT value left at challtestsrv');
      const i = await info(c, 'wild');
      assert.equal(i?.check, 'pass', JSON.stringify(i));
      await stop();
    });

    it("a hook exiting 1: the issuance fails with the hook's stderr, cleanup still run, nothing installed, the agent runs on", async () => {
      const dir = newDir('certmodes-dnsfail');
      const { file, log } = hook(dir, `console.error('provider API said 403'); process.exit(1);`);
      const r = await start(dir, { type: 'dns-01', hook: file, resolver: pebble.challtestsrv.dnsAddress, propagationTimeout: '20s' }, [{ name: 'denied', domains: ['df.test'] }]);
      await assertFailedIssuance(r, 'denied', /dns-01 hook present for df\.test exited with 1: provider API said 403/);
      // The cleanup hook runs even after a failed present (it may have set the record before failing).
      assert.deepEqual(
        calls(log).map((l) => l.slice(1, 4).join(' ')),
        ['present df.test _acme-challenge.df.test', 'cleanup df.test _acme-challenge.df.test'],
      );
      await stop();
    });
  });
});
