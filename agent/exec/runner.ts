// The one place deckhand runs external programs. Commands arrive as data
// (argv arrays built by small pure functions in each duty), never as shell
// strings; every run has a timeout and can be cancelled.
import { spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

export interface Command {
  argv: readonly string[];
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Default 60 s. The process gets SIGTERM, then SIGKILL 5 s later. */
  timeoutMs?: number;
  input?: string | Buffer;
  /**
   * Streamed to stdin with backpressure, stdin closed after its last byte
   * (a file restored through a pipe). A program that exits before reading all
   * of it is not an error of the run: its exit status says what happened.
   * An error reading the stream itself rejects the run.
   */
  inputStream?: Readable;
}

export interface RunOptions {
  signal?: AbortSignal;
  /**
   * stdout piped here with backpressure (a dump on its way to disk: a slow
   * disk slows the program instead of filling memory). Not captured, not
   * passed to onStdout, and not ended: the caller ends it after the run.
   */
  stdoutTo?: Writable;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Keep at most this many bytes of each stream in the result (default 1 MiB). */
  captureLimit?: number;
}

export interface RunResult {
  argv: readonly string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

export class CommandError extends Error {
  constructor(readonly result: RunResult) {
    const why = result.timedOut ? 'timed out' : result.signal ? `killed by ${result.signal}` : `exited with ${result.code}`;
    const tail = result.stderr.trim().split('\n').slice(-3).join(' | ');
    super(`${result.argv.slice(0, 3).join(' ')} ${why}${tail ? `: ${tail}` : ''}`);
  }
}

export function run(cmd: Command, opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = cmd.argv;
  if (!file) return Promise.reject(new Error('empty command'));
  const limit = opts.captureLimit ?? 1 << 20;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: cmd.cwd,
      env: cmd.env ? { ...process.env, ...cmd.env } : process.env,
      stdio: [cmd.input === undefined && cmd.inputStream === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out = capture(limit);
    const err = capture(limit);
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const terminate = () => {
      child.kill('SIGTERM');
      killTimer ??= setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      terminate();
    }, cmd.timeoutMs ?? 60_000);
    const onAbort = () => terminate();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) terminate();

    if (opts.stdoutTo) {
      child.stdout!.pipe(opts.stdoutTo, { end: false });
    } else {
      child.stdout!.on('data', (c: Buffer) => {
        out.add(c);
        opts.onStdout?.(c);
      });
    }
    child.stderr!.on('data', (c: Buffer) => {
      err.add(c);
      opts.onStderr?.(c);
    });
    if (cmd.input !== undefined) child.stdin!.end(cmd.input);
    let inputError: Error | undefined;
    if (cmd.inputStream) {
      const stdin = child.stdin!;
      const source = cmd.inputStream;
      // EPIPE when the program stops reading early: its exit status tells.
      stdin.on('error', () => source.unpipe(stdin));
      source.on('error', (e) => {
        inputError = e;
        stdin.destroy();
        terminate();
      });
      source.pipe(stdin);
    }
    child.on('error', (e) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(new Error(`cannot run ${file}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (inputError) {
        reject(new Error(`cannot read the input of ${file}: ${inputError.message}`));
        return;
      }
      cmd.inputStream?.destroy();
      resolve({ argv: cmd.argv, code, signal, stdout: out.text(), stderr: err.text(), timedOut, durationMs: performance.now() - started });
    });
  });
}

/** Runs and rejects with CommandError unless the program exits 0. */
export async function runChecked(cmd: Command, opts?: RunOptions): Promise<RunResult> {
  const result = await run(cmd, opts);
  if (result.code !== 0) throw new CommandError(result);
  return result;
}

function capture(limit: number) {
  const chunks: Buffer[] = [];
  let size = 0;
  return {
    add(c: Buffer) {
      if (size >= limit) return;
      chunks.push(c.subarray(0, limit - size));
      size += c.length;
    },
    text: () => Buffer.concat(chunks).toString('utf8'),
  };
}
