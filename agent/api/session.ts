// One authenticated WebSocket connection: its token, its streams, and the
// rules that keep one client from hurting the agent (in-flight cap, stream
// cap, a bound on what may wait in the send buffer).
import type { WebSocket } from 'ws';
import { dispatch, RpcFailure, type CallContext, type DispatchDeps, type StreamHandle } from './rpc.js';
import { REPLY_BUDGET_BYTES } from './paging.js';
import { ERROR, type Scope, type StreamEnd } from './protocol.js';

export const LIMITS = {
  streamsPerConnection: 16,
  inFlightPerConnection: 64,
  /** A client this far behind is dropped, so it cannot grow the agent's memory. */
  maxBufferedBytes: 4 << 20,
};

export interface SessionEvents {
  onSlowClient(session: Session): void;
  /** Whether the session's own token (by id and hash) is still active; checked before every call. */
  stillAuthorized(session: Session): boolean;
}

export class Session {
  alive = true;
  private readonly streams = new Map<number, Stream>();
  private nextStreamId = 1;
  private inFlight = 0;
  private closed = false;

  constructor(
    readonly ws: WebSocket,
    readonly token: { readonly id: number; readonly name: string; readonly scope: Scope; readonly hash: Buffer },
    readonly address: string,
    private readonly deps: DispatchDeps,
    private readonly events: SessionEvents,
  ) {
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('pong', () => (this.alive = true));
    ws.on('close', () => this.onClose());
    ws.on('error', () => this.onClose());
  }

  /** The token's name: who the audit log says acted. */
  get actor(): string {
    return this.token.name;
  }

  get scope(): Scope {
    return this.token.scope;
  }

  streamCount(): number {
    return this.streams.size;
  }

  /** Sends one JSON message, or drops the client if it is too far behind. */
  send(message: unknown): boolean {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return false;
    if (this.ws.bufferedAmount > LIMITS.maxBufferedBytes) {
      this.events.onSlowClient(this);
      this.ws.terminate(); // close() would queue behind the backlog; terminate frees it now
      this.onClose();
      return false;
    }
    this.ws.send(serialize(message));
    return true;
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.ws.close(code, reason);
    this.onClose();
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      this.close(1003, 'binary frames are not accepted: send JSON-RPC as text');
      return;
    }
    // A token revoked by any path (the API, the token CLI on the box) is
    // refused from the revocation's commit on, not at the next poll.
    if (!this.events.stillAuthorized(this)) {
      this.close(4001, 'token revoked');
      return;
    }
    if (this.inFlight >= LIMITS.inFlightPerConnection) {
      // The refusal carries the request's id, or the caller cannot tell which call failed (JSON-RPC: null only when unreadable).
      const id = requestId(data);
      if (id !== undefined) this.send({ jsonrpc: '2.0', id, error: { code: ERROR.failed, message: `too many requests in flight (at most ${LIMITS.inFlightPerConnection})` } });
      return;
    }
    this.inFlight++;
    const opened: Stream[] = [];
    void dispatch(data.toString('utf8'), this.callContext(opened), this.deps)
      .then((response) => {
        if (response) this.send(response);
        // A stream may speak only after the answer that names it.
        for (const s of opened) s.open();
      })
      // Nothing a request does may reach the process as an unhandled rejection.
      .catch((err: unknown) => this.deps.onInternalError('send', err))
      .finally(() => this.inFlight--);
  }

  private callContext(opened: Stream[]): CallContext {
    return {
      actor: this.actor,
      scope: this.scope,
      address: this.address,
      openStream: () => {
        if (this.streams.size >= LIMITS.streamsPerConnection) {
          throw new RpcFailure(ERROR.failed, `too many open streams on this connection (at most ${LIMITS.streamsPerConnection}); cancel one with stream.cancel`);
        }
        const stream = new Stream(this.nextStreamId++, this, () => this.streams.delete(stream.id));
        this.streams.set(stream.id, stream);
        opened.push(stream);
        return stream;
      },
      cancelStream: (id) => {
        const stream = this.streams.get(id);
        if (!stream) return false;
        // Every stream ends with an end event, a cancelled one too.
        stream.end({ ok: true, cancelled: true });
        stream.cancel();
        return true;
      },
    };
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.streams.values()]) s.cancel();
  }
}

/**
 * One message as JSON text. A reply that cannot be built (too large for the
 * budget, or for a string at all) becomes an error reply to the same id: the
 * caller learns why, and the agent does not fall over. A stream event that
 * cannot be built is replaced by one that says so.
 */
export function serialize(message: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(message);
  } catch {
    text = undefined;
  }
  if (text !== undefined && text.length <= REPLY_BUDGET_BYTES && Buffer.byteLength(text) <= REPLY_BUDGET_BYTES) return text;
  const m = message as { id?: unknown; method?: unknown; params?: { stream?: unknown } };
  if (m.method === 'stream') {
    return JSON.stringify({ jsonrpc: '2.0', method: 'stream', params: { stream: m.params?.stream, event: { type: 'dropped', error: `an event too large to send (over ${REPLY_BUDGET_BYTES} bytes) was left out` } } });
  }
  return JSON.stringify({ jsonrpc: '2.0', id: m.id ?? null, error: { code: ERROR.internal, message: `the reply would exceed ${REPLY_BUDGET_BYTES >> 20} MiB: ask for less (a smaller limit, a narrower range)` } });
}

/** The id of a request refused unread: undefined for a notification (no answer), null when there is none to read. */
function requestId(data: Buffer): number | string | null | undefined {
  try {
    const msg = JSON.parse(data.toString('utf8')) as unknown;
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return null;
    const id = (msg as { id?: unknown }).id;
    if (id === undefined) return undefined;
    return (typeof id === 'number' && Number.isFinite(id)) || (typeof id === 'string' && id.length <= 128) ? id : null;
  } catch {
    return null;
  }
}

class Stream implements StreamHandle {
  private readonly controller = new AbortController();
  private pending: unknown[] | undefined = [];
  private ended = false;

  constructor(
    readonly id: number,
    private readonly session: Session,
    private readonly forget: () => void,
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  send(event: Record<string, unknown>): void {
    if (this.ended) return;
    const note = { jsonrpc: '2.0', method: 'stream', params: { stream: this.id, event } };
    if (this.pending) this.pending.push(note);
    else this.session.send(note);
  }

  end(final: Omit<StreamEnd, 'type'>): void {
    if (this.ended) return;
    this.send({ type: 'end', ...final });
    this.ended = true;
    if (!this.pending) this.forget();
  }

  discard(): void {
    this.pending = [];
    this.ended = true;
    this.forget();
  }

  /** Called once the response carrying the stream id is on its way. */
  open(): void {
    if (!this.pending) return;
    const queued = this.pending;
    this.pending = undefined;
    for (const note of queued) this.session.send(note);
    if (this.ended) this.forget();
  }

  cancel(): void {
    this.controller.abort();
    this.ended = true;
    this.open(); // flush what was queued, the end event included
    this.forget();
  }
}
