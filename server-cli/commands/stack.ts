// deckhand restart | stop | start SERVICE: one service of the stack, through
// stack.restart / stack.stop / stack.start (operate scope). A service stopped
// this way stays down (the agent does not bring it back, even across its own
// restarts) until it is started or restarted through deckhand.
import { type Command, InvalidArgumentError } from 'commander';
import { nameParam } from '../../agent/api/protocol.js';
import { withClient } from '../session.js';
import { resolveTarget } from '../target.js';
import { type CommonOptions, type Ctx, printJson, withCommonOptions } from './common.js';

/** compose stops a container with a 10 s grace before killing it; restart is stop and start. */
export const STACK_CALL_TIMEOUT_MS = 120_000;

const ACTIONS = [
  { name: 'restart', method: 'stack.restart', description: 'restart one service of the stack', done: (s: string, host: string) => `restarted ${s} on ${host}` },
  {
    name: 'stop',
    method: 'stack.stop',
    description: 'stop one service; it stays down until `deckhand start SERVICE`',
    done: (s: string, host: string) => `stopped ${s} on ${host}; it stays down until \`deckhand start ${s}\``,
  },
  { name: 'start', method: 'stack.start', description: 'start a service again (also one stopped with `deckhand stop`)', done: (s: string, host: string) => `started ${s} on ${host}` },
] as const;

export function registerStackCommands(program: Command, ctx: Ctx): void {
  for (const action of ACTIONS) {
    withCommonOptions(program.command(action.name).description(action.description).argument('<service>', 'a service of the stack (see `deckhand ps`)', serviceArgument)).action(
      async (service: string, opts: CommonOptions) => {
        const target = resolveTarget(opts, ctx.io.env);
        const result = await withClient(target, (c) => c.call(action.method, { service }, STACK_CALL_TIMEOUT_MS));
        if (opts.json) printJson(ctx.io, result);
        else ctx.io.stdout.write(`${action.done(service, target.name)}\n`);
      },
    );
  }
}

function serviceArgument(text: string): string {
  if (!nameParam.safeParse(text).success) throw new InvalidArgumentError('expected a service name');
  return text;
}
