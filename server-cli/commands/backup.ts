// deckhand backup list [NAME] | backup run NAME | backup restore ID --yes [--to DATABASE]:
// the database backups of a host through backup.list and the streaming
// backup.run / backup.restore methods.
//
// A run or a restore is watched step by step (render/steps.ts) with a live
// line of bytes and rate under the dump, verify or restore step on a
// terminal, a plain progress line every few seconds elsewhere, and ends with
// one line (render/backups.ts). Exit 0 only when the backup was verified or
// the restore succeeded; anything else that ran is exit 1. A restore
// replaces a database, so it needs --yes; without it nothing is sent and the
// command says what would be replaced (exit 2). Ctrl-C stops watching, not
// the work: the agent carries on, so we say so, say where to look, exit 130.
import { type Command, InvalidArgumentError } from 'commander';
import { ERROR, nameParam, pgDatabaseParam, type BackupEvent, type BackupInfo, type BackupListResult, type Params, type RestoreInfo, type StreamEnd } from '../../agent/api/protocol.js';
import { CliError, EXIT } from '../errors.js';
import { progressLine, progressThrottle, renderBackups, renderRestoreEnd, renderRunEnd, restoreRefusal } from '../render/backups.js';
import { followPages } from '../pages.js';
import { withClient } from '../session.js';
import { resolveTarget } from '../target.js';
import { type CommonOptions, type Ctx, note, printJson, withCommonOptions } from './common.js';
import { watchStream } from './watch.js';

interface ListOptions extends CommonOptions {
  limit?: number;
}

interface RestoreOptions extends CommonOptions {
  yes?: boolean;
  to?: string;
}

/** The most `backup list --limit` fetches, page after page. */
export const LIST_MAX = 100_000;
/** Off a terminal, a progress line at most this often. */
export const PLAIN_PROGRESS_MS = 5_000;

type BackupMethod = 'backup.run' | 'backup.restore';

export function registerBackupCommands(program: Command, ctx: Ctx): void {
  const backup = program.command('backup').description('database backups: list them, run one now, restore one');

  withCommonOptions(backup.command('list').description('backups, newest first; failed runs marked, with their error').argument('[name]', 'only the backups of this configured backup', nameArgument))
    .option('--limit <n>', `at most this many (1-${LIST_MAX}, default 20)`, limitArgument)
    .action(async (name: string | undefined, opts: ListOptions) => {
      const target = resolveTarget(opts, ctx.io.env);
      const fetched = await withClient(target, (c) =>
        followPages(opts.limit ?? 20, async (limit, cursor) => {
          const page = await c.call('backup.list', { limit, ...(name ? { name } : {}), ...(cursor ? { cursor } : {}) });
          return { items: page.backups, ...(page.next ? { next: page.next } : {}) };
        }),
      );
      const result: BackupListResult = { backups: fetched.items, ...(fetched.next ? { next: fetched.next } : {}) };
      if (opts.json) printJson(ctx.io, result);
      else if (result.backups.length === 0) note(ctx, name ? `no backups of ${name} on ${target.name} yet` : `no backups on ${target.name} yet`);
      else {
        ctx.io.stdout.write(renderBackups(ctx.out, result, ctx.io.now()));
        if (result.next) note(ctx, `older ones remain: raise --limit (now ${opts.limit ?? 20}) to see them`);
      }
    });

  withCommonOptions(backup.command('run').description('back up now: dump, verify, keep; the same as a scheduled run').argument('<name>', 'the configured backup (see `deckhand status`)', nameArgument)).action(
    async (name: string, opts: CommonOptions) => {
      const target = resolveTarget(opts, ctx.io.env);
      const end = await watch(ctx, opts, 'backup.run', { name }, `backup ${name}`, `deckhand backup list ${name}${hostFlag(opts)}`);
      if (!end) return;
      const b = backupOf(end);
      if (!b) throw new CliError(`backup ${name} on ${target.name} failed: ${end.error ?? 'the agent gave no reason'}`, EXIT.failed, end.error ?? 'failed');
      if (opts.json) printJson(ctx.io, { ok: end.ok, backup: b });
      else ctx.io.stdout.write(renderRunEnd(ctx.out, b));
      ctx.exitCode = end.ok && b.status === 'verified' ? EXIT.ok : EXIT.failed;
    },
  );

  withCommonOptions(backup.command('restore').description("restore a verified backup into its database (or a new one with --to); a safety backup of the database comes first").argument('<id>', 'the backup (see `deckhand backup list`)', idArgument))
    .option('--yes', 'yes, replace the database')
    .option('--to <database>', 'restore into this new database instead (it must not exist yet); nothing is replaced', databaseArgument)
    .action(async (id: number, opts: RestoreOptions) => {
      const target = resolveTarget(opts, ctx.io.env);
      if (!opts.yes) throw new CliError(restoreRefusal(await refusalFacts(ctx, opts, id, target.name)), EXIT.usage, 'not confirmed: run again with --yes');
      let touched = false;
      const end = await watch(ctx, opts, 'backup.restore', { id, confirm: true, ...(opts.to ? { to: opts.to } : {}) }, `restore of backup ${id}`, `deckhand backup list${hostFlag(opts)}`, (e) => {
        if (e.type === 'step' && e.step === 'restore') touched = true;
      });
      if (!end) return;
      const r = restoreOf(end);
      if (!r) throw new CliError(`restore of backup ${id} on ${target.name} failed: ${end.error ?? 'the agent gave no reason'}`, EXIT.failed, end.error ?? 'failed');
      if (opts.json) printJson(ctx.io, { ok: end.ok, restore: r });
      else ctx.io.stdout.write(renderRestoreEnd(ctx.out, r, { hostFlag: hostFlag(opts), touched }));
      ctx.exitCode = end.ok && r.status === 'succeeded' ? EXIT.ok : EXIT.failed;
    });
}

function hostFlag(opts: CommonOptions): string {
  return opts.host ? ` -H ${opts.host}` : '';
}

/**
 * What a refused restore would have replaced, as far as the agent says:
 * the backup's name (backup.list) and its database (status.get). Only to
 * word the refusal: when the agent cannot be asked, the id has to do.
 */
async function refusalFacts(ctx: Ctx, opts: RestoreOptions, id: number, host: string): Promise<Parameters<typeof restoreRefusal>[0]> {
  const facts = { id, host, ...(opts.to ? { to: opts.to } : {}) };
  try {
    const target = resolveTarget(opts, ctx.io.env);
    return await withClient(
      target,
      async (c) => {
        const page = await c.call('backup.list', { limit: 1, cursor: String(id + 1) });
        const b = page.backups[0];
        if (!b || b.id !== id) return facts;
        const known = { ...facts, name: b.name, startedAt: b.startedAt, now: ctx.io.now() };
        if (opts.to) return known;
        const status = await c.call('status.get', {});
        const database = status.backups?.find((s) => s.name === b.name)?.database;
        return database ? { ...known, database } : known;
      },
      5_000,
    );
  } catch {
    return facts;
  }
}

// ---- arguments -------------------------------------------------------------

export function nameArgument(text: string): string {
  if (!nameParam.safeParse(text).success) throw new InvalidArgumentError('expected the name of a configured backup (letters, digits, "-", "_")');
  return text;
}

export function idArgument(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a backup id (a whole number, see `deckhand backup list`)');
  return n;
}

export function limitArgument(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > LIST_MAX) throw new InvalidArgumentError(`expected a whole number from 1 to ${LIST_MAX}`);
  return n;
}

export function databaseArgument(text: string): string {
  const checked = pgDatabaseParam.safeParse(text);
  if (!checked.success) throw new InvalidArgumentError(checked.error.issues[0]?.message ?? 'expected a database name');
  return text;
}

// ---- watching a run or a restore ---------------------------------------------

/** The end event, or null when Ctrl-C stopped the watching (exit code set, message written). */
function watch<M extends BackupMethod>(
  ctx: Ctx,
  opts: CommonOptions,
  method: M,
  params: Params<M>,
  what: string,
  follow: string,
  onEvent: (e: BackupEvent) => void = () => {},
): Promise<StreamEnd | null> {
  // A terminal redraws in place, so every progress event may show; a log gets one line every few seconds.
  const stream = opts.json ? ctx.io.stderr : ctx.io.stdout;
  const throttle = stream.isTTY ? () => true : progressThrottle(PLAIN_PROGRESS_MS);
  // The step the bytes belong to, as the operator sees it: the one running.
  let current: string | undefined;
  return watchStream(ctx, opts, method, params, { what, follow }, (raw, steps) => {
    const e = raw as BackupEvent;
    onEvent(e);
    if (e.type === 'progress') {
      const step = current ?? e.step;
      if (throttle(ctx.io.now(), step)) steps.progress(progressLine(e, step));
    } else if (e.type === 'step') {
      current = e.status === 'started' ? e.step : undefined;
      steps.event(e);
    }
  });
}

function backupOf(end: StreamEnd): BackupInfo | undefined {
  const b = end.backup as BackupInfo | undefined;
  return b && typeof b === 'object' && typeof b.id === 'number' ? b : undefined;
}

function restoreOf(end: StreamEnd): RestoreInfo | undefined {
  const r = end.restore as RestoreInfo | undefined;
  return r && typeof r === 'object' && typeof r.backupId === 'number' ? r : undefined;
}
