// A dump file on its way into pg_restore's stdin: opened, counted, reported.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { failed, type Progress } from '../../errors.js';
import type { BytesProgress } from './pg-target.js';

/** Counts the bytes passing through and reports them, at most every `intervalMs` and once at the end. */
export class ByteCounter extends Transform {
  bytes = 0;
  private readonly started = performance.now();
  private last = -Infinity;

  constructor(
    private readonly total: number,
    private readonly onProgress: Progress<BytesProgress> | undefined,
    private readonly intervalMs = 250,
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    const now = performance.now();
    if (now - this.last >= this.intervalMs) {
      this.last = now;
      this.report();
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.report();
    done();
  }

  private report(): void {
    if (!this.onProgress) return;
    const elapsedMs = performance.now() - this.started;
    this.onProgress({ bytes: this.bytes, total: this.total, bytesPerSecond: elapsedMs > 0 ? Math.round((this.bytes * 1000) / elapsedMs) : 0, elapsedMs: Math.round(elapsedMs) });
  }
}

/** The file as a counted stream, or failed(...) when it cannot be opened. */
export async function openCounted(file: string, what: string, onProgress?: Progress<BytesProgress>): Promise<{ stream: Readable; counter: ByteCounter }> {
  let total: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new Error('not a regular file');
    total = st.size;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw failed(`${what}: cannot read ${file}: ${why}`, { file });
  }
  const counter = new ByteCounter(total, onProgress);
  const source = createReadStream(file, { highWaterMark: 1 << 20 });
  source.on('error', (err) => counter.destroy(err));
  counter.on('close', () => source.destroy());
  return { stream: source.pipe(counter), counter };
}

/** A signal that also fires after `ms`, so a hung program still ends. */
export function withTimeout(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const t = AbortSignal.timeout(ms);
  return signal ? AbortSignal.any([signal, t]) : t;
}
