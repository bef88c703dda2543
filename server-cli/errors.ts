// Exit codes (SPEC section 6) and the one error type every command throws.
// A CliError's message is what the operator reads: it says what went wrong
// and what to do about it.
import { ERROR, METHOD_SCOPES, type MethodName, type RpcError } from '../agent/api/protocol.js';
import { describeCall } from './actions.js';

export const EXIT = {
  ok: 0,
  /** The operation ran and failed. */
  failed: 1,
  /** Usage or config error: wrong arguments, unknown host, bad hosts file. */
  usage: 2,
  /** Cannot connect, authenticate or verify the pin; or the token lacks the scope. */
  unreachable: 3,
  /** Ctrl-C: 128 + SIGINT, as a shell reports a command it interrupted. */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    /** A few words for a table cell ("connection refused"), where the whole message does not fit. */
    readonly reason: string = message,
    /** The JSON-RPC error code, when the agent answered with one. */
    readonly rpcCode?: number,
    /** Facts a script may want from the --json error document (a fingerprint to pin). */
    readonly data?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * Where the CLI got its connection details: said in messages so the fix names
 * the right place. 'new': a host being added, not saved yet (nothing to remove).
 */
export type TargetSource = 'hosts-file' | 'env' | 'new';

export interface TargetLabel {
  /** The host's name in the hosts file, or the URL's host for DECKHAND_URL. */
  name: string;
  url: string;
  source: TargetSource;
}

/** The agent refused the WebSocket upgrade with an HTTP status. */
export function upgradeRefusedError(status: number, target: TargetLabel): CliError {
  if (status === 401) {
    const then =
      target.source === 'env'
        ? 'then set DECKHAND_TOKEN to it'
        : target.source === 'new'
          ? 'then run `deckhand host add` again with it as --token; nothing was saved'
          : `then \`deckhand host remove ${target.name}\` and add it again with the new --token`;
    return new CliError(
      `token rejected by ${target.name}: create one with \`deckhand-agent token create --name NAME --scope read\` on the server, ${then}`,
      EXIT.unreachable,
      'token rejected',
    );
  }
  if (status === 429) {
    return new CliError(`${target.name} refuses this address after too many failed attempts; wait a minute and check the token`, EXIT.unreachable, 'too many failed attempts; wait a minute');
  }
  if (status === 503) {
    return new CliError(`${target.name} is at its connection limit; try again shortly`, EXIT.unreachable, 'agent busy (HTTP 503)');
  }
  return new CliError(
    `${target.url} answered HTTP ${status} instead of a WebSocket upgrade: is it a deckhand agent's API (api.listen, path /v1)?`,
    EXIT.unreachable,
    `HTTP ${status}`,
  );
}

/** "wss://h:7443/v1 (host web-1)": where a connection was tried, for messages. */
export function whereOf(target: TargetLabel): string {
  return `${target.url}${target.source === 'hosts-file' ? ` (host ${target.name})` : ''}`;
}

/** OpenSSL's words for "the other side did not answer with TLS at all". */
export function isNotTls(err: NodeJS.ErrnoException): boolean {
  return ['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_UNKNOWN_PROTOCOL', 'ERR_SSL_HTTP_REQUEST', 'ERR_SSL_RECORD_LAYER_FAILURE'].includes(err.code ?? '');
}

/** A socket-level failure before the API answered (refused, unknown host, timeout, TLS). */
export function connectError(err: NodeJS.ErrnoException, target: TargetLabel): CliError {
  const code = err.code ?? '';
  const where = whereOf(target);
  const check = 'is deckhand-agent running there, with api.listen reachable from here?';
  switch (code) {
    case 'ECONNREFUSED':
      return new CliError(`cannot connect to ${where}: connection refused; ${check}`, EXIT.unreachable, 'connection refused');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new CliError(`cannot connect to ${where}: the name does not resolve; check the URL`, EXIT.unreachable, 'name does not resolve');
    case 'ETIMEDOUT':
      return new CliError(`cannot connect to ${where}: timed out; ${check}`, EXIT.unreachable, 'timed out');
    case 'ECONNRESET':
    case 'EPIPE':
      return new CliError(`cannot connect to ${where}: the connection was reset; ${check}`, EXIT.unreachable, 'connection reset');
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new CliError(`cannot connect to ${where}: no route to the host`, EXIT.unreachable, 'no route to host');
    default:
      if (isNotTls(err)) return notTlsError(where, undefined);
      return new CliError(`cannot connect to ${where}: ${err.message}`, EXIT.unreachable, err.message);
  }
}

/** What a port that is not the API answered instead of a TLS handshake. */
export type PlainAnswer = 'http' | 'other' | undefined;

/** The URL reached a server, but one that does not speak TLS: most likely the plain-HTTP health port. */
export function notTlsError(where: string, answered: PlainAnswer): CliError {
  const said = answered === 'http' ? 'it answers plain HTTP' : answered === 'other' ? 'it answers another protocol' : 'the TLS handshake failed';
  return new CliError(
    `cannot connect to ${where}: this port does not speak TLS (${said}): is it \`health.listen\`? The API is on \`api.listen\` in the agent's agent.yaml`,
    EXIT.unreachable,
    'port does not speak TLS',
  );
}

/** A JSON-RPC error from the agent, as an exit code and a message naming the fix, in the operator's words. */
export function rpcError(err: RpcError, method: string, hostName: string, params: unknown = {}): CliError {
  const what = describeCall(method, params);
  const detail = describeErrorData(err.data);
  // The agent often says it all in the message already ("invalid params: series: ...").
  const said = detail && !err.message.includes(detail) ? `${err.message}: ${detail}` : err.message;
  switch (err.code) {
    case ERROR.forbidden: {
      const data = (err.data ?? {}) as { needs?: unknown; have?: unknown };
      const need = typeof data.needs === 'string' ? data.needs : METHOD_SCOPES[method as MethodName];
      const have = typeof data.have === 'string' ? `, this token is ${data.have}` : '';
      const scope = need ? ` (needs ${need}${have})` : '';
      const create = need ? `; create one with \`deckhand-agent token create --name NAME --scope ${need}\` on ${hostName}` : '';
      return new CliError(`token lacks the scope to ${what} on ${hostName}${scope}${create}`, EXIT.unreachable, `token lacks scope${need ? ` ${need}` : ''}`, err.code);
    }
    case ERROR.invalidParams:
      return new CliError(`${hostName} refused the request to ${what}: ${said}`, EXIT.usage, 'invalid parameters', err.code);
    case ERROR.methodNotFound: {
      // "not available on this agent: ... (its duty is not configured)" says it; a bare "not found" means an older agent.
      const hint = /not configured/.test(err.message) ? '' : ' (an older agent? upgrade deckhand-agent there)';
      return new CliError(`${hostName} cannot ${what}: ${said}${hint}`, EXIT.failed, 'method not available', err.code);
    }
    default:
      return new CliError(`cannot ${what} on ${hostName}: ${said}`, EXIT.failed, err.message, err.code);
  }
}

function describeErrorData(data: unknown): string {
  if (data === undefined || data === null) return '';
  if (typeof data === 'string') return data;
  const issues = Array.isArray(data) ? data : typeof data === 'object' && Array.isArray((data as { issues?: unknown }).issues) ? (data as { issues: unknown[] }).issues : undefined;
  if (issues) {
    return issues
      .map((i: unknown) => {
        const issue = (i ?? {}) as { path?: unknown; message?: unknown };
        const path = Array.isArray(issue.path) ? issue.path.join('.') : typeof issue.path === 'string' ? issue.path : '';
        return `${path ? `${path}: ` : ''}${String(issue.message ?? '')}`;
      })
      .join('; ');
  }
  if (typeof data === 'object') {
    const d = data as Record<string, unknown>;
    if (typeof d.message === 'string') return d.message;
    if (typeof d.reason === 'string') return d.reason;
    if (typeof d.error === 'string') return d.error;
  }
  return JSON.stringify(data);
}

/** Anything thrown that is not a CliError is a bug or an unexpected failure: exit 1 with its message. */
export function asCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new CliError(message, EXIT.failed);
}
