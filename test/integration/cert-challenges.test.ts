// The challenge solvers of agent/duties/certs/challenges/ in real orders
// against a Pebble of this file's own, which validates HTTP-01 on loopback
// at `httpPort` and asks its challtestsrv for DNS: the agent's own
// responder (listening only while a token is live), webroot files served by
// a small static server, and dns-01 through hook programs that set (or fail
// to set) the TXT record in challtestsrv, with the propagation wait asking
// challtestsrv too.
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request, type Server } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type * as acme from 'acme-client';
import { parseConfigText } from '../../agent/config/load.js';
import { parseListen } from '../../agent/config/primitives.js';
import { issue, openAccount, type ChallengeParams, type ChallengeSolver } from '../../agent/duties/certs/acme.js';
import { dnsHookSolver } from '../../agent/duties/certs/challenges/dns-hook.js';
import { httpResponder } from '../../agent/duties/certs/challenges/http-responder.js';
import { solverFor } from '../../agent/duties/certs/challenges/index.js';
import { webrootSolver } from '../../agent/duties/certs/challenges/webroot.js';
import { DomainError } from '../../agent/errors.js';
import { freePort, tempDir } from '../helpers/agent.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';

function keyPem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function sanOf(fullchain: string): string {
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(fullchain);
  assert.ok(first, 'a certificate in the chain');
  return new X509Certificate(first[0]).subjectAltName ?? '';
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function httpGet(port: number, path: string, o: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: o.method ?? 'GET', headers: o.headers, agent: false, timeout: 3000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Whether anything accepts a TCP connection on PORT. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function isFailed(pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof DomainError && e.kind === 'failed', String(e));
    assert.match(e.message, pattern);
    return true;
  };
}

/** A solver passing everything to INNER, calling SPY after each present. */
function spied(inner: ChallengeSolver, spy: (o: ChallengeParams) => void | Promise<void>): ChallengeSolver {
  return {
    type: inner.type,
    present: async (o) => {
      await inner.present(o);
      await spy(o);
    },
    cleanup: (o) => inner.cleanup(o),
  };
}

describe('challenge solvers in real orders against Pebble', { timeout: 60_000 }, () => {
  let pebble: Pebble;
  let client: acme.Client;
  let work: string;

  before(async () => {
    pebble = await startPebble({ httpPort: await freePort() });
    ({ client } = await openAccount({ directoryUrl: pebble.directoryUrl, accountKeyPem: keyPem(), email: 'ops@a.test', caBundle: pebble.caBundle, pollMinMs: 200, pollMaxMs: 1000 }));
    work = tempDir('challenges');
  });

  after(async () => {
    await pebble?.stop();
  });

  describe('the HTTP-01 responder', () => {
    it('passes an order on the port Pebble validates, listening only while its token is live', async () => {
      const responder = httpResponder({ host: '127.0.0.1', port: pebble.httpPort });
      assert.equal(responder.listening, false);
      assert.equal(await accepts(pebble.httpPort), false, 'nothing on the port before the order');
      const during: string[] = [];
      const solver = spied(responder, async (o) => {
        assert.equal(responder.listening, true);
        const got = await httpGet(pebble.httpPort, `/.well-known/acme-challenge/${o.token}`);
        during.push(`${got.status} ${got.headers['content-type']} ${got.body === o.keyAuthorization}`);
      });
      const got = await issue(client, { domains: ['h.test', 'www.h.test'], keyPem: keyPem() }, solver);
      assert.match(sanOf(got.fullchainPem), /DNS:h\.test.*DNS:www\.h\.test|DNS:www\.h\.test.*DNS:h\.test/);
      assert.deepEqual(during, ['200 text/plain true', '200 text/plain true']);
      assert.equal(responder.listening, false);
      assert.equal(await accepts(pebble.httpPort), false, 'closed after the last cleanup');
    });

    it('answers only GET and HEAD of a live token; everything else is a 404 that echoes nothing', async () => {
      const port = await freePort();
      const responder = httpResponder({ host: '127.0.0.1', port });
      const token = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA';
      const keyAuthorization = `${token}.thumbprint_x`;
      const params = { domain: 'x.test', token, keyAuthorization };
      await responder.present(params);
      try {
        const path = `/.well-known/acme-challenge/${token}`;
        const ok = await httpGet(port, path);
        assert.equal(ok.status, 200);
        assert.equal(ok.body, keyAuthorization);
        assert.equal(ok.headers['content-type'], 'text/plain');
        const head = await httpGet(port, path, { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.body, '');
        assert.equal(head.headers['content-length'], String(keyAuthorization.length));

        const misses: [string, string][] = [
          ['GET', '/'],
          ['GET', '/.well-known/acme-challenge/'],
          ['GET', '/.well-known/acme-challenge/unknownTokenXYZ'],
          ['GET', `${path}?x=1`],
          ['GET', `${path}/`],
          ['GET', `/.well-known/acme-challenge/../acme-challenge/${token}`],
          ['GET', `/.well-known/acme-challenge/%2e%2e%2f${token}`],
          ['GET', `/.well-known/acme-challenge/${'a'.repeat(500)}`],
          ['GET', `/echo-me-<script>`],
          ['POST', path],
          ['PUT', path],
          ['DELETE', path],
        ];
        for (const [method, p] of misses) {
          // Asking for keep-alive: a miss closes the connection all the same.
          const got = await httpGet(port, p, { method, headers: { connection: 'keep-alive' } });
          assert.equal(got.status, 404, `${method} ${p}`);
          assert.equal(got.body, 'not found\n', `${method} ${p}: a fixed body`);
          assert.equal(got.headers.connection, 'close', `${method} ${p}`);
        }
        // Headers beyond the bound: refused by the parser itself.
        const big = await httpGet(port, path, { headers: { 'x-filler': 'f'.repeat(8000) } });
        assert.equal(big.status, 431);
      } finally {
        await responder.cleanup(params);
      }
      assert.equal(responder.listening, false);
      assert.equal(await accepts(port), false);
    });

    it('closes at the last cleanup even with an idle keep-alive connection open', async () => {
      const port = await freePort();
      const responder = httpResponder({ host: '127.0.0.1', port });
      const params = { domain: 'k.test', token: 'keepAliveToken_1', keyAuthorization: 'keepAliveToken_1.t' };
      await responder.present(params);
      // A raw keep-alive client that sends one request and then idles.
      const sock = connect({ host: '127.0.0.1', port });
      await new Promise<void>((r) => sock.once('connect', () => r()));
      let closed = false;
      sock.on('close', () => (closed = true));
      const answered = new Promise<string>((r) => sock.once('data', (c: Buffer) => r(c.toString('utf8'))));
      sock.write(`GET /.well-known/acme-challenge/${params.token} HTTP/1.1\r\nHost: k.test\r\n\r\n`);
      assert.match(await answered, /^HTTP\/1\.1 200/);
      const t0 = performance.now();
      await responder.cleanup(params);
      assert.ok(performance.now() - t0 < 1000, 'cleanup does not wait for the keep-alive timeout');
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(closed, 'the idle connection was closed');
      assert.equal(await accepts(port), false);
    });

    it('says clearly when the port is taken, and listens once it is free again', async () => {
      const port = await freePort();
      const squatter = createNetServer();
      await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', () => r()));
      const responder = httpResponder({ host: '127.0.0.1', port });
      const params = { domain: 't.test', token: 'takenPortToken', keyAuthorization: 'takenPortToken.t' };
      try {
        await assert.rejects(responder.present(params), isFailed(new RegExp(`127\\.0\\.0\\.1:${port}.*already in use.*certs\\.challenge\\.webroot`)));
        assert.equal(responder.listening, false);
      } finally {
        await new Promise((r) => squatter.close(r));
      }
      await responder.present(params);
      try {
        assert.equal((await httpGet(port, `/.well-known/acme-challenge/${params.token}`)).status, 200);
      } finally {
        await responder.cleanup(params);
      }
    });
  });

  describe('webroot', () => {
    let webroot: string;
    let server: Server;
    const served: string[] = [];

    before(async () => {
      webroot = join(work, 'www');
      mkdirSync(webroot);
      // The "proxy": serves files of the webroot, as nginx's root would.
      server = createHttpServer((req, res) => {
        const url = req.url ?? '/';
        const file = join(webroot, url);
        if (!file.startsWith(`${webroot}/`) || !existsSync(file) || !statSync(file).isFile()) {
          res.writeHead(404).end();
          return;
        }
        served.push(url);
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(readFileSync(file));
      });
      await new Promise<void>((r) => server.listen(pebble.httpPort, '127.0.0.1', () => r()));
    });

    after(async () => {
      await new Promise((r) => server?.close(r));
    });

    it('passes an order with the files a static server serves, 0644 under 0755 dirs whatever the umask, gone after', async () => {
      const solver = webrootSolver(webroot);
      const seen: string[] = [];
      const spy = spied(solver, (o) => {
        const file = join(webroot, '.well-known/acme-challenge', o.token);
        assert.equal(readFileSync(file, 'utf8'), o.keyAuthorization);
        seen.push((statSync(file).mode & 0o777).toString(8));
        // No temp file left beside it.
        assert.deepEqual(readdirSync(join(webroot, '.well-known/acme-challenge')).filter((n) => n.startsWith('.')), []);
      });
      const umask = process.umask(0o077);
      try {
        const got = await issue(client, { domains: ['w.test'], keyPem: keyPem() }, spy);
        assert.match(sanOf(got.fullchainPem), /DNS:w\.test/);
      } finally {
        process.umask(umask);
      }
      assert.deepEqual(seen, ['644']);
      // Pebble may validate from several perspectives: one URL, fetched at least once.
      assert.ok(served.length >= 1, 'the CA fetched it from the static server');
      assert.equal(new Set(served).size, 1, served.join(', '));
      assert.deepEqual(readdirSync(join(webroot, '.well-known/acme-challenge')), [], 'token file removed');
      assert.equal(statSync(join(webroot, '.well-known')).mode & 0o777, 0o755);
      assert.equal(statSync(join(webroot, '.well-known/acme-challenge')).mode & 0o777, 0o755);
    });

    it('refuses a token that is not base64url, writing nothing', async () => {
      const solver = webrootSolver(webroot);
      const before = readdirSync(work).sort();
      for (const token of ['../escaped', '../../x', 'a/b', '..']) {
        await assert.rejects(solver.present({ domain: 'w.test', token, keyAuthorization: 'k' }), isFailed(/not base64url/));
        await assert.rejects(solver.cleanup({ domain: 'w.test', token, keyAuthorization: 'k' }), isFailed(/not base64url/));
      }
      assert.deepEqual(readdirSync(work).sort(), before);
      assert.equal(existsSync(join(webroot, '.well-known/escaped')), false);
    });

    it('refuses a webroot that does not exist', async () => {
      const missing = join(work, 'no-such-www');
      await assert.rejects(webrootSolver(missing).present({ domain: 'w.test', token: 'abc', keyAuthorization: 'k' }), isFailed(/no-such-www is not an existing directory/));
      assert.equal(existsSync(missing), false);
    });
  });

  describe('dns-01 through a hook', () => {
    let hookLog: string;

    /** An executable Node script as the hook: logs its argv, then runs BODY (action, name, value in scope). */
    function hook(name: string, body: string): string {
      const file = join(work, `${name}.mjs`);
      writeFileSync(
        file,
        [
          `#!${process.execPath}`,
          `import { appendFileSync } from 'node:fs';`,
          `const [action, domain, name, value] = process.argv.slice(2);`,
          `appendFileSync(${JSON.stringify(hookLog)}, ${JSON.stringify(name)} + ' ' + process.argv.slice(2).join(' ') + '\\n');`,
          `const cts = (path, body) => fetch(${JSON.stringify(pebble.challtestsrv.managementUrl)} + path, { method: 'POST', body: JSON.stringify(body) }).then((r) => { if (!r.ok) throw new Error(path + ': HTTP ' + r.status); });`,
          body,
          '',
        ].join('\n'),
      );
      chmodSync(file, 0o755);
      return file;
    }

    const logLines = () => (existsSync(hookLog) ? readFileSync(hookLog, 'utf8').trim().split('\n') : []);

    before(() => {
      hookLog = join(work, 'hook.log');
    });

    it('passes an order for a name and its wildcard, the wait asking challtestsrv', async () => {
      writeFileSync(hookLog, '');
      const good = hook(
        'good',
        `if (action === 'present') await cts('/set-txt', { host: name + '.', value });
         else await cts('/clear-txt', { host: name + '.' });`,
      );
      const cfg = parseConfigText(`certs: {email: ops@a.test, challenge: {type: dns-01, hook: ${good}, resolver: "${pebble.challtestsrv.dnsAddress}", propagationTimeout: 10s}}`);
      const steps: string[] = [];
      const solver = solverFor(cfg.certs!.challenge, { onStep: (s, d) => steps.push(`${s} ${d ?? ''}`) });
      const got = await issue(client, { domains: ['dns.test', '*.dns.test'], keyPem: keyPem() }, solver);
      const san = sanOf(got.fullchainPem);
      assert.match(san, /DNS:dns\.test/);
      assert.match(san, /DNS:\*\.dns\.test/);
      const lines = logLines();
      assert.equal(lines.length, 4, lines.join('\n'));
      const present = lines.filter((l) => l.startsWith('good present '));
      const cleanup = lines.filter((l) => l.startsWith('good cleanup '));
      assert.equal(present.length, 2);
      assert.equal(cleanup.length, 2);
      for (const l of [...present, ...cleanup]) assert.match(l, /^good (present|cleanup) dns\.test _acme-challenge\.dns\.test [A-Za-z0-9_-]{43}$/);
      // Two authorizations (name and wildcard), two TXT values.
      assert.notEqual(present[0]!.split(' ')[4], present[1]!.split(' ')[4]);
      assert.deepEqual(steps, ['propagation _acme-challenge.dns.test', 'propagation _acme-challenge.dns.test']);
    });

    it("fails the order with a hook's exit status and stderr, cleanup still run", async () => {
      writeFileSync(hookLog, '');
      const bad = hook('bad', `console.error('provider API: zone dnsbad.test not found'); process.exit(1);`);
      const solver = dnsHookSolver({ hook: bad, resolver: parseListen(pebble.challtestsrv.dnsAddress)! });
      await assert.rejects(issue(client, { domains: ['dnsbad.test'], keyPem: keyPem() }, solver), isFailed(/dns-01 hook present for dnsbad\.test exited with 1: provider API: zone dnsbad\.test not found/));
      assert.deepEqual(
        logLines().map((l) => l.split(' ').slice(0, 3).join(' ')),
        ['bad present dnsbad.test', 'bad cleanup dnsbad.test'],
      );
    });

    it('fails after propagationTimeout when the hook "succeeds" but sets nothing, cleanup still run', async () => {
      writeFileSync(hookLog, '');
      const noop = hook('noop', `process.exit(0);`);
      const solver = dnsHookSolver({ hook: noop, resolver: parseListen(pebble.challtestsrv.dnsAddress)!, propagationTimeoutMs: 3000, pollIntervalMs: 1000 });
      const t0 = performance.now();
      await assert.rejects(
        issue(client, { domains: ['dnsnoop.test'], keyPem: keyPem() }, solver),
        isFailed(/TXT record _acme-challenge\.dnsnoop\.test did not show the challenge value at the resolver 127\.0\.0\.1:\d+ within 3s \(last answer: no TXT record\)/),
      );
      const took = performance.now() - t0;
      assert.ok(took >= 3000 && took < 8000, `failed after ${Math.round(took)} ms`);
      assert.deepEqual(
        logLines().map((l) => l.split(' ').slice(0, 3).join(' ')),
        ['noop present dnsnoop.test', 'noop cleanup dnsnoop.test'],
      );
    });

    it('stops the propagation wait at once on abort, cleanup still run', async () => {
      writeFileSync(hookLog, '');
      const noop = hook('noop', `process.exit(0);`);
      const ac = new AbortController();
      const solver = dnsHookSolver({ hook: noop, resolver: parseListen(pebble.challtestsrv.dnsAddress)!, propagationTimeoutMs: 30_000, signal: ac.signal });
      const t0 = performance.now();
      setTimeout(() => ac.abort(new Error('agent stopping')), 1500);
      await assert.rejects(issue(client, { domains: ['dnsabort.test'], keyPem: keyPem() }, solver, { signal: ac.signal }), /agent stopping/);
      assert.ok(performance.now() - t0 < 5000, 'not the 30 s timeout');
      // The cleanup hook runs despite the abort.
      assert.deepEqual(
        logLines().map((l) => l.split(' ').slice(0, 3).join(' ')),
        ['noop present dnsabort.test', 'noop cleanup dnsabort.test'],
      );
    });
  });
});
