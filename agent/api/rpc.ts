// JSON-RPC 2.0 dispatch: envelope checks, method lookup, scope, params
// validated by the method's schema (shared with the CLI), then the handler.
// Every operate/admin call is written to the audit log, allowed or not.
import type * as z from '../validation.js';
import { DomainError, type DomainErrorKind } from '../errors.js';
import { boundProblems, excerpt, MAX_PROBLEMS, oversizedParams, problemsSentence } from './bounds.js';
import type { AuditLog } from '../events/audit.js';
import { ERROR, METHOD_SCOPES, paramsSchemas, scopeAllows, type MethodName, type Results, type RpcError, type RpcResponse, type Scope, type StreamEnd } from './protocol.js';

export interface StreamHandle {
  readonly id: number;
  /** Aborted when the client cancels the stream or goes away. */
  readonly signal: AbortSignal;
  send(event: Record<string, unknown>): void;
  /** The last event: `{type: "end", ok, ...final}`. Nothing is sent after it. */
  end(final: Omit<StreamEnd, 'type'>): void;
  /** Drops a stream the caller never learned of (its method was refused): nothing is sent. */
  discard(): void;
}

export interface CallContext {
  actor: string;
  scope: Scope;
  address: string;
  openStream(): StreamHandle;
  cancelStream(id: number): boolean;
}

export type Handler<M extends MethodName> = (params: z.output<(typeof paramsSchemas)[M]>, call: CallContext) => Promise<Results[M]> | Results[M];
export type MethodTable = { [M in MethodName]?: Handler<M> };

/** The JSON-RPC code of each kind of domain error a duty raises. */
const DOMAIN_CODES: Record<DomainErrorKind, number> = {
  not_found: ERROR.notFound,
  conflict: ERROR.conflict,
  failed: ERROR.failed,
  invalid: ERROR.invalidParams,
};

/** A failure of the API layer itself the caller should see as such (invalid params, too many streams...). */
export class RpcFailure extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

export interface DispatchDeps {
  methods: () => MethodTable;
  audit: AuditLog;
  onInternalError: (method: string, err: unknown) => void;
}

type Id = number | string | null;

const reply = (id: Id, result: unknown): RpcResponse => ({ jsonrpc: '2.0', id, result });
const fail = (id: Id, error: RpcError): RpcResponse => ({ jsonrpc: '2.0', id, error });

/**
 * Handles one text frame. Returns the response, or null for a notification
 * (a request without an id gets no answer, as JSON-RPC says).
 */
export async function dispatch(text: string, call: CallContext, deps: DispatchDeps): Promise<RpcResponse | null> {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return fail(null, { code: ERROR.parse, message: 'parse error: not valid JSON' });
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
    return fail(null, { code: ERROR.invalidRequest, message: 'invalid request: expected one JSON-RPC 2.0 object per frame (no batches)' });
  }
  const req = msg as Record<string, unknown>;
  const rawId = req.id;
  const idOk = rawId === undefined || rawId === null || typeof rawId === 'string' || (typeof rawId === 'number' && Number.isFinite(rawId));
  const id: Id = idOk && rawId !== undefined ? (rawId as Id) : null;
  if (req.jsonrpc !== '2.0' || typeof req.method !== 'string' || !idOk || (typeof rawId === 'string' && rawId.length > 128)) {
    return fail(id, { code: ERROR.invalidRequest, message: 'invalid request: needs jsonrpc "2.0", a string method and a number or string id' });
  }
  const isNotification = rawId === undefined;
  const method = req.method;
  const answer = (r: RpcResponse) => (isNotification ? null : r);

  if (!Object.hasOwn(METHOD_SCOPES, method)) {
    return answer(fail(id, { code: ERROR.methodNotFound, message: `method not found: ${excerpt(method, 64)}` }));
  }
  const name = method as MethodName;
  const needs = METHOD_SCOPES[name];
  const audited = needs !== 'read';
  const audit = (ok: boolean, message: string, data?: Record<string, unknown>) => {
    if (audited) deps.audit.append({ actor: call.actor, address: call.address, action: name, ok, message, ...(data ? { data } : {}) });
  };

  if (!scopeAllows(call.scope, needs)) {
    audit(false, `${name} refused: token scope ${call.scope} < ${needs}`);
    return answer(fail(id, { code: ERROR.forbidden, message: `forbidden: ${name} needs a token of scope ${needs} (this one is ${call.scope})`, data: { needs, have: call.scope } }));
  }
  // Sized before it is walked: a refusal must not cost more than an answer.
  const tooLarge = oversizedParams(req.params);
  if (tooLarge) {
    audit(false, `${name} refused: ${tooLarge}`);
    return answer(fail(id, { code: ERROR.invalidParams, message: `invalid params: ${tooLarge}`, data: [{ path: '', message: tooLarge }] }));
  }
  const parsed = paramsSchemas[name].safeParse(req.params ?? {});
  if (!parsed.success) {
    // The caller and the audit log get the first few problems, cut short:
    // never the whole input back (SPEC: at most 20 in `data`).
    const { shown, more } = boundProblems(parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })));
    const sentence = problemsSentence(shown, more);
    audit(false, `${name} refused: invalid params`, { issues: shown, ...(more > 0 ? { more } : {}) });
    return answer(fail(id, { code: ERROR.invalidParams, message: `invalid params: ${sentence}`, data: shown }));
  }
  const handler = deps.methods()[name] as Handler<MethodName> | undefined;
  if (!handler) {
    return answer(fail(id, { code: ERROR.methodNotFound, message: `method not available on this agent: ${name} (its duty is not configured)` }));
  }
  try {
    const result = await handler(parsed.data as never, call);
    audit(true, `${name} ok`, auditParams(parsed.data));
    return answer(reply(id, result));
  } catch (err) {
    const known = asRpcFailure(err);
    if (known) {
      audit(false, `${name} failed: ${known.message}`, auditParams(parsed.data));
      return answer(fail(id, { code: known.code, message: excerpt(known.message, MAX_ERROR_MESSAGE), ...(known.data === undefined ? {} : { data: boundedData(known.data) }) }));
    }
    deps.onInternalError(name, err);
    audit(false, `${name} failed: internal error`, auditParams(parsed.data));
    return answer(fail(id, { code: ERROR.internal, message: 'internal error (see the agent log)' }));
  }
}

/** Longest error message sent (a duty's message may quote a command's output). */
const MAX_ERROR_MESSAGE = 4000;
const MAX_ERROR_DATA_BYTES = 16_384;

/** A duty's error details, within what an error reply may carry: at most 20 problems, 16 KiB. */
function boundedData(data: unknown): unknown {
  const listed = Array.isArray(data) && data.length > MAX_PROBLEMS ? data.slice(0, MAX_PROBLEMS) : data;
  let bytes: number;
  try {
    bytes = Buffer.byteLength(JSON.stringify(listed) ?? '');
  } catch {
    return { truncated: true };
  }
  return bytes <= MAX_ERROR_DATA_BYTES ? listed : { truncated: true, bytes };
}

/** Domain errors (from duties) and the API's own failures, as code + message; anything else is internal. */
function asRpcFailure(err: unknown): RpcFailure | undefined {
  if (err instanceof RpcFailure) return err;
  if (err instanceof DomainError) return new RpcFailure(DOMAIN_CODES[err.kind], err.message, err.details);
  return undefined;
}

/** What of the params goes into the audit log: names of secret-looking values, never the values. */
function auditParams(params: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params as Record<string, unknown>)) {
    if (/token|password|secret/i.test(k)) out[k] = '[redacted]';
    else if (k === 'env' && v && typeof v === 'object') out[k] = Object.keys(v); // .env values are often secrets
    else out[k] = v;
  }
  return { params: out };
}
