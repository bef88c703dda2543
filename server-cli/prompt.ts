// A yes/no question on the terminal. Only asked when both stdin and stderr
// are terminals: a script never hangs waiting for an answer nobody sees.
import { createInterface } from 'node:readline';
import type { Io } from './io.js';

export function canPrompt(io: Io): boolean {
  return io.stdin.isTTY === true && io.stderr.isTTY;
}

/** Asks on stderr and reads one line; anything but y/yes (or end of input) is no. */
export function confirm(io: Io, question: string): Promise<boolean> {
  io.stderr.write(question);
  const rl = createInterface({ input: io.stdin, terminal: false });
  return new Promise((resolve) => {
    let answered = false;
    rl.once('line', (line) => {
      answered = true;
      rl.close();
      resolve(/^\s*y(es)?\s*$/i.test(line));
    });
    rl.once('close', () => {
      if (!answered) {
        io.stderr.write('\n');
        resolve(false);
      }
    });
  });
}
