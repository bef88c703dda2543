// Before authentication: the gate's caps and deadline on real sockets, and
// failed logins audited as counts per address and window.
import assert from 'node:assert/strict';
import { createServer, Socket, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { AuditEntry } from '../../agent/events/audit.js';
import { FailedAuthAudit } from '../../agent/api/authaudit.js';
import { normalizeAddress, PreAuthGate } from '../../agent/api/preauth.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the pre-authentication gate', () => {
  let server: Server;
  let port = 0;
  const gate = new PreAuthGate({ overall: 6, perAddress: 3, deadlineMs: 300 });
  before(async () => {
    server = createServer((s) => gate.admit(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  /** A client socket from `from`, resolved with when the server closed it (or null while open). */
  function open(from: string): { socket: Socket; closed: Promise<number> } {
    const socket = new Socket();
    const started = Date.now();
    const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now() - started)));
    socket.on('error', () => {});
    socket.connect({ port, host: '127.0.0.1', localAddress: from });
    return { socket, closed };
  }

  it('refuses past the per-address cap, counts others apart, and drops what does not authenticate in time', async () => {
    const a = [1, 2, 3, 4].map(() => open('127.0.0.2'));
    const b = [1, 2, 3].map(() => open('127.0.0.3'));
    await sleep(100);
    assert.equal(gate.pendingCount(), 6, 'three from each address held');
    const fourth = await Promise.race([a[3]!.closed, sleep(200).then(() => -1)]);
    assert.ok(fourth >= 0 && fourth < 150, `the 4th from one address is closed at once (${fourth} ms)`);
    const overall = open('127.0.0.4');
    const refusedAt = await Promise.race([overall.closed, sleep(200).then(() => -1)]);
    assert.ok(refusedAt >= 0 && refusedAt < 150, `past the overall cap, closed at once (${refusedAt} ms)`);
    const held = await Promise.all([...a.slice(0, 3), ...b].map((c) => c.closed));
    assert.ok(held.every((ms) => ms >= 250 && ms < 1000), `idle ones dropped at the deadline: ${held.join(', ')} ms`);
    await sleep(50);
    assert.equal(gate.pendingCount(), 0);
    assert.ok(gate.refused >= 2);
  });

  it('an authenticated connection leaves the count and its deadline', async () => {
    const c = open('127.0.0.5');
    await new Promise((r) => c.socket.once('connect', r));
    await sleep(50);
    gate.authenticated(c.socket.localAddress, c.socket.localPort);
    assert.equal(gate.pendingCount(), 0);
    const closed = await Promise.race([c.closed, sleep(600).then(() => -1)]);
    assert.equal(closed, -1, 'not dropped at the deadline');
    c.socket.destroy();
  });

  it('IPv4-mapped addresses are one address', () => {
    assert.equal(normalizeAddress('::ffff:127.0.0.9'), '127.0.0.9');
    assert.equal(normalizeAddress('::1'), '::1');
  });
});

describe('failed logins in the audit log', () => {
  it('one entry per address and window, with a count and the reasons', () => {
    const written: AuditEntry[] = [];
    let now = 0;
    const audit = new FailedAuthAudit((e) => written.push(e), { windowMs: 60_000, maxAddressEntries: 100, maxTracked: 10_000 }, () => now);
    for (let i = 0; i < 11; i++) audit.record('10.0.0.1', i === 0 ? 'no token' : 'unknown or revoked token');
    audit.record('10.0.0.2', 'no token');
    assert.equal(written.length, 0, 'nothing written within the window');
    now = 60_000;
    audit.record('10.0.0.1', 'no token'); // the next window
    assert.equal(written.length, 2);
    assert.deepEqual(written[0]!.data, { count: 11, reasons: { 'no token': 1, 'unknown or revoked token': 10 }, since: new Date(0).toISOString() });
    assert.equal(written[0]!.message, 'authentication failed 11 times (no token, unknown or revoked token)');
    assert.equal(written[1]!.message, 'authentication failed once (no token)');
    audit.flush();
    assert.equal(written.length, 3, 'the open window is written when the agent stops');
  });

  it('100,000 failures from 1,000 addresses: at most 100 address entries and one summary a window', () => {
    const written: AuditEntry[] = [];
    const audit = new FailedAuthAudit((e) => written.push(e), { windowMs: 60_000, maxAddressEntries: 100, maxTracked: 500 }, () => 0);
    for (let i = 0; i < 100_000; i++) audit.record(`10.0.${(i % 1000) >> 8}.${i % 256}`, 'no token');
    audit.flush();
    assert.equal(written.length, 101);
    const summary = written.at(-1)!;
    assert.equal(written.slice(0, 100).reduce((n, e) => n + Number(e.data!.count), 0) + Number(summary.data!.count), 100_000, 'every failure counted');
    assert.equal(summary.data!.addresses, 400);
    assert.ok(Number(summary.data!.untracked) > 0, 'addresses past the tracked ones are counted too');
  });
});
