// What a command may touch of the outside world, passed in rather than
// reached for, so the commands run the same in a test as in a terminal.
export interface OutStream {
  write(text: string): void;
  /** A terminal: colour, live progress, charts, prompts. */
  readonly isTTY: boolean;
  /** The terminal's width; a pipe or file has none (Infinity): nothing is cut to fit. */
  readonly columns: number;
}

export interface InStream extends NodeJS.ReadableStream {
  readonly isTTY?: boolean;
}

export interface Io {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: OutStream;
  readonly stderr: OutStream;
  readonly stdin: InStream;
  now(): number;
  /** Calls the handler on Ctrl-C instead of dying; returns the function that removes it. */
  onInterrupt(handler: () => void): () => void;
}

function outStream(stream: NodeJS.WriteStream): OutStream {
  // `deckhand events | head`: the reader has what it wanted; leave quietly, not with a stack trace.
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  return {
    write: (text) => void stream.write(text),
    get isTTY() {
      return stream.isTTY === true;
    },
    get columns() {
      if (stream.isTTY !== true) return Number.POSITIVE_INFINITY;
      return stream.columns > 0 ? stream.columns : 80;
    },
  };
}

export function processIo(): Io {
  // Ctrl-C exits 130 (128 + SIGINT), as a shell reports an interrupted command,
  // unless a command takes it over (logs -f cancels its stream first). Without
  // a listener Node would die of the signal and report no exit code at all.
  const handlers: (() => void)[] = [];
  process.on('SIGINT', () => {
    const handler = handlers[handlers.length - 1];
    if (handler) handler();
    else process.exit(130);
  });
  return {
    env: process.env,
    stdout: outStream(process.stdout),
    stderr: outStream(process.stderr),
    stdin: process.stdin,
    now: () => Date.now(),
    onInterrupt(handler) {
      handlers.push(handler);
      return () => {
        const i = handlers.lastIndexOf(handler);
        if (i >= 0) handlers.splice(i, 1);
      };
    },
  };
}
