// deckhand deploy | rollback [ID] | deploys [ID]: deploys of the stack through
// the streaming deploy.start / deploy.rollback methods and deploy.list.
//
// A deploy is watched step by step (render/steps.ts) and ends with a summary:
// the result, the deploy's id and duration, and the images before -> after.
// Under a failed health step come the reasons each service gave, which
// `deploys ID` shows again later. A rollback to the deploy already running
// starts nothing: "nothing to roll back", exit 0.
// Exit 0 only when it succeeded; a deploy that failed, or failed and was
// rolled back, is exit 1 (SPEC section 6). Ctrl-C stops watching, not the
// deploy: the agent carries on (closing our stream only stops the progress
// messages), so we say so, say how to follow it, and exit 130.
import { type Command, InvalidArgumentError } from 'commander';
import { ERROR, envParam, gitRefParam, nameParam, type DeployEvent, type DeployInfo, type DeployListResult, type Params, type StreamEnd } from '../../agent/api/protocol.js';
import { ENV_KEY, envValueProblem } from '../../agent/duties/deploy/dotenv.js';
import { RESULT_WORDS } from '../../agent/duties/deploy/rollback-target.js';
import type { RunningStream } from '../client.js';
import { CliError, EXIT, type ExitCode } from '../errors.js';
import type { Palette } from '../render/colour.js';
import { failureLines } from '../render/failures.js';
import { createStepList, PLAIN_INDENT, plainStepLine } from '../render/steps.js';
import { renderTable } from '../render/table.js';
import { formatElapsed, relativeTime } from '../render/time.js';
import { followPages } from '../pages.js';
import { withClient } from '../session.js';
import { resolveTarget } from '../target.js';
import { type CommonOptions, type Ctx, note, printJson, withCommonOptions } from './common.js';

interface DeployOptions extends CommonOptions {
  ref?: string;
  set?: Record<string, string>;
  service?: string[];
}

interface DeploysOptions extends CommonOptions {
  limit?: number;
}

type DeployMethod = 'deploy.start' | 'deploy.rollback';

export function registerDeployCommands(program: Command, ctx: Ctx): void {
  withCommonOptions(program.command('deploy').description('deploy the stack behind the health gate; a failure after `up` rolls back'))
    .option('--ref <ref>', 'check out this git branch, tag or commit in the stack directory first', refArgument)
    .option('--set <KEY=VALUE>', "set a variable in the stack's .env (repeatable; the value may contain '=')", setArgument)
    .option('--service <name>', 'deploy only this service (repeatable; default: all)', serviceArgument)
    .action(async (opts: DeployOptions) => {
      const params = {
        ...(opts.ref ? { ref: opts.ref } : {}),
        ...(opts.set ? { env: opts.set } : {}),
        ...(opts.service ? { services: opts.service } : {}),
      };
      await watchDeploy(ctx, opts, 'deploy.start', params);
    });

  withCommonOptions(program.command('rollback').description('go back to the images, .env and ref of a good deploy (default: the previous good one), health-gated').argument('[id]', 'the deploy to go back to (see `deckhand deploys`)', idArgument)).action(
    async (id: number | undefined, opts: CommonOptions) => {
      await watchDeploy(ctx, opts, 'deploy.rollback', id !== undefined ? { id } : {});
    },
  );

  withCommonOptions(program.command('deploys').description('recent deploys and rollbacks, newest first; with an ID, that one in full').argument('[id]', 'show this deploy: its steps and why services failed', idArgument))
    .option('--limit <n>', 'at most this many (1-1000, default 20)', limitArgument)
    .action(async (id: number | undefined, opts: DeploysOptions) => {
      const target = resolveTarget(opts, ctx.io.env);
      if (id !== undefined) return showDeploy(ctx, opts, id);
      const fetched = await withClient(target, (c) =>
        followPages(opts.limit ?? 20, async (limit, cursor) => {
          const page = await c.call('deploy.list', { limit, ...(cursor ? { cursor } : {}) });
          return { items: page.deploys, ...(page.next ? { next: page.next } : {}) };
        }),
      );
      const result: DeployListResult = { deploys: fetched.items, ...(fetched.next ? { next: fetched.next } : {}) };
      if (opts.json) printJson(ctx.io, result);
      else if (result.deploys.length === 0) note(ctx, `no deploys on ${target.name} yet`);
      else ctx.io.stdout.write(renderDeploys(ctx, result));
    });
}

/** `deckhand deploys ID`: one record in full, read through deploy.list (its page below ID + 1). */
async function showDeploy(ctx: Ctx, opts: DeploysOptions, id: number): Promise<void> {
  const target = resolveTarget(opts, ctx.io.env);
  const page = await withClient(target, (c) => c.call('deploy.list', { limit: 1, cursor: String(id + 1) }));
  const deploy = page.deploys[0];
  if (!deploy || deploy.id !== id) throw new CliError(`no deploy ${id} on ${target.name} (deckhand deploys lists the kept ones)`, EXIT.failed, 'not found');
  if (opts.json) printJson(ctx.io, { deploy });
  else ctx.io.stdout.write(renderDeployRecord(ctx.out, deploy, ctx.io.now()));
}

// ---- arguments -------------------------------------------------------------

/**
 * `KEY=VALUE` for --set: KEY an environment variable name, VALUE anything
 * that compose v1 and v2 both read back from .env as it is, "=" included
 * (only the first "=" splits). A refusal is a usage error (exit 2) before
 * anything is sent, and never repeats the value: values are often secrets,
 * and commander's own message for a bad argument would echo it.
 */
export function parseAssignment(text: string): [string, string] {
  const at = text.indexOf('=');
  if (at < 0) throw setError('expected KEY=VALUE');
  const key = text.slice(0, at);
  const value = text.slice(at + 1);
  if (!ENV_KEY.test(key)) throw setError(`the name before "=" is not an environment variable name (letters, digits and "_", not starting with a digit)`);
  const problem = envValueProblem(value);
  if (problem !== null) throw setError(`the value of ${key} ${problem}`);
  return [key, value];
}

/** Repeated --set: a later one for the same KEY wins, as in a .env file. */
export function setArgument(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const [key, value] = parseAssignment(text);
  const next = { ...previous, [key]: value };
  const checked = envParam.safeParse(next);
  if (!checked.success) throw setError(checked.error.issues[0]?.message ?? 'invalid variables');
  return next;
}

function setError(why: string): CliError {
  return new CliError(`invalid --set: ${why}`, EXIT.usage, 'invalid --set');
}

function refArgument(text: string): string {
  if (!gitRefParam.safeParse(text).success) throw new InvalidArgumentError('expected a git branch, tag or commit');
  return text;
}

function serviceArgument(text: string, previous: string[] = []): string[] {
  if (!nameParam.safeParse(text).success) throw new InvalidArgumentError('expected a service name');
  return previous.includes(text) ? previous : [...previous, text];
}

function idArgument(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a deploy id (a whole number, see `deckhand deploys`)');
  return n;
}

function limitArgument(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 1000) throw new InvalidArgumentError('expected a whole number from 1 to 1000');
  return n;
}

// ---- watching a deploy -----------------------------------------------------

async function watchDeploy<M extends DeployMethod>(ctx: Ctx, opts: CommonOptions, method: M, params: Params<M>): Promise<void> {
  const what = method === 'deploy.start' ? 'deploy' : 'rollback';
  const target = resolveTarget(opts, ctx.io.env);
  // With --json, stdout holds only the final document: the steps go to stderr.
  const steps = opts.json ? createStepList({ stream: ctx.io.stderr, palette: ctx.err, now: ctx.io.now }) : createStepList({ stream: ctx.io.stdout, palette: ctx.out, now: ctx.io.now });
  const follow = `deckhand deploys${opts.host ? ` -H ${opts.host}` : ''}`;

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
      running = (await Promise.race([client.stream(method, params, (e) => steps.event(e as DeployEvent)), interruption])) ?? undefined;
      if (!running) return null;
      return Promise.race([running.done, interruption]);
    });
    // Ctrl-C while connecting: leave now; a late failure of the connection is nobody's business.
    watching.catch(() => undefined);
    const end = await Promise.race([watching, interruption]);
    steps.done();

    if (end === null) {
      const state = running ? `the ${what} continues on ${target.name}` : requested ? `the ${what} may have started on ${target.name}` : `no ${what} was started`;
      ctx.io.stderr.write(`\n${ctx.err.yellow('stopped watching')}: ${state}${requested ? `; see how it ends with \`${follow}\`` : ''}\n`);
      ctx.exitCode = EXIT.interrupted;
      return;
    }

    if (method === 'deploy.rollback' && end.ok && end.unchanged === true && typeof end.running === 'number') {
      // The state to go back to already runs: nothing was started, which is no failure.
      if (opts.json) printJson(ctx.io, { ok: true, unchanged: true, running: end.running });
      else ctx.io.stdout.write(`nothing to roll back: deploy ${end.running} is running\n`);
      ctx.exitCode = EXIT.ok;
      return;
    }
    const deploy = deployOf(end);
    if (!deploy) throw new CliError(`${what} on ${target.name} failed: ${end.error ?? 'the agent gave no reason'}`, EXIT.failed, end.error ?? 'failed');
    if (opts.json) printJson(ctx.io, { ok: end.ok, deploy });
    else ctx.io.stdout.write(`${steps.lines > 0 ? '\n' : ''}${renderDeploySummary(ctx.out, deploy)}`);
    ctx.exitCode = deployExitCode(end);
  } catch (err) {
    steps.done();
    if (err instanceof CliError && err.rpcCode === ERROR.conflict) {
      throw new CliError(`cannot start a ${what} on ${target.name}: ${err.reason}`, EXIT.failed, 'a deploy is already running', err.rpcCode);
    }
    if (err instanceof CliError && running) {
      // The connection went away mid-deploy: the agent carries on without us.
      throw new CliError(`${err.message}; the ${what} continues on ${target.name}: see how it ends with \`${follow}\``, err.exitCode, err.reason, err.rpcCode, err.data);
    }
    throw err;
  } finally {
    stopInterrupts();
  }
}

function deployOf(end: StreamEnd): DeployInfo | undefined {
  const d = end.deploy as DeployInfo | undefined;
  return d && typeof d === 'object' && typeof d.id === 'number' ? d : undefined;
}

/** 0 only for a deploy that succeeded; rolled back, failed, interrupted or no record at all is 1. */
export function deployExitCode(end: StreamEnd): ExitCode {
  const deploy = deployOf(end);
  return end.ok && deploy?.result === 'succeeded' ? EXIT.ok : EXIT.failed;
}

// ---- rendering -------------------------------------------------------------

export function resultLabel(p: Palette, result: DeployInfo['result']): string {
  const label = RESULT_WORDS[result] ?? result;
  if (result === 'succeeded') return p.green(label);
  if (result === 'running') return p.cyan(label);
  if (result === 'rolled_back') return p.yellow(label);
  return p.red(label);
}

/** "sha256:3f2a1b0c9d8e..." -> "3f2a1b0c9d8e", as `docker images` shows IDs. */
export function shortImageId(id: string): string {
  const m = /^sha256:([0-9a-f]{12})[0-9a-f]*$/.exec(id);
  return m ? m[1]! : id;
}

function shortCommit(commit: string, length: number): string {
  return /^[0-9a-f]{40,64}$/.test(commit) ? commit.slice(0, length) : commit;
}

/**
 * After the steps: what happened, which deploy, how long, and the images
 * before -> after (short IDs). A deploy that did not succeed changed no
 * image, so each shows once, "unchanged".
 */
export function renderDeploySummary(p: Palette, d: DeployInfo, when?: string): string {
  const rows: string[][] = [];
  const result = resultLabel(p, d.result);
  rows.push(['result', d.error ? `${result}: ${d.error}` : result]);
  const target = d.targetId !== undefined ? (d.kind === 'rollback' ? ` to deploy ${d.targetId}` : d.kind === 'recovery' ? ` undoing deploy ${d.targetId}` : '') : '';
  const took = d.durationMs !== undefined ? `, ${formatElapsed(d.durationMs)}` : '';
  rows.push([d.kind, `${d.id}${target} by ${d.actor}${took}`]);
  if (when) rows.push(['when', when]);
  if (d.ref.after && d.ref.after !== d.ref.before) rows.push(['ref', `${d.ref.before ? shortCommit(d.ref.before, 12) : '-'} → ${shortCommit(d.ref.after, 12)}`]);
  if (d.envKeys.length > 0) rows.push(['env', d.envKeys.join(', ')]);
  const services = [...new Set([...Object.keys(d.images.before), ...Object.keys(d.images.after ?? {})])].sort();
  const width = Math.max(0, ...services.map((s) => s.length));
  services.forEach((service, i) => {
    const before = d.images.before[service];
    const after = d.images.after?.[service];
    let change: string;
    if (after === undefined || after === before) change = `${before ? shortImageId(before) : '-'} ${p.dim('(unchanged)')}`;
    else change = `${before ? shortImageId(before) : p.dim('(none)')} → ${shortImageId(after)}`;
    rows.push([i === 0 ? 'images' : '', `${service.padEnd(width)}  ${change}`]);
  });
  return renderTable(rows);
}

/** One record in full: the summary, when, then every step with the failures under the failed gate step. */
export function renderDeployRecord(p: Palette, d: DeployInfo, now: number): string {
  const summary = renderDeploySummary(p, d, `${d.startedAt} (${relativeTime(d.startedAt, now)})`);
  const lines: string[] = [];
  const gate = d.steps.findIndex((st) => st.status === 'failed' && (st.step === 'health' || st.step === 'watch'));
  d.steps.forEach((st, i) => {
    if (st.status === 'started') return;
    lines.push(plainStepLine(p, { type: 'step', step: st.step, status: st.status, ...(st.ms !== undefined ? { ms: st.ms } : {}), ...(st.detail ? { detail: st.detail } : {}) }));
    if (i === gate) lines.push(...failureLines(p, d.failures ?? [], PLAIN_INDENT));
  });
  if (gate < 0 && d.failures?.length) lines.push(...failureLines(p, d.failures, PLAIN_INDENT));
  return `${summary}${lines.length ? `steps\n${lines.map((l) => `${l}\n`).join('')}` : ''}`;
}

/** What a deploy changed, in a table cell: "ref 1a2b3c4→5d6e7f8, env WEB_TAG, services web". */
export function describeChange(d: DeployInfo): string {
  const parts: string[] = [];
  if (d.kind === 'rollback' && d.targetId !== undefined) parts.push(`to ${d.targetId}`);
  if (d.kind === 'recovery' && d.targetId !== undefined) parts.push(`undo ${d.targetId}`);
  if (d.ref.after && d.ref.after !== d.ref.before) parts.push(`ref ${d.ref.before ? shortCommit(d.ref.before, 7) : ''}→${shortCommit(d.ref.after, 7)}`);
  if (d.envKeys.length > 0) parts.push(`env ${d.envKeys.join(',')}`);
  if (d.services.length > 0) parts.push(`services ${d.services.join(',')}`);
  return parts.length > 0 ? parts.join(', ') : '-';
}

export function renderDeploys(ctx: Ctx, result: DeployListResult): string {
  const p = ctx.out;
  const now = ctx.io.now();
  const rows = result.deploys.map((d) => [
    String(d.id),
    relativeTime(d.startedAt, now),
    d.actor,
    d.kind,
    resultLabel(p, d.result),
    describeChange(d),
    d.durationMs !== undefined ? formatElapsed(d.durationMs) : '-',
  ]);
  return renderTable(rows, { header: ['ID', 'WHEN', 'WHO', 'KIND', 'RESULT', 'CHANGE', 'DURATION'], headerStyle: p.bold, align: ['right', , , , , , 'right'] });
}
