// Writing one dump to disk so that nothing half-written ever looks good: the
// bytes go to `<final>.partial` (0600), the program's exit status is checked,
// the file and its directory are fsynced, and only then is it renamed to its
// final name. Any failure removes the partial and raises `failed` with the
// program's own last error line, which is what an operator needs to act.
import { createHash } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DomainError, failed, type Progress } from '../../errors.js';
import { partialPath } from './commands.js';

export interface DumpProgress {
  bytes: number;
  /** Average since the start, bytes per second. */
  bytesPerSecond: number;
  elapsedMs: number;
  done: boolean;
}

export interface DumpExit {
  /** Exit code of pg_dump; null when it was killed or the engine could not tell. */
  code: number | null;
  /** The end of its stderr (bounded). */
  stderr: string;
}

/**
 * Where a dump comes from: `run` starts pg_dump, writes its stdout into `out`
 * (ending it), and resolves with the exit once the program is done. It
 * rejects when it cannot run or is aborted, and must stop the program when
 * `signal` aborts or `out` fails.
 */
export interface DumpSource {
  /** For messages: "pg_dump in service db", "pg_dump on the host". */
  readonly what: string;
  run(out: Writable, signal: AbortSignal): Promise<DumpExit>;
  /** Ends dumps an earlier agent left running (when they can outlive it); resolves with how many. */
  endLeftovers?(): Promise<number>;
}

export interface DumpFile {
  path: string;
  bytes: number;
  sha256: string;
  /** The whole call, verification included. */
  durationMs: number;
  /** Until the dump was written and fsynced (before verification). */
  dumpMs: number;
}

export interface WriteDumpOptions {
  signal?: AbortSignal;
  onProgress?: Progress<DumpProgress>;
  /** Minimum time between two progress events (default 250 ms). */
  progressIntervalMs?: number;
  /**
   * Runs on the complete, fsynced `.partial` before the rename (verification):
   * a rejection removes the partial like any other failure, so a file under
   * the final name has always passed it.
   */
  beforeRename?: (partial: string, written: { bytes: number; sha256: string; dumpMs: number }) => Promise<void>;
}


/** The last non-empty line of a program's stderr, which is where pg_dump says what went wrong. */
export function lastErrorLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.replace(/\r$/, '').trim());
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i]) return lines[i]!;
  return '';
}

/**
 * What went wrong, in pg_dump's words: its last `error:` line with the
 * `detail:` lines after it that quote the server ("Error message from
 * server: ..."); the `Command was:` detail that ends its output says less.
 * Else the last line it wrote.
 */
export function dumpErrorLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.replace(/\r$/, '').trim()).filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!/^pg_dump: (error|fatal):/.test(lines[i]!)) continue;
    const details = lines
      .slice(i + 1)
      .filter((l) => /^pg_dump: detail:/.test(l) && !/^pg_dump: detail: Command was:/.test(l))
      .map((l) => l.replace(/^pg_dump: detail:\s*/, '').replace(/\s+/g, ' '));
    return [lines[i]!, ...details].join('; ');
  }
  return lines.at(-1) ?? '';
}

export async function writeDumpFile(finalPath: string, source: DumpSource, opts: WriteDumpOptions = {}): Promise<DumpFile> {
  const partial = partialPath(finalPath);
  const started = performance.now();
  opts.signal?.throwIfAborted();
  // A partial left by a crash is garbage by definition.
  await rm(partial, { force: true });
  const handle = await open(partial, 'wx', 0o600);
  await handle.chmod(0o600); // whatever the umask
  const sink = new DumpSink(handle, started, opts.onProgress, opts.progressIntervalMs ?? 250);
  // One controller for the program: the caller's abort, or a failing disk.
  const stop = new AbortController();
  const onAbort = () => stop.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  sink.on('error', (err) => stop.abort(err));

  let exit: DumpExit | undefined;
  let problem: unknown;
  let sha: string | undefined;
  let dumpMs: number | undefined;
  try {
    exit = await source.run(sink, stop.signal);
    await finished(sink);
  } catch (err) {
    problem = err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }

  try {
    const why = failureOf(source, finalPath, exit, problem, sink, opts.signal);
    if (why) throw why;
    await handle.sync();
    await handle.close();
    sink.report(true);
    sha = sink.sha256();
    if (opts.beforeRename) {
      dumpMs = performance.now() - started;
      await opts.beforeRename(partial, { bytes: sink.bytes, sha256: sha, dumpMs });
    }
    await rename(partial, finalPath);
    await syncDir(dirname(finalPath));
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(partial, { force: true });
    throw err instanceof DomainError ? err : failed(`${source.what}: cannot write ${finalPath}: ${(err as Error).message}`, { path: finalPath });
  }
  const durationMs = performance.now() - started;
  return { path: finalPath, bytes: sink.bytes, sha256: sha ?? sink.sha256(), durationMs, dumpMs: dumpMs ?? durationMs };
}

function failureOf(source: DumpSource, finalPath: string, exit: DumpExit | undefined, problem: unknown, sink: DumpSink, signal?: AbortSignal): DomainError | undefined {
  const stderr = exit?.stderr ?? '';
  const details = { path: finalPath, exitCode: exit?.code ?? null, stderr };
  if (signal?.aborted) return failed(`${source.what}: backup to ${basename(finalPath)} aborted; nothing kept`, details);
  if (sink.failure) return failed(`${source.what}: cannot write ${partialPath(finalPath)}: ${sink.failure.message}`, details);
  if (problem) return problem instanceof DomainError ? problem : failed(`${source.what}: ${(problem as Error).message ?? String(problem)}`, details);
  if (!exit) return failed(`${source.what}: ended without an exit status`, details);
  if (exit.code !== 0) return failed(dumpErrorLine(stderr) || `${source.what} ${exitedHow(exit.code)} and said nothing`, details);
  if (sink.bytes === 0) return failed(dumpErrorLine(stderr) || `${source.what} exited 0 but wrote nothing`, details);
  return undefined;
}

/** "exited with 1"; 128+N is how the engine and shells report a program killed by signal N. */
function exitedHow(code: number | null): string {
  if (code === null) return 'exited with an unknown status';
  if (code > 128 && code < 160) return `was killed by signal ${code - 128}${code === 137 ? ' (SIGKILL)' : code === 143 ? ' (SIGTERM)' : ''}, exit status ${code},`;
  return `exited with ${code}`;
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * Bytes gathered before one write to the file. The exec stream delivers a
 * dump in frames of a few KiB; a write (a trip to the thread pool) per frame
 * cost the agent more CPU than the demux and the SHA-256 together.
 */
export const WRITE_BLOCK_BYTES = 1 << 20;

/** The partial file as a stream: counts, hashes and reports as it writes, in blocks of WRITE_BLOCK_BYTES. */
class DumpSink extends Writable {
  /** Bytes taken from the program (all of them written once the stream has finished). */
  bytes = 0;
  failure: Error | undefined;
  private readonly hash = createHash('sha256');
  private lastReport = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly started: number,
    private readonly onProgress: Progress<DumpProgress> | undefined,
    private readonly intervalMs: number,
  ) {
    super({ highWaterMark: WRITE_BLOCK_BYTES });
  }

  override _writev(chunks: { chunk: Buffer }[], done: (err?: Error | null) => void): void {
    for (const { chunk } of chunks) {
      this.hash.update(chunk);
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      this.bytes += chunk.length;
    }
    const now = performance.now();
    if (now - this.lastReport >= this.intervalMs) {
      this.lastReport = now;
      this.report(false);
    }
    if (this.pendingBytes < WRITE_BLOCK_BYTES) {
      done();
      return;
    }
    this.flushPending(done);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this._writev([{ chunk }], done);
  }

  override _final(done: (err?: Error | null) => void): void {
    if (this.pendingBytes === 0) done();
    else this.flushPending(done);
  }

  private flushPending(done: (err?: Error | null) => void): void {
    const bufs = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.writeAll(bufs).then(
      () => done(),
      (err: Error) => {
        this.failure = err;
        done(err);
      },
    );
  }

  private async writeAll(bufs: Buffer[]): Promise<void> {
    let size = 0;
    for (const b of bufs) size += b.length;
    let written = 0;
    while (written < size) {
      // writev may write less than asked (a full disk mid-call raises instead).
      const rest = sliceFrom(bufs, written);
      const { bytesWritten } = await this.handle.writev(rest);
      if (bytesWritten === 0) throw new Error('the file system accepted no more bytes');
      written += bytesWritten;
    }
  }

  report(done: boolean): void {
    if (!this.onProgress) return;
    const elapsedMs = performance.now() - this.started;
    this.onProgress({ bytes: this.bytes, bytesPerSecond: elapsedMs > 0 ? Math.round((this.bytes * 1000) / elapsedMs) : 0, elapsedMs: Math.round(elapsedMs), done });
  }

  sha256(): string {
    return this.hash.digest('hex');
  }
}

function sliceFrom(bufs: Buffer[], offset: number): Buffer[] {
  if (offset === 0) return bufs;
  const out: Buffer[] = [];
  let skip = offset;
  for (const b of bufs) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}
