// The pure parts of agent/duties/certs/challenges/: the dns-01 hook's argv
// and record name, token checks, the webroot file path, and the config keys
// propagationTimeout and resolver.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfigText } from '../../agent/config/load.js';
import { challengeRecordName, hookArgv, stderrTail } from '../../agent/duties/certs/challenges/dns-hook.js';
import { formatAddress, listenError } from '../../agent/duties/certs/challenges/http-responder.js';
import { assertAcmeToken, isAcmeToken, MAX_TOKEN_LENGTH } from '../../agent/duties/certs/challenges/token.js';
import { challengeFile } from '../../agent/duties/certs/challenges/webroot.js';
import { DomainError } from '../../agent/errors.js';

function problems(yaml: string): string[] {
  try {
    parseConfigText(yaml);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  assert.fail(`expected config errors for:\n${yaml}`);
}

const certs = (challenge: string) => `certs: {email: ops@example.com, challenge: ${challenge}}`;

describe('dns-01 hook: record name and argv', () => {
  it('names _acme-challenge.<domain>, dropping a wildcard and a trailing dot', () => {
    assert.equal(challengeRecordName('example.com'), '_acme-challenge.example.com');
    assert.equal(challengeRecordName('www.example.com'), '_acme-challenge.www.example.com');
    assert.equal(challengeRecordName('*.example.com'), '_acme-challenge.example.com');
    assert.equal(challengeRecordName('example.com.'), '_acme-challenge.example.com');
    // Only a leading "*." goes.
    assert.equal(challengeRecordName('a*.example.com'), '_acme-challenge.a*.example.com');
  });

  it('builds HOOK ACTION DOMAIN NAME VALUE, each its own argument', () => {
    assert.deepEqual(hookArgv('/opt/dns-hook', 'present', 'example.com', '_acme-challenge.example.com', 'v a l'), [
      '/opt/dns-hook',
      'present',
      'example.com',
      '_acme-challenge.example.com',
      'v a l',
    ]);
    assert.deepEqual(hookArgv('/opt/h', 'cleanup', 'x.test', 'n', '$(rm -rf /)'), ['/opt/h', 'cleanup', 'x.test', 'n', '$(rm -rf /)']);
  });

  it('keeps the last stderr lines, bounded', () => {
    assert.equal(stderrTail('a\n\nb\nc\nd\ne\nf\n'), 'b | c | d | e | f');
    assert.equal(stderrTail(''), '');
    const long = stderrTail('x'.repeat(2000), 100);
    assert.equal(long.length, 101);
    assert.ok(long.startsWith('…'));
  });
});

describe('challenge tokens', () => {
  it('accepts base64url up to the bound', () => {
    assert.ok(isAcmeToken('evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA'));
    assert.ok(isAcmeToken('a_b-C9'));
    assert.ok(isAcmeToken('x'.repeat(MAX_TOKEN_LENGTH)));
  });

  it('refuses anything else', () => {
    for (const t of ['', '..', '../etc/passwd', 'a/b', 'a.b', 'a=', 'a b', 'a\0b', 'a%2f', '\u00e9', 'x'.repeat(MAX_TOKEN_LENGTH + 1)]) {
      assert.equal(isAcmeToken(t), false, JSON.stringify(t));
      assert.throws(() => assertAcmeToken(t), (e: unknown) => e instanceof DomainError && e.kind === 'failed' && /not base64url/.test(e.message));
    }
  });

  it('clips a long token in the message', () => {
    assert.throws(
      () => assertAcmeToken(`${'y'.repeat(5000)}/`),
      (e: unknown) => e instanceof Error && e.message.length < 300,
    );
  });

  it('puts a webroot token file under .well-known/acme-challenge, refusing traversal', () => {
    assert.equal(challengeFile('/srv/www', 'abc_-1'), '/srv/www/.well-known/acme-challenge/abc_-1');
    assert.throws(() => challengeFile('/srv/www', '../../x'), /not base64url/);
  });
});

describe('http responder: addresses and listen errors', () => {
  it('formats v4, v6 and every-address', () => {
    assert.equal(formatAddress({ host: '127.0.0.1', port: 80 }), '127.0.0.1:80');
    assert.equal(formatAddress({ host: '::1', port: 8080 }), '[::1]:8080');
    assert.equal(formatAddress({ port: 80 }), '*:80');
  });

  it('names the address and suggests webroot when the port is taken or not allowed', () => {
    for (const code of ['EADDRINUSE', 'EACCES']) {
      const e = listenError('0.0.0.0:80', Object.assign(new Error(code), { code }));
      assert.equal(e.kind, 'failed');
      assert.match(e.message, /0\.0\.0\.0:80/);
      assert.match(e.message, /certs\.challenge\.webroot/);
    }
    assert.match(listenError('0.0.0.0:80', Object.assign(new Error('x'), { code: 'EADDRINUSE' })).message, /already in use/);
    assert.match(listenError('0.0.0.0:80', Object.assign(new Error('x'), { code: 'EACCES' })).message, /CAP_NET_BIND_SERVICE/);
  });
});

describe('config: challenge.propagationTimeout and challenge.resolver', () => {
  it('accepts both for dns-01', () => {
    const cfg = parseConfigText(certs('{type: dns-01, hook: /usr/local/bin/dns-hook, propagationTimeout: 90s, resolver: "127.0.0.1:5353"}'));
    assert.equal(cfg.certs?.challenge.propagationTimeout, 90_000);
    assert.deepEqual(cfg.certs?.challenge.resolver, { host: '127.0.0.1', port: 5353 });
    const v6 = parseConfigText(certs('{type: dns-01, hook: /h, resolver: "[::1]:53"}'));
    assert.deepEqual(v6.certs?.challenge.resolver, { host: '::1', port: 53 });
  });

  it('leaves both unset by default', () => {
    const cfg = parseConfigText(certs('{type: dns-01, hook: /h}'));
    assert.equal(cfg.certs?.challenge.propagationTimeout, undefined);
    assert.equal(cfg.certs?.challenge.resolver, undefined);
  });

  const cases: [string, string, string[]][] = [
    ['zero propagationTimeout', '{type: dns-01, hook: /h, propagationTimeout: 0s}', ['certs.challenge.propagationTimeout: must be more than 0 (e.g. "2m")']],
    ['propagationTimeout without unit', '{type: dns-01, hook: /h, propagationTimeout: 30}', ['certs.challenge.propagationTimeout: expected a duration like "10s", "5m" or "24h", got 30 (a number needs a unit: "30s")']],
    ['resolver by name', '{type: dns-01, hook: /h, resolver: "dns.example:53"}', ['certs.challenge.resolver: must be a DNS server as ip:port, e.g. 127.0.0.1:53 or [::1]:53']],
    ['resolver without port', '{type: dns-01, hook: /h, resolver: "127.0.0.1"}', ['certs.challenge.resolver: invalid listen address "127.0.0.1" (expected host:port, e.g. 127.0.0.1:7070)']],
    ['resolver unspecified', '{type: dns-01, hook: /h, resolver: "0.0.0.0:53"}', ['certs.challenge.resolver: must be a DNS server as ip:port, e.g. 127.0.0.1:53 or [::1]:53']],
    ['propagationTimeout with http-01', '{type: http-01, propagationTimeout: 1m}', ['certs.challenge.propagationTimeout: propagationTimeout is for dns-01 only']],
    ['resolver with http-01', '{resolver: "127.0.0.1:53"}', ['certs.challenge.resolver: resolver is for dns-01 only']],
  ];
  for (const [name, challenge, expected] of cases) {
    it(`refuses ${name}`, () => assert.deepEqual(problems(certs(challenge)).sort(), [...expected].sort()));
  }
});

describe('solverFor', () => {
  it('picks the solver from certs.challenge', async () => {
    const { solverFor } = await import('../../agent/duties/certs/challenges/index.js');
    const http = parseConfigText(certs('{listen: "127.0.0.1:8080"}')).certs!.challenge;
    const a = solverFor(http);
    assert.equal(a.type, 'http-01');
    assert.ok('listening' in a && a.listening === false, 'the responder does not listen before a token');
    assert.equal(solverFor(http), a, 'one responder per address');
    const webroot = solverFor(parseConfigText(certs('{webroot: /srv/www}')).certs!.challenge);
    assert.equal(webroot.type, 'http-01');
    assert.ok(!('listening' in webroot));
    assert.equal(solverFor(parseConfigText(certs('{type: dns-01, hook: /h}')).certs!.challenge).type, 'dns-01');
  });
});
