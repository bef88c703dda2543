// Exit codes (SPEC section 6) and what the operator is told; fingerprints;
// the JSON-RPC client's bookkeeping against a scripted socket.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type WebSocket from 'ws';
import { ERROR } from '../../agent/api/protocol.js';
import { RpcClient } from '../../server-cli/client.js';
import { asCliError, CliError, connectError, EXIT, rpcError, upgradeRefusedError, type TargetLabel } from '../../server-cli/errors.js';
import { formatFingerprint, parseFingerprintOption } from '../../server-cli/fingerprint.js';

const fromFile: TargetLabel = { name: 'web-1', url: 'wss://203.0.113.7:7443/v1', source: 'hosts-file' };
const fromEnv: TargetLabel = { name: '203.0.113.7:7443', url: 'wss://203.0.113.7:7443/v1', source: 'env' };

describe('exit codes', () => {
  it('the upgrade refused: 401 and 429 are exit 3 with the fix; other statuses too', () => {
    const e401 = upgradeRefusedError(401, fromFile);
    assert.equal(e401.exitCode, EXIT.unreachable);
    assert.match(e401.message, /^token rejected by web-1: create one with `deckhand-agent token create --name NAME --scope read` on the server, then `deckhand host remove web-1` and add it again/);
    assert.match(upgradeRefusedError(401, fromEnv).message, /then set DECKHAND_TOKEN to it/);
    const e429 = upgradeRefusedError(429, fromFile);
    assert.equal(e429.exitCode, EXIT.unreachable);
    assert.match(e429.message, /too many failed attempts; wait a minute/);
    assert.match(upgradeRefusedError(503, fromFile).message, /connection limit/);
    const e404 = upgradeRefusedError(404, fromFile);
    assert.equal(e404.exitCode, EXIT.unreachable);
    assert.match(e404.message, /answered HTTP 404 instead of a WebSocket upgrade/);
  });

  it('socket failures are exit 3 naming the URL', () => {
    const err = (code: string) => connectError(Object.assign(new Error(code), { code }), fromFile);
    for (const [code, reason] of [
      ['ECONNREFUSED', 'connection refused'],
      ['ENOTFOUND', 'name does not resolve'],
      ['ETIMEDOUT', 'timed out'],
      ['ECONNRESET', 'connection reset'],
      ['EHOSTUNREACH', 'no route to host'],
    ]) {
      const e = err(code!);
      assert.equal(e.exitCode, EXIT.unreachable, code);
      assert.equal(e.reason, reason);
      assert.ok(e.message.startsWith('cannot connect to wss://203.0.113.7:7443/v1 (host web-1): '), e.message);
    }
    assert.equal(connectError(new Error('weird'), fromEnv).message, 'cannot connect to wss://203.0.113.7:7443/v1: weird');
  });

  it('JSON-RPC errors: forbidden is 3, invalid params is 2, the rest is 1', () => {
    const forbidden = rpcError({ code: ERROR.forbidden, message: 'forbidden: token.create needs a token of scope admin (this one is read)', data: { needs: 'admin', have: 'read' } }, 'token.create', 'web-1');
    assert.equal(forbidden.exitCode, EXIT.unreachable);
    assert.equal(forbidden.message, 'token lacks the scope to create a token on web-1 (needs admin, this token is read); create one with `deckhand-agent token create --name NAME --scope admin` on web-1');
    // Without data, the scope comes from the shared contract.
    assert.match(rpcError({ code: ERROR.forbidden, message: 'forbidden' }, 'token.list', 'web-1').message, /\(needs admin\)/);

    const invalid = rpcError({ code: ERROR.invalidParams, message: 'invalid params: since: bad', data: [{ path: 'since', message: 'bad' }] }, 'events.list', 'web-1');
    assert.equal(invalid.exitCode, EXIT.usage);
    assert.equal(invalid.message, 'web-1 refused the request to list the events: invalid params: since: bad');

    for (const code of [ERROR.notFound, ERROR.conflict, ERROR.failed, ERROR.internal, ERROR.methodNotFound, -1]) {
      assert.equal(rpcError({ code, message: 'm' }, 'x.y', 'web-1').exitCode, EXIT.failed, String(code));
    }
    assert.equal(rpcError({ code: ERROR.conflict, message: 'token "ci" exists' }, 'token.create', 'web-1', { name: 'ci', scope: 'read' }).message, 'cannot create the token ci on web-1: token "ci" exists');
    // The operator's words, not the method's name.
    assert.equal(rpcError({ code: ERROR.failed, message: 'no such service' }, 'stack.logs', 'web-1', { service: 'web' }).message, 'cannot read the logs of web on web-1: no such service');
    assert.match(rpcError({ code: ERROR.methodNotFound, message: 'method not available on this agent: stack.ps (its duty is not configured)' }, 'stack.ps', 'web-1').message, /^web-1 cannot list the services: method not available on this agent: stack\.ps \(its duty is not configured\)$/);
    assert.match(rpcError({ code: ERROR.methodNotFound, message: 'method not found: x' }, 'x', 'web-1').message, /upgrade deckhand-agent/);
    assert.equal(rpcError({ code: ERROR.failed, message: 'failed', data: { reason: 'disk full' } }, 'x', 'h').message, 'cannot call x on h: failed: disk full');
  });

  it('anything else is exit 1 with its message', () => {
    const e = asCliError(new Error('boom'));
    assert.equal(e.exitCode, EXIT.failed);
    assert.equal(e.message, 'boom');
    const same = new CliError('x', EXIT.usage);
    assert.equal(asCliError(same), same);
  });
});

describe('fingerprints', () => {
  const hex = '0f'.repeat(32);
  it('are shown as SHA256: and colon-separated uppercase hex, like openssl', () => {
    assert.equal(formatFingerprint(hex), `SHA256:${'0F:'.repeat(31)}0F`);
  });

  it('are read ignoring colons, case and a leading SHA256:', () => {
    for (const spelling of [hex, hex.toUpperCase(), formatFingerprint(hex), `sha256:${hex}`, `  ${formatFingerprint(hex).toLowerCase()}  `]) {
      assert.equal(parseFingerprintOption(spelling), hex, spelling);
    }
  });

  it('anything else is a usage error naming the option', () => {
    for (const bad of ['', 'abc', '0f'.repeat(31), `${hex}00`, 'SHA1:00', 'zz'.repeat(32)]) {
      assert.throws(() => parseFingerprintOption(bad), (err: unknown) => err instanceof CliError && err.exitCode === EXIT.usage && /^--fingerprint: /.test(err.message), bad);
    }
  });
});

/** A stand-in for a ws WebSocket: records what is sent, lets the test answer. */
class ScriptedSocket extends EventEmitter {
  readonly OPEN = 1;
  readonly CONNECTING = 0;
  readyState = 1;
  sent: { id: number; method: string; params: unknown }[] = [];
  send(text: string, cb?: (err?: Error) => void): void {
    this.sent.push(JSON.parse(text));
    cb?.();
  }
  close(): void {
    this.readyState = 3;
    this.emit('close', 1000, Buffer.alloc(0));
  }
  terminate(): void {
    this.close();
  }
  answer(msg: object): void {
    this.emit('message', Buffer.from(JSON.stringify({ jsonrpc: '2.0', ...msg })), false);
  }
}

describe('JSON-RPC client', () => {
  const make = () => {
    const socket = new ScriptedSocket();
    return { socket, client: new RpcClient(socket as unknown as WebSocket, 'web-1') };
  };

  it('matches answers to calls by id, whatever the order', async () => {
    const { socket, client } = make();
    const a = client.call('stack.ps', {});
    const b = client.call('metrics.series', {});
    const [first, second] = socket.sent;
    assert.deepEqual(first, { jsonrpc: '2.0', id: 1, method: 'stack.ps', params: {} });
    socket.answer({ id: second!.id, result: { series: ['host.cpu'] } });
    socket.answer({ id: first!.id, result: { services: [] } });
    assert.deepEqual(await a, { services: [] });
    assert.deepEqual(await b, { series: ['host.cpu'] });
  });

  it('an error answer becomes the mapped CliError', async () => {
    const { socket, client } = make();
    const p = client.call('token.list', {});
    socket.answer({ id: 1, error: { code: ERROR.forbidden, message: 'forbidden' } });
    await assert.rejects(p, (err: CliError) => err.exitCode === EXIT.unreachable && err.rpcCode === ERROR.forbidden);
  });

  it('no answer in time: exit 1 saying which call', async () => {
    const { client } = make();
    await assert.rejects(client.call('status.get', {}, 20), (err: CliError) => err.exitCode === EXIT.failed && /web-1 did not answer within 0 s when asked to read the status/.test(err.message));
  });

  it('streams: events that come in the same burst as the answer are not lost; end resolves done', async () => {
    const { socket, client } = make();
    const seen: unknown[] = [];
    const started = client.stream('stack.logs', { follow: true }, (e) => seen.push(e));
    // The answer and two events, delivered back to back before any promise callback runs.
    socket.answer({ id: 1, result: { stream: 7 } });
    socket.answer({ method: 'stream', params: { stream: 7, event: { type: 'line', service: 'web', text: 'a' } } });
    socket.answer({ method: 'stream', params: { stream: 8, event: { type: 'line', service: 'web', text: 'not ours' } } });
    socket.answer({ method: 'stream', params: { stream: 7, event: { type: 'end', ok: true, lines: 1 } } });
    const running = await started;
    assert.equal(running.id, 7);
    assert.deepEqual(await running.done, { type: 'end', ok: true, lines: 1 });
    assert.deepEqual(seen, [{ type: 'line', service: 'web', text: 'a' }]);
  });

  it('a connection lost mid-stream fails the stream and pending calls with exit 3', async () => {
    const { socket, client } = make();
    const started = client.stream('stack.logs', {}, () => {});
    socket.answer({ id: 1, result: { stream: 1 } });
    const running = await started;
    const pending = client.call('status.get', {});
    socket.emit('close', 4001, Buffer.from('token revoked'));
    await assert.rejects(running.done, (err: CliError) => err.exitCode === EXIT.unreachable && /closed: token revoked before the stream ended/.test(err.message));
    await assert.rejects(pending, (err: CliError) => err.exitCode === EXIT.unreachable);
    await assert.rejects(client.call('status.get', {}), (err: CliError) => err.exitCode === EXIT.unreachable);
  });

  it('cancel sends stream.cancel with the id', async () => {
    const { socket, client } = make();
    const started = client.stream('stack.logs', { follow: true }, () => {});
    socket.answer({ id: 1, result: { stream: 3 } });
    await started;
    const cancelled = client.cancel(3);
    assert.deepEqual(socket.sent.at(-1), { jsonrpc: '2.0', id: 2, method: 'stream.cancel', params: { stream: 3 } });
    socket.answer({ id: 2, result: { ok: true } });
    await cancelled;
    // The agent sends nothing after a cancel: done resolves anyway.
    assert.deepEqual(await (await started).done, { type: 'end', ok: true, cancelled: true });
  });
});
