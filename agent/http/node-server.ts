// The node:http server under fastify (its serverFactory): how long a client
// may take, how many are served at once, and how pipelined requests are
// taken in turn.
//
// Limits. Node's defaults (a minute for headers, five for a request, checked
// every 30 s, no cap on sockets) let idle or half-sent requests hold sockets
// for minutes; these cut them off in seconds, while a checker or Prometheus
// that keeps its connection alive between polls is left alone.
//
// Pipelining. A client may write many requests before reading any answer.
// Node parses every request of a 64 KiB read at once (some 1,500 short GETs)
// and queues their responses; each then goes out as the one before it
// finishes, and while the socket takes writes at once that chain runs on
// without returning to the event loop. Twenty such connections held it for
// seconds, and /livez with it. So a request queued behind others reaches
// fastify only once it is its connection's current one and the loop has
// turned: a pipelining connection advances one answer per turn, every other
// connection is served in between, and no fastify request or reply exists
// for an answer that is still waiting.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** A request's headers must be in within this; a client that sends half a header gets 408 and is closed. */
export const HEADERS_TIMEOUT_MS = 5000;
/** The whole request (a GET has no body, so this is headers plus slack). */
export const REQUEST_TIMEOUT_MS = 10_000;
/** How often node looks for requests past those two limits: they are enforced to within this. */
export const TIMEOUT_CHECK_EVERY_MS = 1000;
/** A socket with nothing moving either way (connected and silent, or not reading its answer) is closed after this. */
export const SOCKET_IDLE_MS = 10_000;
/**
 * Between requests on a kept-alive connection. Above the 60 s idle timeout of
 * common proxies and load balancers (nginx upstream keepalive, AWS ALB), so
 * they close first and never send on a socket we are closing; an uptime
 * checker polling every minute keeps its connection.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** Uptime checkers and a Prometheus or two need a handful; more are refused at accept. */
export const MAX_CONNECTIONS = 256;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export function healthHttpServer(handler: Handler): Server {
  const server = createServer(
    {
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      connectionsCheckingInterval: TIMEOUT_CHECK_EVERY_MS,
    },
    (req, res) => {
      // node gives the socket only to the connection's current response, and emits 'socket' when it does.
      if (res.socket) handler(req, res);
      else res.once('socket', () => setImmediate(handler, req, res));
    },
  );
  server.setTimeout(SOCKET_IDLE_MS);
  server.maxConnections = MAX_CONNECTIONS;
  return server;
}
