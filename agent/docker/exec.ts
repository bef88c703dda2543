// A program run inside a running container through the engine's exec API,
// its stdout as a byte stream (a dump can be gigabytes) and its stderr kept
// as a bounded tail. No TTY: a TTY would rewrite bytes (\n -> \r\n) and merge
// the two streams, corrupting binary output.
import { Transform, Writable, type Duplex, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Docker from 'dockerode';
import type { DockerEngine } from './engine.js';

/**
 * The engine's framing of a non-TTY attach: frames of an 8-byte header
 * (stream type 0/1/2, three zero bytes, big-endian payload length) and the
 * payload. Stdout payload is passed on as this stream's output (without
 * copying), stderr payload to `onStderr`. Strict, unlike docker-modem's
 * demuxStream, which falls back to raw passthrough on an unexpected header:
 * a dump with stray bytes in it must fail, not look good.
 */
export class ExecFrameSplitter extends Transform {
  private header = Buffer.alloc(8);
  private headerFill = 0;
  private kind = 0;
  private remaining = 0;
  private inFrame = false;

  constructor(private readonly onStderr: (chunk: Buffer) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let at = 0;
    while (at < chunk.length) {
      if (!this.inFrame) {
        const take = Math.min(8 - this.headerFill, chunk.length - at);
        chunk.copy(this.header, this.headerFill, at, at + take);
        this.headerFill += take;
        at += take;
        if (this.headerFill < 8) break;
        const h = this.header;
        if (h[0]! > 2 || h[1] !== 0 || h[2] !== 0 || h[3] !== 0) {
          done(new Error(`unexpected bytes in the engine's exec stream (header ${h.toString('hex')}): not a multiplexed stream (was a TTY attached?)`));
          return;
        }
        this.kind = h[0]!;
        this.remaining = h.readUInt32BE(4);
        this.headerFill = 0;
        this.inFrame = this.remaining > 0;
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - at);
      const part = chunk.subarray(at, at + take);
      at += take;
      this.remaining -= take;
      if (this.remaining === 0) this.inFrame = false;
      if (this.kind === 1) this.push(part);
      else if (this.kind === 2) this.onStderr(part);
      // kind 0 (stdin echo) is never sent for a non-TTY exec; ignore it.
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.inFrame || this.headerFill > 0) done(new Error("the engine's exec stream ended in the middle of a frame"));
    else done();
  }
}

/** The last `limit` bytes written to it: enough for a program's final error lines. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly limit = 4096) {}

  add(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.chunks.length > 1 && this.size - this.chunks[0]!.length >= this.limit) this.size -= this.chunks.shift()!.length;
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString('utf8');
  }
}

export interface ExecRequest {
  cmd: string[];
  env?: string[];
  user?: string;
}

export interface ExecExit {
  /** null when the engine could not tell (the exec still running after the grace period). */
  code: number | null;
  stderr: string;
}

// One client per socket without a request timeout: a dump's stream may stay
// idle for long (pg_dump waiting for a lock), which is not a hung engine.
const streamClients = new Map<string, Docker>();
function streamClient(engine: DockerEngine): Docker {
  let c = streamClients.get(engine.socketPath);
  if (!c) streamClients.set(engine.socketPath, (c = new Docker({ socketPath: engine.socketPath })));
  return c;
}

/**
 * Runs `req.cmd` in the container, piping its stdout into `out` (with
 * backpressure: a slow disk slows the program down instead of filling memory).
 * Resolves once the stream has ended and the engine reports the exit code.
 *
 * The engine has no call to kill an exec'd process, and tearing down the
 * attach stream does not stop it either (it would block on its full pipe,
 * holding whatever it holds). So on abort `stop` runs first, while the stream
 * still flows, to make the program exit by its own means; the stream is torn
 * down after it ends or `stopGraceMs` passes. Either way the call rejects.
 *
 * With `input`, its bytes are the program's stdin (with backpressure: a slow
 * restore slows the file read down), and the write side of the attach is
 * half-closed after the last byte so the program sees end of file. A program
 * that exits before reading all of it (pg_restore refusing a bad header) is
 * not an engine failure: its exit code and stderr are what the caller wants.
 */
export async function execToStream(
  engine: DockerEngine,
  containerId: string,
  req: ExecRequest,
  out: Writable,
  opts: { signal?: AbortSignal; stderrLimit?: number; stop?: () => Promise<void>; stopGraceMs?: number; input?: Readable },
): Promise<ExecExit> {
  const signal = opts.signal;
  signal?.throwIfAborted();
  const container = engine.api.getContainer(containerId);
  const exec = await container.exec({
    Cmd: req.cmd,
    AttachStdin: opts.input !== undefined,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    ...(req.env ? { Env: req.env } : {}),
    ...(req.user ? { User: req.user } : {}),
  });
  const input = opts.input;
  const socket = (await streamClient(engine).getExec(exec.id).start({ hijack: true, stdin: input !== undefined, Tty: false })) as Duplex;
  const stderr = new TailBuffer(opts.stderrLimit ?? 4096);
  const feeding = input ? feed(input, socket).catch((err: unknown) => err as Error) : Promise.resolve(undefined);
  const flow = pipeline(socket, new ExecFrameSplitter((c) => stderr.add(c)), out).catch(async (err: unknown) => {
    // The engine closing the attach while we still write (EPIPE, reset) means
    // the program exited without reading everything: report its exit.
    const code = (err as NodeJS.ErrnoException).code;
    if (input && !signal?.aborted && (code === 'EPIPE' || code === 'ECONNRESET')) {
      return;
    }
    throw err;
  });
  const settled = flow.then(
    () => undefined,
    () => undefined,
  );
  const onAbort = () => {
    void (async () => {
      const grace = new Promise<void>((r) => setTimeout(r, opts.stopGraceMs ?? 10_000).unref());
      await Promise.race([(opts.stop?.() ?? Promise.resolve()).catch(() => undefined), grace]);
      await Promise.race([settled, grace]);
      socket.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    })();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await flow;
  } catch (err) {
    // The stream broke under the program (our disk, the engine): it must still stop.
    if (!signal?.aborted) await opts.stop?.().catch(() => undefined);
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    socket.destroy();
  }
  signal?.throwIfAborted();
  // Reading the input failed: the program saw a short file, but the cause is ours.
  const inputError = await feeding;
  if (inputError) throw inputError;
  return { code: await exitCode(exec), stderr: stderr.text() };
}

/** Writes `input` into the attach, waiting for drain, then half-closes it (end of file for the program). */
async function feed(input: Readable, socket: Duplex): Promise<Error | undefined> {
  const closed = () => socket.destroyed || socket.writableEnded;
  try {
    for await (const chunk of input) {
      if (closed()) break;
      if (!socket.write(chunk as Buffer)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            socket.off('drain', done);
            socket.off('close', done);
            resolve();
          };
          socket.on('drain', done);
          socket.on('close', done);
        });
      }
    }
  } finally {
    if (!closed()) socket.end();
  }
  return undefined;
}

/** The stream ends when the program exits; the engine may take a moment longer to record the code. */
async function exitCode(exec: Docker.Exec, graceMs = 5000): Promise<number | null> {
  const until = Date.now() + graceMs;
  for (;;) {
    const info = await exec.inspect();
    if (!info.Running) return info.ExitCode;
    if (Date.now() > until) return null;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs a short command in the container and returns its exit code and output (small outputs only). */
export async function execCollect(engine: DockerEngine, containerId: string, req: ExecRequest, timeoutMs = 15_000, stdoutLimit = 1 << 16): Promise<ExecExit & { stdout: string }> {
  const chunks: Buffer[] = [];
  let size = 0;
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      if (size < stdoutLimit) chunks.push(c);
      size += c.length;
      cb();
    },
  });
  const exit = await execToStream(engine, containerId, req, sink, { signal: AbortSignal.timeout(timeoutMs), stopGraceMs: 0 });
  return { ...exit, stdout: Buffer.concat(chunks).toString('utf8') };
}
