// deckhand logs [SERVICE] [-f] [--tail N]: the stack's logs through the
// streaming stack.logs method, printed as `service | text` (a colour per
// service on a terminal). With --json, one JSON object per line (a stream
// has no end to wrap in a single document). Ctrl-C asks the agent to stop
// the stream (stream.cancel) and exits 130 once it has, as every command does
// on Ctrl-C; a second Ctrl-C quits at once.
import { type Command, InvalidArgumentError } from 'commander';
import { nameParam, type LogLine } from '../../agent/api/protocol.js';
import { describeCall } from '../actions.js';
import type { RunningStream, StreamEvent } from '../client.js';
import { CliError, EXIT } from '../errors.js';
import type { Palette } from '../render/colour.js';
import { withClient } from '../session.js';
import { resolveTarget } from '../target.js';
import { type CommonOptions, type Ctx, withCommonOptions } from './common.js';

interface LogsOptions extends CommonOptions {
  follow?: boolean;
  tail?: number;
}

/** How long to wait for the agent to end a cancelled stream before leaving anyway. */
const CANCEL_GRACE_MS = 3_000;

export function registerLogsCommand(program: Command, ctx: Ctx): void {
  withCommonOptions(program.command('logs').description('logs of the stack, or of one service').argument('[service]', 'only this service', serviceArgument))
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .option('--tail <n>', 'lines from the end of each service log to start with (0-10000)', tailArgument)
    .action(async (service: string | undefined, opts: LogsOptions) => {
      const target = resolveTarget(opts, ctx.io.env);
      const params = { ...(service ? { service } : {}), ...(opts.tail !== undefined ? { tail: opts.tail } : {}), ...(opts.follow ? { follow: true } : {}) };
      const print = opts.json ? (e: StreamEvent) => ctx.io.stdout.write(`${JSON.stringify(e)}\n`) : linePrinter(ctx);

      await withClient(target, async (client) => {
        let running: RunningStream | undefined;
        let cancelled = false;
        // After Ctrl-C, the agent has a grace period to end the stream; then we leave anyway.
        let startGrace = () => {};
        const graceOver = new Promise<undefined>((resolve) => (startGrace = () => setTimeout(() => resolve(undefined), CANCEL_GRACE_MS).unref()));
        const stopInterrupts = ctx.io.onInterrupt(() => {
          if (cancelled) process.exit(EXIT.interrupted);
          cancelled = true;
          startGrace();
          if (running) void client.cancel(running.id);
        });
        try {
          running = await client.stream('stack.logs', params, print);
          if (cancelled) void client.cancel(running.id);
          const end = await Promise.race([running.done, graceOver]);
          if (cancelled) {
            ctx.exitCode = EXIT.interrupted;
            return;
          }
          if (end && !end.ok) throw new CliError(`cannot ${describeCall('stack.logs', params)} on ${target.name}: ${end.error ?? 'the agent gave no reason'}`, EXIT.failed, end.error ?? 'failed');
        } finally {
          stopInterrupts();
        }
      });
    });
}

function serviceArgument(text: string): string {
  if (!nameParam.safeParse(text).success) throw new InvalidArgumentError('expected a service name');
  return text;
}

function tailArgument(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 10_000) throw new InvalidArgumentError('expected a whole number from 0 to 10000');
  return n;
}

/** `service | text`, the service names padded to the widest seen so far, coloured per service. */
export function linePrinter(ctx: Ctx): (event: StreamEvent) => void {
  const colours = serviceColours(ctx.out);
  const assigned = new Map<string, (s: string) => string>();
  let width = 0;
  return (event) => {
    if (event.type !== 'line') return;
    const line = event as unknown as LogLine;
    const service = String(line.service ?? '');
    width = Math.max(width, service.length);
    let colour = assigned.get(service);
    if (!colour) {
      colour = colours[assigned.size % colours.length]!;
      assigned.set(service, colour);
    }
    const text = String(line.text ?? '').replace(/\r?\n$/, '');
    ctx.io.stdout.write(`${colour(`${service.padEnd(width)} |`)} ${text}\n`);
  };
}

function serviceColours(p: Palette): ((s: string) => string)[] {
  return [p.cyan, p.yellow, p.green, p.magenta, p.blue, p.red];
}
