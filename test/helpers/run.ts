// Running a program to its end without blocking this process. The files of
// test/matrix/side-by-side share one process: a spawnSync of a CLI deploy
// would stop every other file's timers, servers and WebSocket clients for
// the deploy's length.
import { spawn } from 'node:child_process';

export interface Ran {
  /** The exit code; null when it ended on a signal (the timeout's SIGKILL among them). */
  code: number | null;
  out: string;
  err: string;
}

export function run(file: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.env ? { env: opts.env } : {}), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}
