// The agent's own HTTP-01 responder (certs.challenge.listen): a bare
// node:http server, because the only thing it ever has to do is answer
// GET/HEAD /.well-known/acme-challenge/<token> for orders in flight. It
// listens lazily, from the first token presented until the last is cleaned
// up, so port 80 is not held between renewals and another program (a proxy
// that starts later, say) can have it the rest of the time.
//
// Everything not a live token is a 404 with a fixed tiny body (nothing of the
// request is echoed), and every limit is small: the only legitimate client is
// a CA's validation server, which sends one short GET per connection.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { failed, type DomainError } from '../../../errors.js';
import type { ChallengeParams, ChallengeSolver } from '../acme.js';
import { assertAcmeToken, isAcmeToken, MAX_TOKEN_LENGTH } from './token.js';

export const CHALLENGE_PATH = '/.well-known/acme-challenge/';

/** Where to listen; no host: every address (Node's `::`, or `0.0.0.0` without IPv6). */
export interface ResponderAddress {
  host?: string;
  port: number;
}

/** The default when the config names neither listen nor webroot. */
export const DEFAULT_HTTP01_ADDRESS: ResponderAddress = { port: 80 };

// Limits. A request line plus a CA's few headers fit in far less than 4 KiB;
// the timeouts are enforced every second (Node's default check is 30 s).
const MAX_HEADER_BYTES = 4096;
const HEADERS_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 2_000;
const MAX_REQUESTS_PER_SOCKET = 4;
const MAX_CONNECTIONS = 256;
const NOT_FOUND = 'not found\n';

export interface HttpResponder extends ChallengeSolver {
  readonly type: 'http-01';
  /** Whether the server listens now (at least one token is live). */
  readonly listening: boolean;
  /** The address as shown in messages, e.g. `127.0.0.1:80`, `[::1]:80`, `*:80`. */
  readonly where: string;
  /** Forgets every token and stops listening (agent shutdown). */
  close(): Promise<void>;
}

export function formatAddress(a: ResponderAddress): string {
  if (a.host === undefined) return `*:${a.port}`;
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** The domain error for a listen that failed: names the address and the way out (webroot). */
export function listenError(where: string, e: NodeJS.ErrnoException): DomainError {
  const hint = 'or set certs.challenge.webroot to a directory that program serves at /.well-known/acme-challenge/';
  const details = { address: where, code: e.code };
  switch (e.code) {
    case 'EADDRINUSE':
      return failed(`cannot answer HTTP-01 challenges on ${where}: the address is already in use by another program; stop it while certificates are ordered, ${hint}`, details);
    case 'EACCES':
      return failed(`cannot answer HTTP-01 challenges on ${where}: permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE); grant it, ${hint}`, details);
    case 'EADDRNOTAVAIL':
      return failed(`cannot answer HTTP-01 challenges on ${where}: no such address on this machine; fix certs.challenge.listen, ${hint}`, details);
    default:
      return failed(`cannot answer HTTP-01 challenges on ${where}: ${e.message}`, details);
  }
}

/** The answer to one request: the key authorization of a live token, else 404. Pure but for the response. */
function respond(tokens: ReadonlyMap<string, string>, req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '';
  // A GET or HEAD with a body is not what a CA's validation sends.
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
  let body: string | undefined;
  if ((req.method === 'GET' || req.method === 'HEAD') && !hasBody && url.startsWith(CHALLENGE_PATH) && url.length <= CHALLENGE_PATH.length + MAX_TOKEN_LENGTH) {
    const token = url.slice(CHALLENGE_PATH.length);
    if (isAcmeToken(token)) body = tokens.get(token);
  }
  if (body === undefined) {
    // The connection goes after a miss: nothing to keep it open for.
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'content-length': NOT_FOUND.length, connection: 'close' });
    res.end(NOT_FOUND);
    return;
  }
  // node:http sends no body for HEAD by itself; the headers stay the same.
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function newServer(tokens: ReadonlyMap<string, string>): Server {
  const server = createServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      connectionsCheckingInterval: 1_000,
    },
    (req, res) => respond(tokens, req, res),
  );
  server.maxRequestsPerSocket = MAX_REQUESTS_PER_SOCKET;
  server.maxConnections = MAX_CONNECTIONS;
  // An idle socket (no request at all) goes after the request timeout too.
  server.setTimeout(REQUEST_TIMEOUT_MS, (socket: Socket) => socket.destroy());
  return server;
}

function listen(server: Server, a: ResponderAddress, where: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(listenError(where, e));
    };
    const onListening = () => {
      server.off('error', onError);
      // Errors of a listening server (none expected) must not crash the agent.
      server.on('error', () => {});
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ port: a.port, ...(a.host === undefined ? {} : { host: a.host }) });
  });
}

function shut(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive and half-sent requests end now, not after their timeouts.
    server.closeAllConnections();
  });
}

/**
 * An HTTP-01 solver answering on ADDRESS. present() adds the token (and
 * starts listening if it is the first), cleanup() removes it (and stops
 * listening if it was the last). Calls are serialised, so a present racing
 * the close of the last cleanup waits for it and listens anew.
 */
export function httpResponder(address: ResponderAddress): HttpResponder {
  const where = formatAddress(address);
  const tokens = new Map<string, string>();
  let server: Server | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn);
    queue = next.catch(() => {});
    return next;
  };
  const stopIfIdle = async () => {
    if (tokens.size > 0 || !server) return;
    const s = server;
    server = undefined;
    await shut(s);
  };

  return {
    type: 'http-01',
    where,
    get listening() {
      return server !== undefined;
    },
    present: (o: ChallengeParams) =>
      serial(async () => {
        assertAcmeToken(o.token);
        tokens.set(o.token, o.keyAuthorization);
        if (server) return;
        const s = newServer(tokens);
        try {
          await listen(s, address, where);
        } catch (e) {
          tokens.delete(o.token);
          throw e;
        }
        server = s;
      }),
    cleanup: (o: ChallengeParams) =>
      serial(async () => {
        tokens.delete(o.token);
        await stopIfIdle();
      }),
    close: () =>
      serial(async () => {
        tokens.clear();
        await stopIfIdle();
      }),
  };
}
