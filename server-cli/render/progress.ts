// Live progress for long work. On a terminal one status line on stderr is
// rewritten in place (and erased when the work is done); elsewhere, only
// the lines that matter are printed, each once, so CI logs read top to bottom.
import type { OutStream } from '../io.js';

export interface Progress {
  /** A transient status ("waiting for web-2, web-3"): shown on a terminal, dropped elsewhere. */
  update(text: string): void;
  /** A line worth keeping ("step 3/7: migrate ok"): printed in both cases. */
  line(text: string): void;
  /** Erases the status line. */
  done(): void;
}

export function createProgress(stream: OutStream): Progress {
  if (!stream.isTTY) {
    return { update: () => {}, line: (text) => stream.write(`${text}\n`), done: () => {} };
  }
  let shown = false;
  const clear = () => {
    if (shown) stream.write('\r\x1b[2K');
    shown = false;
  };
  return {
    update(text) {
      const width = Math.max(10, stream.columns - 1);
      const fitted = text.length > width ? `${text.slice(0, width - 1)}…` : text;
      stream.write(`\r\x1b[2K${fitted}`);
      shown = true;
    },
    line(text) {
      clear();
      stream.write(`${text}\n`);
    },
    done: clear,
  };
}
