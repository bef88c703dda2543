// deckhand ps: the stack's services as the agent sees them.
import type { Command } from 'commander';
import type { PsResult } from '../../agent/api/protocol.js';
import { statusColour } from '../render/colour.js';
import { renderTable } from '../render/table.js';
import { formatDuration, relativeTime } from '../render/time.js';
import { withClient } from '../session.js';
import { resolveTarget } from '../target.js';
import { type CommonOptions, type Ctx, note, printJson, withCommonOptions } from './common.js';

export function registerPsCommand(program: Command, ctx: Ctx): void {
  withCommonOptions(program.command('ps').description('services of the stack: state, health, restarts, image')).action(async (opts: CommonOptions) => {
    const target = resolveTarget(opts, ctx.io.env);
    const result = await withClient(target, (c) => c.call('stack.ps', {}));
    if (opts.json) printJson(ctx.io, result);
    else if (result.services.length === 0) note(ctx, `no services on ${target.name} (is a stack configured in its agent.yaml?)`);
    else ctx.io.stdout.write(renderPs(ctx, result));
  });
}

/** The engine's state, or, for a service an operator holds down, who stopped it and when: `stopped by ops 5 min ago`. */
function stateCell(ctx: Ctx, s: PsResult['services'][number], now: number): string {
  if (s.stoppedBy !== undefined && s.state !== 'running') {
    return ctx.out.yellow(`stopped by ${s.stoppedBy}${s.stoppedAt ? ` ${relativeTime(s.stoppedAt, now)}` : ''}`);
  }
  return statusColour(ctx.out, s.state)(s.state);
}

export function renderPs(ctx: Ctx, result: PsResult): string {
  const p = ctx.out;
  const now = ctx.io.now();
  const rows = result.services.map((s) => [
    s.service,
    stateCell(ctx, s, now),
    s.health === 'none' ? p.dim('-') : statusColour(p, s.health)(s.health),
    String(s.restarts),
    s.startedAt && s.state === 'running' ? formatDuration((now - Date.parse(s.startedAt)) / 1000) : '-',
    s.image ?? '-',
  ]);
  return renderTable(rows, {
    header: ['SERVICE', 'STATE', 'HEALTH', 'RESTARTS', 'UP', 'IMAGE'],
    headerStyle: p.bold,
    align: [, , , 'right'],
    maxWidth: ctx.io.stdout.columns,
  });
}
