// What a command may touch of the outside world, passed in rather than
// reached for, so the commands run the same in a test as in a terminal.
export interface OutStream {
  write(text: string): void;
  /** A terminal: colour, live progress, charts, prompts. */
  readonly isTTY: boolean;
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
  return {
    write: (text) => void stream.write(text),
    get isTTY() {
      return stream.isTTY === true;
    },
    get columns() {
      return stream.isTTY && stream.columns > 0 ? stream.columns : 80;
    },
  };
}

export function processIo(): Io {
  return {
    env: process.env,
    stdout: outStream(process.stdout),
    stderr: outStream(process.stderr),
    stdin: process.stdin,
    now: () => Date.now(),
    onInterrupt(handler) {
      process.on('SIGINT', handler);
      return () => void process.off('SIGINT', handler);
    },
  };
}
