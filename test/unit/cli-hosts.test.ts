// The CLI's hosts file, agent URLs, host names and the choice of target.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CliError, EXIT } from '../../server-cli/errors.js';
import { hostsFilePath, parseApiUrl, readHostsFile, validateHostName, writeHostsFile, type HostsFile } from '../../server-cli/hosts.js';
import { allTargets, resolveTarget } from '../../server-cli/target.js';

const FP = 'ab'.repeat(32);
const usageError = (pattern: RegExp) => (err: unknown) => err instanceof CliError && err.exitCode === EXIT.usage && pattern.test(err.message);

describe('hosts file', () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'dhtest-cli-hosts-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lives under $XDG_CONFIG_HOME, else ~/.config', () => {
    assert.equal(hostsFilePath({ XDG_CONFIG_HOME: '/x/conf', HOME: '/home/u' }), '/x/conf/deckhand/hosts.json');
    assert.equal(hostsFilePath({ HOME: '/home/u' }), '/home/u/.config/deckhand/hosts.json');
    // The XDG spec: a relative value is invalid and ignored.
    assert.equal(hostsFilePath({ XDG_CONFIG_HOME: 'rel', HOME: '/home/u' }), '/home/u/.config/deckhand/hosts.json');
  });

  it('a missing file is an empty one', () => {
    assert.deepEqual(readHostsFile(join(dir, 'nope', 'hosts.json')), { hosts: {} });
  });

  it('is written 0600 in a 0700 directory, even with a permissive umask', () => {
    const path = join(dir, 'a', 'deckhand', 'hosts.json');
    const old = process.umask(0o000);
    try {
      writeHostsFile(path, { hosts: { 'web-1': { url: 'wss://1.2.3.4:7443/v1', token: 't', fingerprint: FP } } });
    } finally {
      process.umask(old);
    }
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'a', 'deckhand')).mode & 0o777, 0o700);
    assert.deepEqual(readHostsFile(path), { hosts: { 'web-1': { url: 'wss://1.2.3.4:7443/v1', token: 't', fingerprint: FP } } });
  });

  it('is replaced atomically: a new inode by rename, no temp file left, a loose old mode not kept', () => {
    const path = join(dir, 'b', 'hosts.json');
    mkdirSync(join(dir, 'b'));
    writeFileSync(path, JSON.stringify({ hosts: {} }), { mode: 0o644 });
    const before = statSync(path).ino;
    writeHostsFile(path, { hosts: { x: { url: 'wss://h:1/v1', token: 't' } } });
    assert.notEqual(statSync(path).ino, before, 'replaced by rename, not rewritten in place');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(dir, 'b')), ['hosts.json']);
  });

  it('a failed write leaves the old file whole and no temp file behind', () => {
    const path = join(dir, 'c', 'hosts.json');
    writeHostsFile(path, { hosts: { keep: { url: 'wss://h:1/v1', token: 't' } } });
    // A directory where the file should be: the rename fails after the temp file was written.
    const blocked = join(dir, 'c', 'blocked.json');
    mkdirSync(join(blocked, 'sub'), { recursive: true });
    assert.throws(() => writeHostsFile(blocked, { hosts: {} }), (err: unknown) => err instanceof CliError && err.exitCode === EXIT.failed && /cannot write/.test(err.message));
    assert.deepEqual(readdirSync(join(dir, 'c')).sort(), ['blocked.json', 'hosts.json']);
    assert.deepEqual(readHostsFile(path).hosts.keep, { url: 'wss://h:1/v1', token: 't' });
  });

  it('a broken file is a config error (exit 2) naming the file and the problem', () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, '{"hosts": {');
    assert.throws(() => readHostsFile(path), usageError(/bad\.json is not valid JSON/));
    writeFileSync(path, JSON.stringify({ hosts: { 'web-1': { url: 'wss://h:1/v1' } } }));
    assert.throws(() => readHostsFile(path), usageError(/hosts\.web-1\.token/));
    writeFileSync(path, JSON.stringify({ hosts: { 'web-1': { url: 'wss://h:1/v1', token: 't', fingerprint: 'AB:CD' } } }));
    assert.throws(() => readHostsFile(path), usageError(/fingerprint: must be 64 lowercase hex digits/));
    writeFileSync(path, JSON.stringify({ hosts: { '../etc': { url: 'wss://h:1/v1', token: 't' } } }));
    assert.throws(() => readHostsFile(path), usageError(/host names must be names/));
    writeFileSync(path, JSON.stringify({ hosts: {}, extra: 1 }));
    assert.throws(() => readHostsFile(path), usageError(/extra/));
  });
});

describe('host names', () => {
  it('follow the API name rule', () => {
    for (const ok of ['web-1', 'a', 'db.prod', 'A_b', 'x'.repeat(63)]) assert.equal(validateHostName(ok), ok);
    for (const bad of ['', '-web', '.hidden', 'a/b', 'a b', 'x'.repeat(64), '__proto__']) assert.throws(() => validateHostName(bad), usageError(/invalid host name/), bad);
  });
});

describe('agent URLs', () => {
  const href = (text: string) => parseApiUrl(text).href;

  it('wss://host:port gets the API path /v1 when it has none', () => {
    assert.equal(href('wss://203.0.113.7:7443'), 'wss://203.0.113.7:7443/v1');
    assert.equal(href('wss://203.0.113.7:7443/'), 'wss://203.0.113.7:7443/v1');
    assert.equal(href('wss://203.0.113.7:7443/v1'), 'wss://203.0.113.7:7443/v1');
    assert.equal(href('wss://agent.example.com:9000/deckhand/v1'), 'wss://agent.example.com:9000/deckhand/v1');
    assert.equal(href('  WSS://Agent.Example.com:7443  '), 'wss://agent.example.com:7443/v1');
  });

  it('https:// means the same; without a port, wss means 443', () => {
    assert.equal(href('https://agent.example.com'), 'wss://agent.example.com/v1');
    assert.equal(parseApiUrl('wss://agent.example.com').port, '');
  });

  it('the shorthand host[:port] is wss, port 7443 by default', () => {
    assert.equal(href('1.2.3.4:7443'), 'wss://1.2.3.4:7443/v1');
    assert.equal(href('1.2.3.4:443'), 'wss://1.2.3.4/v1');
    assert.equal(href('1.2.3.4'), 'wss://1.2.3.4:7443/v1');
    assert.equal(href('web-1.example.com'), 'wss://web-1.example.com:7443/v1');
    assert.equal(href('[2001:db8::1]:7443'), 'wss://[2001:db8::1]:7443/v1');
    assert.equal(href('[2001:db8::1]'), 'wss://[2001:db8::1]:7443/v1');
  });

  it('refuses plain ws/http (the token would travel in the clear) and other nonsense, exit 2', () => {
    assert.throws(() => parseApiUrl('ws://1.2.3.4:7443'), usageError(/only served over TLS/));
    assert.throws(() => parseApiUrl('http://1.2.3.4:7443'), usageError(/only served over TLS/));
    assert.throws(() => parseApiUrl('ftp://1.2.3.4'), usageError(/unsupported scheme/));
    assert.throws(() => parseApiUrl(''), usageError(/empty/));
    assert.throws(() => parseApiUrl('wss://u:p@h:1'), usageError(/credentials/));
    assert.throws(() => parseApiUrl('wss://h:1/v1?x=1'), usageError(/query/));
    assert.throws(() => parseApiUrl('wss://h:99999'), usageError(/not a URL/));
  });
});

describe('choosing the target', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const file: HostsFile = {
    hosts: {
      'web-1': { url: 'wss://10.0.0.1:7443/v1', token: 't1', fingerprint: FP },
      'web-2': { url: 'wss://web-2.example.com/v1', token: 't2' },
    },
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'dhtest-cli-target-'));
    env = { XDG_CONFIG_HOME: dir };
    writeHostsFile(hostsFilePath(env), file);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('-H NAME picks a host from the file, and wins over DECKHAND_URL', () => {
    assert.deepEqual(resolveTarget({ host: 'web-1' }, { ...env, DECKHAND_URL: 'wss://x:1', DECKHAND_TOKEN: 't' }), {
      name: 'web-1',
      url: 'wss://10.0.0.1:7443/v1',
      source: 'hosts-file',
      token: 't1',
      fingerprint: FP,
    });
    assert.deepEqual(resolveTarget({ host: 'web-2' }, env), { name: 'web-2', url: 'wss://web-2.example.com/v1', source: 'hosts-file', token: 't2' });
  });

  it('DECKHAND_URL + DECKHAND_TOKEN (+ DECKHAND_FINGERPRINT in any spelling) skip the file', () => {
    const t = resolveTarget({}, { ...env, DECKHAND_URL: '127.0.0.1:7443', DECKHAND_TOKEN: 'ci', DECKHAND_FINGERPRINT: `SHA256:${FP.toUpperCase().match(/../g)!.join(':')}` });
    assert.deepEqual(t, { name: '127.0.0.1:7443', url: 'wss://127.0.0.1:7443/v1', source: 'env', token: 'ci', fingerprint: FP });
    assert.throws(() => resolveTarget({}, { DECKHAND_URL: 'wss://h:1' }), usageError(/DECKHAND_TOKEN is not/));
    assert.throws(() => resolveTarget({}, { DECKHAND_URL: 'wss://h:1', DECKHAND_TOKEN: 't', DECKHAND_FINGERPRINT: 'nope' }), usageError(/DECKHAND_FINGERPRINT: "nope" is not a SHA-256 fingerprint/));
  });

  it('DECKHAND_HOST names a host of the file; several hosts and no choice is exit 2', () => {
    assert.equal(resolveTarget({}, { ...env, DECKHAND_HOST: 'web-2' }).name, 'web-2');
    assert.throws(() => resolveTarget({}, { ...env, DECKHAND_HOST: 'web-9' }), usageError(/no host named "web-9" \(from DECKHAND_HOST\)/));
    assert.throws(() => resolveTarget({}, env), usageError(/2 hosts configured \(web-1, web-2\)/));
    assert.throws(() => resolveTarget({ host: 'nope' }, env), usageError(/no host named "nope" in .* \(known: web-1, web-2\); add it with `deckhand host add nope URL --token TOKEN`/));
  });

  it('the only host is the default; --all takes every host, sorted', () => {
    const single = { XDG_CONFIG_HOME: join(dir, 'single') };
    writeHostsFile(hostsFilePath(single), { hosts: { only: { url: 'wss://h:1/v1', token: 't' } } });
    assert.equal(resolveTarget({}, single).name, 'only');
    assert.deepEqual(allTargets(env).map((t) => t.name), ['web-1', 'web-2']);
    assert.throws(() => allTargets({ XDG_CONFIG_HOME: join(dir, 'empty') }), usageError(/no hosts configured/));
  });
});
