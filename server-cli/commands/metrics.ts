// deckhand metrics [cpu|mem|disk|net|SERIES] [--since 24h]: a chart of a
// series on a terminal, plain numbers elsewhere. Without a series: the names
// of the series the agent keeps.
import { type Command, InvalidArgumentError } from 'commander';
import { ERROR, type QueryResult } from '../../agent/api/protocol.js';
import type { RpcClient } from '../client.js';
import { CliError, EXIT } from '../errors.js';
import { formatValue, renderChart, summarize, unitOfSeries } from '../render/chart.js';
import { renderTable } from '../render/table.js';
import { withClient } from '../session.js';
import { resolveTarget } from '../target.js';
import { type CommonOptions, type Ctx, note, printJson, withCommonOptions } from './common.js';
import { sinceArgument } from './events.js';

/** Short names for the series an operator asks for most. */
export const SERIES_ALIASES: Record<string, string[]> = {
  cpu: ['host.cpu'],
  mem: ['host.mem.used'],
  disk: ['host.disk.used:/'],
  net: ['host.net.rx', 'host.net.tx'],
};

const SERIES_NAME = /^[A-Za-z0-9_.:/-]{1,200}$/;

type Step = 'raw' | '1m' | '1h';

interface MetricsOptions extends CommonOptions {
  since: string;
  step?: Step;
}

export function registerMetricsCommand(program: Command, ctx: Ctx): void {
  withCommonOptions(
    program
      .command('metrics')
      .description('chart a metric series: cpu, mem, disk, net, or a series name such as service.mem:web')
      .argument('[series]', 'cpu | mem | disk | net | SERIES (none: list the series kept)', seriesArgument),
  )
    .option('--since <time>', 'how far back: a duration (24h, 7d) or an ISO time', sinceArgument, '24h')
    .option('--step <step>', 'raw, 1m or 1h (default: the finest that covers --since)', stepArgument)
    .action(async (series: string | undefined, opts: MetricsOptions) => {
      const target = resolveTarget(opts, ctx.io.env);
      await withClient(target, async (client) => {
        if (series === undefined) return listSeries(ctx, client, target.name, opts);
        const names = SERIES_ALIASES[series] ?? [series];
        const results: QueryResult[] = [];
        for (const name of names) {
          try {
            results.push(await client.call('metrics.query', { series: name, from: opts.since, ...(opts.step ? { step: opts.step } : {}) }));
          } catch (err) {
            if (err instanceof CliError && err.rpcCode === ERROR.notFound) throw await unknownSeriesError(client, target.name, name);
            throw err;
          }
        }
        if (opts.json) {
          // One series: its result as is; net: both, by direction.
          printJson(ctx.io, results.length === 1 ? results[0] : { rx: results[0], tx: results[1] });
          return;
        }
        if (results.every((r) => r.points.length === 0)) await checkSeriesExist(client, target.name, names);
        ctx.io.stdout.write(results.map((r) => renderSeries(ctx, target.name, r, opts.since)).join('\n'));
      });
    });
}

function seriesArgument(text: string): string {
  if (!Object.hasOwn(SERIES_ALIASES, text) && !SERIES_NAME.test(text)) throw new InvalidArgumentError('expected cpu, mem, disk, net or a series name such as host.load1');
  return text;
}

function stepArgument(text: string): Step {
  if (text !== 'raw' && text !== '1m' && text !== '1h') throw new InvalidArgumentError('expected raw, 1m or 1h');
  return text;
}

async function listSeries(ctx: Ctx, client: RpcClient, hostName: string, opts: MetricsOptions): Promise<void> {
  const result = await client.call('metrics.series', {});
  if (opts.json) {
    printJson(ctx.io, result);
    return;
  }
  ctx.io.stdout.write(result.series.map((s) => `${s}\n`).join(''));
  note(ctx, ctx.err.dim(`${result.series.length} series on ${hostName}; chart one with \`deckhand metrics SERIES\` (or cpu, mem, disk, net)`));
}

/** No points at all: an unknown series name is a mistake worth exit 1; a quiet window is not. */
async function checkSeriesExist(client: RpcClient, hostName: string, names: string[]): Promise<void> {
  const kept = (await client.call('metrics.series', {})).series;
  const missing = names.find((n) => !kept.includes(n));
  if (missing !== undefined) throw seriesError(hostName, missing, kept);
}

async function unknownSeriesError(client: RpcClient, hostName: string, name: string): Promise<CliError> {
  const kept = await client.call('metrics.series', {}).then((r) => r.series, () => []);
  return seriesError(hostName, name, kept);
}

function seriesError(hostName: string, name: string, kept: string[]): CliError {
  const base = name.split(':')[0]!;
  const near = kept.filter((k) => k.split(':')[0] === base);
  const hint = near.length > 0 ? `; did you mean ${near.slice(0, 5).join(', ')}?` : '; `deckhand metrics` lists them';
  return new CliError(`${hostName} keeps no series ${name}${hint}`, EXIT.failed, 'unknown series', ERROR.notFound);
}

export function renderSeries(ctx: Ctx, hostName: string, r: QueryResult, since: string): string {
  const unit = unitOfSeries(r.series);
  const sum = summarize(r.points);
  const head = `${ctx.out.bold(r.series)} on ${hostName}, last ${since} (step ${r.step}, ${r.points.length} points)`;
  if (!sum) return `${head}: no data in this window\n`;
  const f = (v: number) => formatValue(v, unit);
  const figures = `now ${f(sum.last)}  min ${f(sum.min)}  avg ${f(sum.avg)}  max ${f(sum.max)}`;

  if (!ctx.io.stdout.isTTY) {
    // Plain numbers, one point a line, in the series' own unit: easy to cut, sort, plot elsewhere.
    const rows = r.points.map(([ts, min, avg, max]) => [new Date(ts).toISOString(), num(min), num(avg), num(max)]);
    return `${head}\n${renderTable(rows, { header: ['TIME', 'MIN', 'AVG', 'MAX'], align: [, 'right', 'right', 'right'] })}`;
  }
  const from = Date.parse(r.from);
  const to = Date.parse(r.to);
  const chart = renderChart(r.points, {
    width: Math.min(ctx.io.stdout.columns, 160),
    height: 10,
    from: Number.isNaN(from) ? r.points[0]![0] : from,
    to: Number.isNaN(to) ? r.points[r.points.length - 1]![0] : to,
    now: ctx.io.now(),
    unit,
    palette: ctx.out,
  });
  const legend = ctx.out.dim(`${ctx.out.cyan('⠤⠤')} average  ░ min to max`);
  return `${head}\n${figures}\n${chart.join('\n')}\n${legend}\n`;
}

function num(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000);
}
