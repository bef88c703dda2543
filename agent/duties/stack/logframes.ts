// Docker's log stream format for containers without a TTY: frames of an
// 8-byte header (stream type, 3 zero bytes, big-endian length) and payload.
// With `timestamps`, each line starts with an RFC 3339 time and a space.

export interface LogChunk {
  stream: 'stdout' | 'stderr';
  line: string;
}

/** Splits a byte stream into whole lines per stream, across chunk boundaries. */
export class LogDemuxer {
  private buf: Buffer = Buffer.alloc(0);
  private readonly partial = { stdout: '', stderr: '' };

  constructor(private readonly raw = false) {}

  push(chunk: Buffer): LogChunk[] {
    if (this.raw) return this.lines('stdout', chunk.toString('utf8'));
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: LogChunk[] = [];
    while (this.buf.length >= 8) {
      const kind = this.buf[0];
      const size = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + size) break;
      const payload = this.buf.subarray(8, 8 + size).toString('utf8');
      this.buf = this.buf.subarray(8 + size);
      out.push(...this.lines(kind === 2 ? 'stderr' : 'stdout', payload));
    }
    return out;
  }

  /** What is left without a newline at the end of the stream. */
  flush(): LogChunk[] {
    const out: LogChunk[] = [];
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.partial[stream]) out.push({ stream, line: this.partial[stream] });
      this.partial[stream] = '';
    }
    return out;
  }

  private lines(stream: 'stdout' | 'stderr', text: string): LogChunk[] {
    const parts = (this.partial[stream] + text).split('\n');
    this.partial[stream] = parts.pop() ?? '';
    return parts.map((line) => ({ stream, line: line.replace(/\r$/, '') }));
  }
}

/** "2026-11-23T17:00:00.123456789Z hello" -> ["2026-11-23T17:00:00.123Z", "hello"] */
export function splitTimestamp(line: string): { ts: string; text: string } {
  const space = line.indexOf(' ');
  const stamp = space > 0 ? line.slice(0, space) : '';
  const ms = Date.parse(stamp.replace(/(\.\d{3})\d+/, '$1'));
  if (Number.isNaN(ms)) return { ts: new Date().toISOString(), text: line };
  return { ts: new Date(ms).toISOString(), text: line.slice(space + 1) };
}
