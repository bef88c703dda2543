// The API duty: WebSocket over TLS on api.listen. Authentication happens on
// the upgrade request, before any WebSocket exists: a wrong or missing token
// gets 401, and an address with 10 failures in a minute gets 429 for a minute.
// Until then a connection is pending: capped, and given a few seconds
// (preauth.ts). Failures are audited as counts per address and minute
// (authaudit.ts). Plain node:https + ws: the API is one upgrade route.
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import type { Duty, DutyContext } from '../duty.js';
import type { AuditLog } from '../events/audit.js';
import type { ApiConfig } from './config.js';
import { API_PATH, MAX_MESSAGE_BYTES } from './protocol.js';
import { FailedAuthAudit } from './authaudit.js';
import { normalizeAddress, PREAUTH_LIMITS, PreAuthGate } from './preauth.js';
import { FailedAuthLimiter } from './ratelimit.js';
import type { MethodTable } from './rpc.js';
import { Session } from './session.js';
import type { TokenStore } from './tokens.js';
import { VERSION } from '../version.js';

export const API_LIMITS = {
  connections: 1000,
  /** Ping every connection this often; one that missed the last pong is dropped. */
  heartbeatMs: Number(process.env.DECKHAND_API_HEARTBEAT_MS) || 30_000,
  /** How often sessions of tokens revoked by another process (the token CLI) are looked for and closed. */
  revocationCheckMs: 250,
};

/** How long stop() lets open streams deliver their end before closing connections (the daemon allows 5 s in all). */
const STREAMS_GRACE_MS = 1500;

export class ApiDuty implements Duty {
  readonly name = 'api';
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private readonly sessions = new Set<Session>();
  private readonly limiter = new FailedAuthLimiter();
  private readonly gate = new PreAuthGate();
  private authAudit: FailedAuthAudit | undefined;
  private timers: NodeJS.Timeout[] = [];
  private fingerprint = '';
  private unsubscribe: (() => void) | undefined;
  /** A listen started by the first issuance of the managed certificate. */
  private listening: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly config: ApiConfig,
    private readonly ctx: DutyContext,
    private readonly tokens: TokenStore,
    private readonly audit: AuditLog,
    private readonly methodTable: () => MethodTable,
  ) {}

  async start(): Promise<void> {
    const tls = this.config.tls;
    if ('acme' in tls) {
      // A managed certificate: renewals are picked up without a restart, and
      // on a fresh box the API listens once the first one is issued.
      this.unsubscribe = this.ctx.events.subscribe((e) => {
        if (e.type !== 'cert.renewed' || e.subject !== tls.acme || this.stopped) return;
        if (this.server) this.reloadTls();
        else if (!this.listening) {
          this.listening = this.listen().catch((err: unknown) => {
            this.listening = undefined;
            this.ctx.reportError(this.name, err);
          });
        }
      });
      if (!existsSync(join(this.ctx.config.dataDir, 'certs', tls.acme, 'fullchain.pem'))) {
        this.ctx.log.warn({ certificate: tls.acme }, 'API waits for its certificate: it listens once the first one is issued (deckhand-agent logs, /health certificate check)');
        return;
      }
    }
    await this.listen();
  }

  private async listen(): Promise<void> {
    const { cert, key } = this.readTls();
    this.fingerprint = createHash('sha256').update(new X509Certificate(cert).raw).digest('hex');
    const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES, perMessageDeflate: false });
    // The CLI compares it with its own (server-cli/version-check.ts).
    wss.on('headers', (headers) => headers.push(`X-Deckhand-Version: ${VERSION}`));
    const deadline = PREAUTH_LIMITS.deadlineMs;
    const server = createServer({ cert, key, minVersion: 'TLSv1.2', handshakeTimeout: deadline }, (_req, res) => {
      res.writeHead(426, { 'content-type': 'application/json', upgrade: 'websocket', connection: 'close' }).end(JSON.stringify({ error: `connect with a WebSocket to ${API_PATH}` }));
    });
    // The gate's deadline covers TLS and the upgrade together; these make
    // node's own HTTP parser give up as early.
    server.headersTimeout = deadline;
    server.requestTimeout = deadline;
    server.keepAliveTimeout = 1000;
    server.on('connection', (socket: Socket) => this.gate.admit(socket));
    server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    server.on('tlsClientError', () => {
      /* scanners and clients that refuse our certificate: nothing to do */
    });
    const { host, port } = this.config.listen;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`API cannot listen on ${host}:${port}: ${err.message} (api.listen)`)));
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    this.wss = wss;
    this.authAudit = new FailedAuthAudit((entry) => this.audit.append(entry));
    this.timers.push(setInterval(() => this.heartbeat(), API_LIMITS.heartbeatMs).unref());
    this.timers.push(setInterval(() => this.closeRevoked(), API_LIMITS.revocationCheckMs).unref());
    this.ctx.log.info({ listen: `${host}:${port}`, fingerprint: `SHA256:${this.fingerprint}` }, 'API listening');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.listening;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.authAudit?.flush();
    this.authAudit = undefined;
    // Long work ends at its next safe point once the agent is stopping; its last
    // stream event ("the agent is stopping ...") should reach the caller first.
    const deadline = Date.now() + STREAMS_GRACE_MS;
    while (Date.now() < deadline && [...this.sessions].some((s) => s.streamCount() > 0)) await new Promise((r) => setTimeout(r, 25));
    for (const s of this.sessions) s.close(1001, 'agent stopping');
    this.sessions.clear();
    this.wss?.close();
    const server = this.server;
    this.server = undefined;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    this.gate.closeAll();
  }

  /** Closes every connection made with this token (by id: a new token of the same name is someone else). */
  closeSessionsOf(tokenId: number): void {
    for (const s of this.sessions) if (s.token.id === tokenId) s.close(4001, 'token revoked');
  }

  connectionCount(): number {
    return this.sessions.size;
  }

  /** Connections still to authenticate, and how many were refused at the door. */
  pendingConnections(): { pending: number; refused: number } {
    return { pending: this.gate.pendingCount(), refused: this.gate.refused };
  }

  /** Serves the renewed pair to new connections; open ones keep theirs. */
  private reloadTls(): void {
    if (!this.server) return;
    try {
      const { cert, key } = this.readTls();
      this.server.setSecureContext({ cert, key, minVersion: 'TLSv1.2' });
      this.fingerprint = createHash('sha256').update(new X509Certificate(cert).raw).digest('hex');
      this.ctx.log.info({ fingerprint: `SHA256:${this.fingerprint}` }, 'API serves the renewed certificate');
    } catch (err) {
      this.ctx.reportError(this.name, err);
    }
  }

  private readTls(): { cert: Buffer; key: Buffer } {
    const tls = this.config.tls;
    const [certFile, keyFile] =
      'acme' in tls
        ? [join(this.ctx.config.dataDir, 'certs', tls.acme, 'fullchain.pem'), join(this.ctx.config.dataDir, 'certs', tls.acme, 'privkey.pem')]
        : [tls.cert, tls.key];
    try {
      return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
    } catch (err) {
      throw new Error(`API cannot read its TLS certificate or key (${(err as Error).message}); check api.tls${'acme' in tls ? ` (certificate "${tls.acme}" not issued yet?)` : ''}`);
    }
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const address = normalizeAddress(req.socket.remoteAddress);
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    if (path !== API_PATH) return refuse(socket, 404, 'Not Found', { error: `the API is at ${API_PATH}` });
    if (this.limiter.isBlocked(address)) {
      // Counted with the failures (a count per address and minute costs no write of its own).
      this.authAudit?.record(address, 'refused for a minute after 10 failures');
      return refuse(socket, 429, 'Too Many Requests', { error: 'too many failed authentications from this address; retry in a minute' }, { 'retry-after': '60' });
    }
    const header = req.headers.authorization ?? '';
    const match = /^Bearer ([A-Za-z0-9_\-.~+/=]{1,512})$/.exec(header);
    const identity = match ? this.tokens.verify(match[1]!) : null;
    if (!identity) {
      const reason = header === '' ? 'no token' : match ? 'unknown or revoked token' : 'malformed Authorization header';
      const nowBlocked = this.limiter.fail(address);
      this.authAudit?.record(address, reason);
      if (nowBlocked) this.ctx.log.warn({ address }, 'too many failed authentications: address refused for a minute');
      return refuse(socket, 401, 'Unauthorized', { error: 'missing or invalid token' }, { 'www-authenticate': 'Bearer' });
    }
    if (this.sessions.size >= API_LIMITS.connections) {
      return refuse(socket, 503, 'Service Unavailable', { error: `connection limit reached (${API_LIMITS.connections})` });
    }
    this.gate.authenticated(req.socket.remoteAddress, req.socket.remotePort);
    this.wss!.handleUpgrade(req, socket, head, (ws) => {
      const session = new Session(
        ws,
        identity,
        address,
        { methods: this.methodTable, audit: this.audit, onInternalError: (method, err) => this.ctx.reportError(`api ${method}`, err) },
        {
          onSlowClient: (s) => this.ctx.log.warn({ actor: s.actor, address: s.address, streams: s.streamCount() }, 'dropped a client that did not keep up with its streams'),
          stillAuthorized: (s) => this.tokens.isActive(s.token),
        },
      );
      this.sessions.add(session);
      ws.on('close', () => this.sessions.delete(session));
    });
  }

  private heartbeat(): void {
    for (const s of this.sessions) {
      if (!s.alive) {
        s.ws.terminate();
        this.sessions.delete(s);
        continue;
      }
      s.alive = false;
      s.ws.ping();
    }
  }

  private closeRevoked(): void {
    if (this.sessions.size === 0) return;
    for (const s of this.sessions) if (!this.tokens.isActive(s.token)) s.close(4001, 'token revoked');
  }
}

function refuse(socket: Duplex, status: number, text: string, body: object, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  const lines = [
    `HTTP/1.1 ${status} ${text}`,
    'content-type: application/json',
    `content-length: ${Buffer.byteLength(payload)}`,
    'connection: close',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${payload}`);
}
