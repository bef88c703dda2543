// The pinned connection to an agent's API.
//
// Order matters: TCP, TLS handshake, then the certificate is checked (the pin,
// or a public CA's word when there is no pin), and only a socket that passed
// is handed to the WebSocket client, which then sends the HTTP upgrade with
// the token. A server whose certificate does not match never receives a byte
// of HTTP, so it never sees the token.
//
// The handshake itself always runs with rejectUnauthorized: false and the
// check is made here, on 'secureConnect', for both cases: Node's own
// `authorized` flag (chain and host name, what rejectUnauthorized: true would
// enforce) when there is no pin, the SHA-256 of the DER bytes when there is.
// One path for both, and the refusal can show the fingerprint the server
// presented, which Node's early rejection would not let us read.
import { connect as netConnect, isIP } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import { CliError, connectError, EXIT, isNotTls, notTlsError, type PlainAnswer, upgradeRefusedError, type TargetLabel, whereOf } from './errors.js';
import { fingerprintOf, formatFingerprint, SERVER_FINGERPRINT_COMMAND } from './fingerprint.js';
import { socketHost, socketPort } from './hosts.js';

export interface Target extends TargetLabel {
  token: string;
  /** Pinned fingerprint (64 lowercase hex); none: the certificate must be one a public CA vouches for. */
  fingerprint?: string;
}

export interface PeerCertificate {
  fingerprint: string;
  /** A CA this machine trusts vouches for the certificate and it names the host. */
  authorized: boolean;
  authorizationError?: string;
  subject: string;
  issuer: string;
  validFrom: string;
  validTo: string;
}

export const CONNECT_TIMEOUT_MS = 10_000;

/** Results can be larger than the 1 MiB the agent accepts per request (a long metric series). */
const MAX_RESULT_BYTES = 64 << 20;

/** TCP + TLS handshake, no verification yet. The caller must verify before using the socket. */
export function openTls(url: URL, target: TargetLabel, timeoutMs: number): Promise<{ socket: TLSSocket; cert: PeerCertificate }> {
  const host = socketHost(url);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host,
      port: socketPort(url),
      // SNI is for names only; Node warns when given an IP address.
      servername: isIP(host) ? undefined : host,
      rejectUnauthorized: false,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(connectError(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }), target));
    }, timeoutMs);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!isNotTls(err)) {
        reject(connectError(err, target));
        return;
      }
      // Say what the port speaks instead of OpenSSL's "wrong version number".
      void plainAnswer(host, socketPort(url)).then((answered) => reject(notTlsError(whereOf(target), answered)));
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      // Until the WebSocket client attaches its own handlers; a late error then surfaces as its timeout or close.
      socket.on('error', () => {});
      resolve({ socket, cert: describePeer(socket) });
    });
  });
}

/**
 * What a port that refused TLS answers to a bare HTTP request (no token, no
 * path of ours): plain HTTP, something else, or nothing within a second.
 */
function plainAnswer(host: string, port: number, timeoutMs = 1_000): Promise<PlainAnswer> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port });
    let first = Buffer.alloc(0);
    const finish = (answer: PlainAnswer) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(first.length > 0 ? 'other' : undefined), timeoutMs);
    socket.on('connect', () => socket.write('HEAD / HTTP/1.0\r\n\r\n'));
    socket.on('data', (chunk: Buffer) => {
      first = Buffer.concat([first, chunk]);
      if (first.length >= 5) finish(first.subarray(0, 5).toString('latin1') === 'HTTP/' ? 'http' : 'other');
    });
    socket.on('error', () => finish(first.length > 0 ? 'other' : undefined));
    socket.on('close', () => finish(first.length === 0 ? undefined : first.toString('latin1').startsWith('HTTP/') ? 'http' : 'other'));
  });
}

function describePeer(socket: TLSSocket): PeerCertificate {
  const cert = socket.getPeerCertificate();
  const name = (o: unknown) =>
    o && typeof o === 'object'
      ? Object.entries(o as Record<string, unknown>)
          .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : String(v)}`)
          .join(', ')
      : '';
  const authorizationError = socket.authorizationError ? String(socket.authorizationError) : undefined;
  return {
    fingerprint: fingerprintOf(cert.raw),
    authorized: socket.authorized,
    ...(authorizationError ? { authorizationError } : {}),
    subject: name(cert.subject),
    issuer: name(cert.issuer),
    validFrom: cert.valid_from,
    validTo: cert.valid_to,
  };
}

/** Throws (exit 3) unless the presented certificate matches the pin, or, without a pin, a trusted CA vouches for it. */
export function verifyPeer(cert: PeerCertificate, target: Target): void {
  if (target.fingerprint !== undefined) {
    if (cert.fingerprint !== target.fingerprint) throw pinMismatchError(cert, target);
    return;
  }
  if (!cert.authorized) throw untrustedCertificateError(cert, target);
}

export function pinMismatchError(cert: PeerCertificate, target: Target): CliError {
  if (target.source === 'new') return fingerprintNotGivenError(cert, target);
  const bar = '@'.repeat(62);
  const fix =
    target.source === 'env'
      ? `set DECKHAND_FINGERPRINT=${formatFingerprint(cert.fingerprint)}`
      : `\`deckhand host remove ${target.name}\`, then \`deckhand host add ${target.name} ${target.url} --token TOKEN --fingerprint ${formatFingerprint(cert.fingerprint)}\``;
  const message = [
    bar,
    '@   WARNING: THE AGENT CERTIFICATE HAS CHANGED!                @',
    bar,
    `The certificate presented by ${target.name} (${target.url}) does not match the pinned one.`,
    'Someone may be intercepting this connection, or the agent certificate was replaced.',
    `  pinned:    ${formatFingerprint(target.fingerprint ?? '')}`,
    `  presented: ${formatFingerprint(cert.fingerprint)}`,
    'The connection was closed before anything was sent: the token did not leave this machine.',
    `If the certificate was replaced on purpose, compare with \`${SERVER_FINGERPRINT_COMMAND}\` on the server, then ${fix}.`,
  ].join('\n');
  return new CliError(message, EXIT.unreachable, 'certificate does not match the pin');
}

/** `host add --fingerprint X` and the server presents another: a typo or the wrong server, not a change. */
function fingerprintNotGivenError(cert: PeerCertificate, target: Target): CliError {
  return new CliError(
    [
      `not added: the certificate of ${target.url} does not match the fingerprint given with --fingerprint.`,
      `  given:     ${formatFingerprint(target.fingerprint ?? '')}`,
      `  presented: ${formatFingerprint(cert.fingerprint)}`,
      'Nothing was sent and nothing was saved: the token did not leave this machine.',
      `Check the URL and compare with \`${SERVER_FINGERPRINT_COMMAND}\` on the server, then run \`deckhand host add\` again with the fingerprint it shows.`,
    ].join('\n'),
    EXIT.unreachable,
    'certificate does not match the fingerprint given',
  );
}

function untrustedCertificateError(cert: PeerCertificate, target: Target): CliError {
  const fix =
    target.source === 'env'
      ? `set DECKHAND_FINGERPRINT=${formatFingerprint(cert.fingerprint)}`
      : `run \`deckhand host remove ${target.name}\` and add it again with --fingerprint ${formatFingerprint(cert.fingerprint)}`;
  return new CliError(
    `the certificate of ${target.name} (${target.url}) is not trusted (${cert.authorizationError ?? 'unknown issuer'}) and no fingerprint is pinned.\n` +
      `It presents ${formatFingerprint(cert.fingerprint)} (subject ${cert.subject || '-'}, issuer ${cert.issuer || '-'}).\n` +
      `Nothing was sent. If \`${SERVER_FINGERPRINT_COMMAND}\` on the server shows the same, ${fix}.`,
    EXIT.unreachable,
    `certificate not trusted (${cert.authorizationError ?? 'unknown issuer'})`,
  );
}

const agentVersions = new WeakMap<WebSocket, string>();

/** The version the agent named when the connection was upgraded (absent from agents before 0.1.0). */
export function agentVersionOf(ws: WebSocket): string | undefined {
  return agentVersions.get(ws);
}

/** Opens the authenticated WebSocket, or throws a CliError with exit 3 saying why not. */
export async function openApi(target: Target, timeoutMs = CONNECT_TIMEOUT_MS): Promise<WebSocket> {
  const url = new URL(target.url);
  const deadline = Date.now() + timeoutMs;
  const { socket, cert } = await openTls(url, target, timeoutMs);
  try {
    verifyPeer(cert, target);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return upgrade(url, socket, target, Math.max(1, deadline - Date.now()));
}

function upgrade(url: URL, socket: TLSSocket, target: Target, timeoutMs: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      // The verified socket, and no other: ws must not dial its own.
      createConnection: (() => socket) as unknown as NonNullable<WebSocket.ClientOptions['createConnection']>,
      headers: { Authorization: `Bearer ${target.token}` },
      perMessageDeflate: false,
      maxPayload: MAX_RESULT_BYTES,
    });
    let settled = false;
    const settle = (err: CliError | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        ws.removeAllListeners();
        ws.on('error', () => {});
        ws.terminate();
        socket.destroy();
        reject(err);
      } else {
        ws.removeAllListeners('error');
        resolve(ws);
      }
    };
    const timer = setTimeout(() => settle(connectError(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }), target)), timeoutMs);
    ws.once('upgrade', (res) => {
      const v = res.headers['x-deckhand-version'];
      if (typeof v === 'string') agentVersions.set(ws, v);
    });
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      settle(upgradeRefusedError(res.statusCode ?? 0, target));
    });
    ws.once('error', (err) => settle(connectError(err, target)));
    ws.once('open', () => settle(null));
  });
}

/** For `host add`: the certificate the agent presents, without sending anything. */
export async function probeCertificate(target: TargetLabel, timeoutMs = CONNECT_TIMEOUT_MS): Promise<PeerCertificate> {
  const { socket, cert } = await openTls(new URL(target.url), target, timeoutMs);
  socket.destroy();
  return cert;
}
