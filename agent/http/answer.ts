// How the health server writes an answer it already has as bytes: fastify
// has routed the request, and the kept body is written straight to node's
// response (reply.hijack). It needs none of fastify's reply machinery
// (content-type parsing, serializers, hooks, of which this server has none),
// and skipping it is about a tenth of the CPU a /health request costs. Node
// leaves the body out of an answer to HEAD by itself.
import type { FastifyReply } from 'fastify';
import type { OutgoingHttpHeaders } from 'node:http';

/** `headers` carry content-type and content-length: built once per body, not per request. */
export function answer(reply: FastifyReply, status: number, headers: OutgoingHttpHeaders, body: Buffer): void {
  reply.hijack();
  reply.raw.writeHead(status, headers);
  reply.raw.end(body);
}

/** The probes' answers say they must not be cached (SPEC 4); /metrics never said so and does not now. */
export function answerHeaders(contentType: string, body: Buffer, noStore = true): OutgoingHttpHeaders {
  return noStore ? { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': body.length } : { 'content-type': contentType, 'content-length': body.length };
}
