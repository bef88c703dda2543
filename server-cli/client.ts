// JSON-RPC 2.0 over the agent's WebSocket: calls with ids and timeouts, and
// streams (logs, deploy progress) whose events arrive as notifications on the
// same socket. Method names, params and results are typed by the shared
// contract in agent/api/protocol.ts.
import type WebSocket from 'ws';
import type { MethodName, Params, Results, RpcError, StreamEnd, StreamStarted } from '../agent/api/protocol.js';
import { describeCall } from './actions.js';
import { CliError, EXIT, rpcError } from './errors.js';

export const CALL_TIMEOUT_MS = 30_000;

/** Methods that answer `{stream}` and then send events. */
export type StreamMethod = { [M in MethodName]: Results[M] extends StreamStarted ? M : never }[MethodName];

export type StreamEvent = { type: string; [key: string]: unknown };

interface Pending {
  method: string;
  params: unknown;
  resolve: (result: unknown) => void;
  reject: (err: CliError) => void;
  timer: NodeJS.Timeout;
  /** Registered in the same tick as the answer, so no event of the stream can slip past. */
  onStreamStarted?: (id: number) => void;
}

interface OpenStream {
  onEvent: (event: StreamEvent) => void;
  end: (event: StreamEnd) => void;
  fail: (err: CliError) => void;
}

export interface RunningStream {
  id: number;
  /** Resolves with the final `{type: "end"}` event. */
  done: Promise<StreamEnd>;
}

export class RpcClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly streams = new Map<number, OpenStream>();
  private closed: CliError | null = null;
  /** The WebSocket close code, once the agent closed the connection (4001: the token was revoked). */
  closeCode: number | undefined;

  constructor(
    private readonly ws: WebSocket,
    /** For messages: "token lacks the scope ... on web-1". */
    readonly hostName: string,
  ) {
    ws.on('message', (data, isBinary) => {
      if (!isBinary) this.onMessage(data.toString());
    });
    ws.on('close', (code, reason) => {
      this.closeCode = code;
      const why = reason.length > 0 ? `: ${reason.toString()}` : code !== 1000 && code !== 1005 ? ` (code ${code})` : '';
      this.shutDown(new CliError(`the connection to ${hostName} closed${why}`, EXIT.unreachable, 'connection lost'));
    });
    ws.on('error', (err) => this.shutDown(new CliError(`the connection to ${hostName} failed: ${err.message}`, EXIT.unreachable, 'connection lost')));
  }

  call<M extends MethodName>(method: M, params: Params<M>, timeoutMs = CALL_TIMEOUT_MS): Promise<Results[M]> {
    return this.send(method, params, timeoutMs) as Promise<Results[M]>;
  }

  /** Starts a streaming method; `onEvent` gets every event but the final one, which `done` resolves with. */
  async stream<M extends StreamMethod>(method: M, params: Params<M>, onEvent: (event: StreamEvent) => void, timeoutMs = CALL_TIMEOUT_MS): Promise<RunningStream> {
    let open!: OpenStream;
    const done = new Promise<StreamEnd>((end, fail) => (open = { onEvent, end, fail }));
    // A caller that stops listening (an error elsewhere) must not turn a late failure into a crash.
    done.catch(() => {});
    const started = (await this.send(method, params, timeoutMs, (id) => this.streams.set(id, open))) as StreamStarted;
    return { id: started.stream, done };
  }

  /**
   * Asks the agent to stop a stream. The agent sends nothing more for it
   * (SPEC: stream.cancel stops one), so once it has said ok, the stream's
   * `done` resolves with an `end` of our own making, `cancelled: true`.
   */
  async cancel(streamId: number): Promise<void> {
    if (!this.streams.has(streamId) || this.closed) return;
    await this.call('stream.cancel', { stream: streamId }, 5_000).catch(() => {});
    const open = this.streams.get(streamId);
    if (!open) return; // its own end came first
    this.streams.delete(streamId);
    open.end({ type: 'end', ok: true, cancelled: true });
  }

  close(): void {
    this.shutDown(new CliError(`the connection to ${this.hostName} was closed`, EXIT.failed, 'closed'));
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) {
      this.ws.close(1000);
      // A server that never answers the close frame must not keep the CLI alive.
      setTimeout(() => this.ws.terminate(), 1_000).unref();
    }
  }

  private send(method: string, params: unknown, timeoutMs: number, onStreamStarted?: (id: number) => void): Promise<unknown> {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new CliError(`${this.hostName} did not answer within ${Math.round(timeoutMs / 1000)} s when asked to ${describeCall(method, params)}`, EXIT.failed, 'no answer'));
      }, timeoutMs);
      this.pending.set(id, { method, params, resolve, reject, timer, ...(onStreamStarted ? { onStreamStarted } : {}) });
      this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }), (err) => {
        if (err) this.settle(id, null, { code: 0, message: err.message });
      });
    });
  }

  private onMessage(text: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return; // not ours to fix; a broken agent shows up as a timeout
    }
    if (msg === null || typeof msg !== 'object') return;
    if (msg.method === 'stream') {
      this.onStreamEvent(msg.params);
      return;
    }
    if (typeof msg.id === 'number') this.settle(msg.id, msg.result, msg.error as RpcError | undefined);
  }

  private settle(id: number, result: unknown, error: RpcError | undefined | null): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (error) {
      p.reject(error.code === 0 ? new CliError(`cannot ${describeCall(p.method, p.params)} on ${this.hostName}: sending failed: ${error.message}`, EXIT.unreachable, 'connection lost') : rpcError(error, p.method, this.hostName, p.params));
      return;
    }
    if (p.onStreamStarted) {
      const stream = (result as Partial<StreamStarted> | null)?.stream;
      if (typeof stream !== 'number') {
        p.reject(new CliError(`${this.hostName} gave no stream id when asked to ${describeCall(p.method, p.params)}`, EXIT.failed, 'bad answer'));
        return;
      }
      p.onStreamStarted(stream);
    }
    p.resolve(result);
  }

  private onStreamEvent(params: unknown): void {
    const { stream, event } = (params ?? {}) as { stream?: unknown; event?: unknown };
    if (typeof stream !== 'number' || !event || typeof event !== 'object') return;
    const open = this.streams.get(stream);
    if (!open) return;
    const ev = event as StreamEvent;
    if (ev.type === 'end') {
      this.streams.delete(stream);
      open.end(ev as StreamEnd);
    } else {
      open.onEvent(ev);
    }
  }

  private shutDown(err: CliError): void {
    if (this.closed) return;
    this.closed = err;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err);
    }
    for (const [id, s] of this.streams) {
      this.streams.delete(id);
      s.fail(new CliError(`${err.message} before the stream ended`, err.exitCode, err.reason));
    }
  }
}
