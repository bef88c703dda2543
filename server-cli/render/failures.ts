// Why services failed a deploy's health gate, under the failed step: the
// exit code or health status, what the healthcheck last said, and the
// container's last log lines (the agent masked .env values and cut them).
import type { DeployFailure } from '../../agent/api/protocol.js';
import type { Palette } from './colour.js';

/** Lines to print under a failed step, each starting with `indent`. */
export function failureLines(p: Palette, failures: readonly DeployFailure[], indent: string): string[] {
  const out: string[] = [];
  for (const f of failures) {
    out.push(`${indent}${p.bold(f.service)}: ${failureState(f)}`);
    if (f.healthOutput?.trim()) {
      const [first, ...rest] = f.healthOutput.trimEnd().split('\n');
      out.push(`${indent}  healthcheck said: ${first}`, ...rest.map((l) => `${indent}    ${l}`));
    }
    if (f.logs.length === 0) out.push(`${indent}  ${p.dim('no log lines')}`);
    else out.push(`${indent}  last ${f.logs.length === 1 ? 'log line' : `${f.logs.length} log lines`}:`, ...f.logs.map((l) => `${indent}    ${p.dim('|')} ${l}`));
  }
  return out;
}

/** "exited with code 3", "unhealthy", or what little is known. */
export function failureState(f: DeployFailure): string {
  if (f.exitCode !== undefined) return `exited with code ${f.exitCode}`;
  if (f.health === 'unhealthy') return 'unhealthy';
  if (f.health === 'starting') return 'healthcheck never passed';
  if (f.health) return `health ${f.health}`;
  return 'failed the gate';
}
