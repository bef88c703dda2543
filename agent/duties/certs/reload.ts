// After a swap, the stack's proxy is told to load the new pair: a signal to
// a compose service's running containers, or a command run by the one
// runner. Only after a swap that succeeded; its failure is the caller's
// alert (the new files are in place, the proxy still serves the old pair).
import type { DockerEngine } from '../../docker/engine.js';
import { failed } from '../../errors.js';
import { CommandError, run } from '../../exec/runner.js';
import type { CertsConfig } from './config.js';

type Reload = NonNullable<CertsConfig['certificates'][number]['reload']>;

export interface StackAccess {
  engine: DockerEngine;
  project: string;
}

const RELOAD_TIMEOUT_MS = 60_000;

/** The reload as an action; returns what was done, for the event. */
export function reloadAction(reload: Reload, stack: StackAccess | undefined): () => Promise<string> {
  if ('command' in reload) {
    return async () => {
      const r = await run({ argv: reload.command, timeoutMs: RELOAD_TIMEOUT_MS });
      if (r.code !== 0 || r.signal) throw failed(`reload command failed: ${new CommandError(r).message}`);
      return `ran ${reload.command[0]}`;
    };
  }
  return async () => {
    if (!stack) throw failed(`reload of service ${reload.service} needs a stack section`);
    const signal = reload.signal.startsWith('SIG') ? reload.signal : `SIG${reload.signal}`;
    const running = (await stack.engine.listProjectContainers(stack.project)).filter((c) => c.service === reload.service && !c.oneoff && c.state === 'running');
    if (!running.length) throw failed(`reload: service ${reload.service} has no running container to signal`);
    for (const c of running) await stack.engine.killContainer(c.id, signal);
    return `sent ${signal} to ${reload.service} (${running.length} container${running.length === 1 ? '' : 's'})`;
  };
}
