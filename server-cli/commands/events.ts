// deckhand events: alerts and audit entries from the agent's event log.
import { type Command, InvalidArgumentError } from 'commander';
import { type EventsResult, parseTimeParam } from '../../agent/api/protocol.js';
import type { Palette } from '../render/colour.js';
import { renderTable } from '../render/table.js';
import { relativeTime } from '../render/time.js';
import { followPages } from '../pages.js';
import { withClient } from '../session.js';
import { resolveTarget } from '../target.js';
import { type CommonOptions, type Ctx, note, printJson, terminalWidth, withCommonOptions } from './common.js';

interface EventsOptions extends CommonOptions {
  since: string;
  type?: string;
  limit?: number;
}

export function registerEventsCommand(program: Command, ctx: Ctx): void {
  withCommonOptions(program.command('events').description('alerts and audit entries, oldest first'))
    .option('--since <time>', 'a duration back from now (24h, 30m, 7d) or an ISO time', sinceArgument, '24h')
    .option('--type <type>', 'only this event type, e.g. disk.low or service.crashloop', typeArgument)
    .option('--limit <n>', `at most this many, newest first (1-${MAX_EVENTS}, default ${DEFAULT_EVENTS})`, limitArgument)
    .action(async (opts: EventsOptions) => {
      const target = resolveTarget(opts, ctx.io.env);
      const params = { since: opts.since, ...(opts.type ? { type: opts.type } : {}) };
      const fetched = await withClient(target, (c) =>
        followPages(opts.limit ?? DEFAULT_EVENTS, async (limit, cursor) => {
          const page = await c.call('events.list', { ...params, limit, ...(cursor ? { cursor } : {}) });
          return { items: page.events, ...(page.next ? { next: page.next } : {}) };
        }),
      );
      const result: EventsResult = { events: fetched.items, ...(fetched.next ? { next: fetched.next } : {}) };
      if (fetched.next && !opts.json) note(ctx, `more events remain beyond the ${fetched.items.length} shown: narrow --since or raise --limit`);
      if (opts.json) printJson(ctx.io, result);
      else if (result.events.length === 0) note(ctx, `no events on ${target.name} since ${opts.since}${opts.type ? ` of type ${opts.type}` : ''}`);
      else ctx.io.stdout.write(renderEvents(ctx, result));
    });
}

/** Commander turns an InvalidArgumentError into a usage error (exit 2). */
export function sinceArgument(text: string): string {
  if (parseTimeParam(text) === null) throw new InvalidArgumentError('expected a duration like 24h, 30m, 7d or an ISO time like 2024-05-01T12:00:00Z');
  return text;
}

function typeArgument(text: string): string {
  if (!/^[a-z_.]{1,64}$/.test(text)) throw new InvalidArgumentError('expected an event type such as disk.low');
  return text;
}

const DEFAULT_EVENTS = 1000;
const MAX_EVENTS = 100_000;

function limitArgument(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > MAX_EVENTS) throw new InvalidArgumentError(`expected a whole number from 1 to ${MAX_EVENTS}`);
  return n;
}

export function renderEvents(ctx: Ctx, result: EventsResult): string {
  const p = ctx.out;
  const now = ctx.io.now();
  const events = [...result.events].sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts) || a.id - b.id);
  const rows = events.map((e) => {
    const who = e.actor ? ` ${p.dim(`(${e.actor}${e.address ? ` from ${e.address}` : ''})`)}` : '';
    return [relativeTime(e.ts, now), severityColour(p, e.severity)(e.severity), e.type, e.subject ?? '', `${e.message}${who}`];
  });
  return renderTable(rows, { header: ['WHEN', 'SEVERITY', 'TYPE', 'SUBJECT', 'MESSAGE'], headerStyle: p.bold, maxWidth: terminalWidth(ctx) });
}

function severityColour(p: Palette, severity: string): (text: string) => string {
  if (/^(crit|critical|error|fail)/.test(severity)) return p.red;
  if (/^warn/.test(severity)) return p.yellow;
  return p.dim;
}
