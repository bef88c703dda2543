// Running a program to its end without blocking this process, through the
// agent's own runner. The files of test/matrix/side-by-side share one
// process: a spawnSync of a CLI deploy would stop every other file's timers,
// servers and WebSocket clients for the deploy's length.
import { run as runCommand } from '../../agent/exec/runner.js';

export interface Ran {
  /** The exit code; null when it ended on a signal (the timeout's among them). */
  code: number | null;
  out: string;
  err: string;
}

/** `env`, when given, is the program's whole environment: none of this process's leaks in (the runner would add it). */
export async function run(file: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Ran> {
  const env = opts.env && { ...Object.fromEntries(Object.keys(process.env).map((k) => [k, undefined])), ...opts.env };
  const r = await runCommand({ argv: [file, ...args], timeoutMs: opts.timeoutMs, ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(env ? { env } : {}) });
  return { code: r.code, out: r.stdout, err: r.stderr };
}
