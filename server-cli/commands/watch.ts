// Watching a streaming operation (a backup run, a restore, a certificate
// renewal) step by step until its end event. Ctrl-C stops watching, not the
// work: the agent carries on, so we say so, say where to look, exit 130. A
// refusal (conflict) and a connection lost mid-run are worded for the operator.
import { ERROR, type DeployEvent, type Params, type StreamEnd } from '../../agent/api/protocol.js';
import type { RunningStream, StreamMethod } from '../client.js';
import { CliError, EXIT } from '../errors.js';
import { createStepList, type StepList } from '../render/steps.js';
import { withClient } from '../session.js';
import { resolveTarget } from '../target.js';
import type { CommonOptions, Ctx } from './common.js';

/** The end event, or null when Ctrl-C stopped the watching (exit code set, message written). */
export async function watchStream<M extends StreamMethod>(
  ctx: Ctx,
  opts: CommonOptions,
  method: M,
  params: Params<M>,
  words: { what: string; follow: string },
  onEvent: (e: unknown, steps: StepList) => void = (e, steps) => steps.event(e as DeployEvent),
): Promise<StreamEnd | null> {
  const { what, follow } = words;
  const target = resolveTarget(opts, ctx.io.env);
  // With --json, stdout holds only the final document: the steps go to stderr.
  const stream = opts.json ? ctx.io.stderr : ctx.io.stdout;
  const steps = createStepList({ stream, palette: opts.json ? ctx.err : ctx.out, now: ctx.io.now });
  const event = (raw: unknown) => onEvent(raw, steps);

  let interrupted = false;
  let requested = false;
  let running: RunningStream | undefined;
  let onInterrupt = () => {};
  const interruption = new Promise<null>((resolve) => (onInterrupt = () => resolve(null)));
  const stopInterrupts = ctx.io.onInterrupt(() => {
    if (interrupted) return;
    interrupted = true;
    onInterrupt();
  });
  try {
    const watching = withClient(target, async (client) => {
      if (interrupted) return null;
      requested = true;
      running = (await Promise.race([client.stream(method, params, event), interruption])) ?? undefined;
      if (!running) return null;
      return Promise.race([running.done, interruption]);
    });
    // Ctrl-C while connecting: leave now; a late failure of the connection is nobody's business.
    watching.catch(() => undefined);
    const end = await Promise.race([watching, interruption]);
    steps.done();
    if (end === null) {
      const state = running ? `the ${what} goes on on ${target.name}` : requested ? `the ${what} may have started on ${target.name}` : `nothing was started`;
      ctx.io.stderr.write(`\n${ctx.err.yellow('stopped watching')}: ${state}${requested ? `; see how it ends with \`${follow}\`` : ''}\n`);
      ctx.exitCode = EXIT.interrupted;
      return null;
    }
    if (!opts.json && steps.lines > 0) ctx.io.stdout.write('\n');
    return end;
  } catch (err) {
    steps.done();
    if (err instanceof CliError && err.rpcCode === ERROR.conflict) {
      throw new CliError(`cannot start the ${what} on ${target.name}: ${err.reason}`, EXIT.failed, err.reason, err.rpcCode);
    }
    if (err instanceof CliError && running) {
      // The connection went away mid-run: the agent carries on without us.
      throw new CliError(`${err.message}; the ${what} goes on on ${target.name}: see how it ends with \`${follow}\``, err.exitCode, err.reason, err.rpcCode, err.data);
    }
    throw err;
  } finally {
    stopInterrupts();
  }
}
