// The pin is checked right after the TLS handshake, before a byte of HTTP:
// proven against a real local TLS server (openssl-made self-signed
// certificates) that records every decrypted byte it receives.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import { openApi, probeCertificate, type Target } from '../../server-cli/connect.js';
import { CliError, EXIT } from '../../server-cli/errors.js';
import { fingerprintOf, formatFingerprint } from '../../server-cli/fingerprint.js';
import { makeCert as makeTestCert, type TestCert } from '../helpers/tls.js';

function makeCert(dir: string, name: string) {
  return makeTestCert(dir, name, 'IP:127.0.0.1,DNS:localhost');
}

/** A TLS server that never answers: it only records what a client sends after the handshake. */
class RecordingTlsServer {
  readonly server: TlsServer;
  received = Buffer.alloc(0);
  /** TCP connections accepted: proves the client did connect, whatever it then sent. */
  connections = 0;
  /** Connections the client has closed: by then every byte it sent has been read here. */
  closed = 0;

  constructor(cert: TestCert) {
    this.server = createTlsServer({ cert: cert.cert, key: cert.key }, (socket) => {
      socket.on('data', (chunk: Buffer) => (this.received = Buffer.concat([this.received, chunk])));
    });
    this.server.on('connection', (raw: Socket) => {
      this.connections++;
      raw.on('close', () => this.closed++);
    });
    this.server.on('tlsClientError', () => {});
  }

  async listen(): Promise<number> {
    await new Promise<void>((res) => this.server.listen(0, '127.0.0.1', res));
    return (this.server.address() as AddressInfo).port;
  }

  /** Resolves once the client has hung up on every connection: nothing more can arrive. */
  async clientsGone(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.connections === 0 || this.closed < this.connections) {
      if (Date.now() > deadline) throw new Error(`the client kept ${this.connections - this.closed} of ${this.connections} connections open`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): Promise<void> {
    return new Promise((res) => this.server.close(() => res()));
  }
}

/** A server that accepts TCP and never says a word, not even the TLS handshake. */
async function silentServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createNetServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((res) => server.close(() => res()));
    },
  };
}

describe('pinned connection', () => {
  let dir: string;
  let good: TestCert;
  let other: TestCert;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'dhtest-cli-connect-'));
    good = makeCert(dir, 'agent');
    other = makeCert(dir, 'impostor');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('computes the fingerprint openssl shows', () => {
    const shown = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', join(dir, 'agent.crt')], { encoding: 'utf8' });
    assert.equal(shown.trim().split('=')[1], formatFingerprint(good.fingerprint).slice('SHA256:'.length));
  });

  it('a wrong pin: refused with exit 3 naming both fingerprints, and the server never receives a byte', async () => {
    const server = new RecordingTlsServer(good);
    const port = await server.listen();
    try {
      const target: Target = { name: 'web-1', url: `wss://127.0.0.1:${port}/v1`, source: 'hosts-file', token: 'SECRET-TOKEN', fingerprint: other.fingerprint };
      await assert.rejects(openApi(target, 5000), (err: unknown) => {
        assert.ok(err instanceof CliError);
        assert.equal(err.exitCode, EXIT.unreachable);
        assert.match(err.message, /CERTIFICATE HAS CHANGED/);
        assert.ok(err.message.includes(formatFingerprint(other.fingerprint)), 'names the pinned fingerprint');
        assert.ok(err.message.includes(formatFingerprint(good.fingerprint)), 'names the presented fingerprint');
        assert.ok(!err.message.includes('SECRET-TOKEN'));
        return true;
      });
      await server.clientsGone();
      assert.equal(server.connections, 1, 'the client did connect');
      assert.equal(server.received.length, 0, `received: ${server.received.toString()}`);

      // The control: the same server, the right pin, and the upgrade with the token arrives.
      await assert.rejects(openApi({ ...target, fingerprint: good.fingerprint }, 500), (err: CliError) => err.reason === 'timed out');
      assert.match(server.received.toString(), /^GET \/v1 HTTP\/1\.1\r\n/);
      assert.match(server.received.toString(), /\r\nAuthorization: Bearer SECRET-TOKEN\r\n/i);
    } finally {
      await server.close();
    }
  });

  it('no pin and a self-signed certificate: refused with exit 3, showing the fingerprint to pin; nothing sent', async () => {
    const server = new RecordingTlsServer(good);
    const port = await server.listen();
    try {
      const target: Target = { name: '127.0.0.1:1', url: `wss://127.0.0.1:${port}/v1`, source: 'env', token: 'SECRET-TOKEN' };
      await assert.rejects(openApi(target, 5000), (err: unknown) => {
        assert.ok(err instanceof CliError);
        assert.equal(err.exitCode, EXIT.unreachable);
        assert.match(err.message, /not trusted/);
        assert.ok(err.message.includes(`DECKHAND_FINGERPRINT=${formatFingerprint(good.fingerprint)}`), err.message);
        return true;
      });
      await server.clientsGone();
      assert.equal(server.received.length, 0);
    } finally {
      await server.close();
    }
  });

  it('the right pin: the upgrade request, with the token, reaches the server', async () => {
    const https: HttpsServer = createHttpsServer({ cert: good.cert, key: good.key });
    const wss = new WebSocketServer({ noServer: true });
    let authorization: string | undefined;
    https.on('upgrade', (req, socket, head) => {
      authorization = req.headers.authorization;
      assert.equal(req.url, '/v1');
      wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m) => ws.send(m.toString())));
    });
    await new Promise<void>((res) => https.listen(0, '127.0.0.1', res));
    const port = (https.address() as AddressInfo).port;
    try {
      const ws = await openApi({ name: 'web-1', url: `wss://127.0.0.1:${port}/v1`, source: 'hosts-file', token: 'SECRET-TOKEN', fingerprint: good.fingerprint }, 5000);
      assert.equal(authorization, 'Bearer SECRET-TOKEN');
      const echoed = await new Promise<string>((res) => {
        ws.once('message', (m) => res(m.toString()));
        ws.send('ping');
      });
      assert.equal(echoed, 'ping');
      ws.terminate();
    } finally {
      wss.close();
      https.closeAllConnections();
      await new Promise((res) => https.close(res));
    }
  });

  it('HTTP 401 and 429 on the upgrade: exit 3 saying what to do', async () => {
    let status = 401;
    const https = createHttpsServer({ cert: good.cert, key: good.key }, (_req, res) => res.writeHead(404).end());
    https.on('upgrade', (_req, socket) => socket.end(`HTTP/1.1 ${status} No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`));
    await new Promise<void>((res) => https.listen(0, '127.0.0.1', res));
    const port = (https.address() as AddressInfo).port;
    const target: Target = { name: 'web-1', url: `wss://127.0.0.1:${port}/v1`, source: 'hosts-file', token: 'wrong', fingerprint: good.fingerprint };
    try {
      await assert.rejects(openApi(target, 5000), (err: CliError) => {
        assert.equal(err.exitCode, EXIT.unreachable);
        assert.match(err.message, /^token rejected by web-1: create one with `deckhand-agent token create --name NAME --scope read` on the server/);
        return true;
      });
      status = 429;
      await assert.rejects(openApi(target, 5000), (err: CliError) => {
        assert.equal(err.exitCode, EXIT.unreachable);
        assert.match(err.message, /too many failed attempts; wait a minute/);
        return true;
      });
    } finally {
      https.closeAllConnections();
      await new Promise((res) => https.close(res));
    }
  });

  it('connection refused and a silent server: exit 3 naming the URL', async () => {
    const silent = await silentServer();
    const port = silent.port;
    try {
      const slow = { name: 'web-1', url: `wss://127.0.0.1:${port}/v1`, source: 'hosts-file' as const, token: 't', fingerprint: good.fingerprint };
      const t0 = Date.now();
      await assert.rejects(openApi(slow, 300), (err: CliError) => {
        assert.equal(err.exitCode, EXIT.unreachable);
        assert.equal(err.reason, 'timed out');
        assert.ok(err.message.includes(slow.url));
        return true;
      });
      assert.ok(Date.now() - t0 < 3000);
    } finally {
      await silent.close();
    }
    await assert.rejects(openApi({ name: 'web-1', url: `wss://127.0.0.1:${port}/v1`, source: 'hosts-file', token: 't' }, 2000), (err: CliError) => {
      assert.equal(err.exitCode, EXIT.unreachable);
      assert.equal(err.reason, 'connection refused');
      assert.match(err.message, new RegExp(`cannot connect to wss://127\\.0\\.0\\.1:${port}/v1 \\(host web-1\\): connection refused`));
      return true;
    });
  });

  it('probeCertificate reads the certificate without sending anything', async () => {
    const server = new RecordingTlsServer(good);
    const port = await server.listen();
    try {
      const cert = await probeCertificate({ name: 'web-1', url: `wss://127.0.0.1:${port}/v1`, source: 'hosts-file' });
      assert.equal(cert.fingerprint, good.fingerprint);
      assert.equal(cert.authorized, false);
      assert.match(cert.subject, /CN=agent/);
      await server.clientsGone();
      assert.equal(server.received.length, 0);
    } finally {
      await server.close();
    }
  });
});
