// deckhand metrics [cpu|mem|disk|net|SERIES] [--since 24h]: a chart of a
// series on a terminal, plain numbers elsewhere. Without a series: the names
// of the series the agent keeps.
import { type Command, InvalidArgumentError } from 'commander';
import { ERROR, parseTimeParam, type QueryResult } from '../../agent/api/protocol.js';
import type { RpcClient } from '../client.js';
import { CliError, EXIT } from '../errors.js';
import { formatValue, renderChart, summarize, type Unit, unitOfSeries } from '../render/chart.js';
import { renderTable } from '../render/table.js';
import { relativeTime } from '../render/time.js';
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
    .action(async (series: string | undefined, opts: MetricsOptions, cmd: Command) => {
      const target = resolveTarget(opts, ctx.io.env);
      // The default window follows the data: a fresh agent's few minutes are charted as they are.
      const window: MetricsWindow = { since: opts.since, followData: cmd.getOptionValueSource('since') === 'default' };
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
        const finer = await Promise.all(results.map((r) => rawPointsOf(client, r, opts.since)));
        // The default window (and step) charts what exists; an explicit one says where the data is.
        const shown = results.map((r, i) => (window.followData && !opts.step && finer[i] ? finer[i] : r));
        ctx.io.stdout.write(shown.map((r, i) => renderSeries(ctx, target.name, r, window, finer[i]?.points.length ?? 0)).join('\n'));
      });
    });
}

export interface MetricsWindow {
  /** As given: a duration (24h) or an ISO time. */
  since: string;
  /** --since was not given: chart only the span the data covers. */
  followData: boolean;
}

/** An empty window at a coarse step: its raw points, if it has any (the rollup may simply not be written yet). */
async function rawPointsOf(client: RpcClient, r: QueryResult, since: string): Promise<QueryResult | undefined> {
  if (r.points.length > 0 || r.step === 'raw') return undefined;
  const raw = await client.call('metrics.query', { series: r.series, from: since, step: 'raw' }).catch(() => undefined);
  return raw && raw.points.length > 0 ? raw : undefined;
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

export function renderSeries(ctx: Ctx, hostName: string, r: QueryResult, window: MetricsWindow, rawPoints = 0): string {
  const unit = unitOfSeries(r.series);
  const sum = summarize(r.points);
  const now = ctx.io.now();
  const queriedFrom = Date.parse(r.from);
  const firstTs = r.points[0]?.[0];
  // Less than nine tenths of the default window has data: chart the part that has.
  const follows = window.followData && firstTs !== undefined && !Number.isNaN(queriedFrom) && firstTs - queriedFrom > 0.1 * (now - queriedFrom);
  const span = `${describeWindow(window.since, now)}${follows ? `, data only since ${relativeTime(firstTs, now)}` : ''}`;
  const head = `${ctx.out.bold(r.series)} on ${hostName}, ${span} (step ${r.step}, ${r.points.length} points)`;
  if (!sum) {
    const finer = rawPoints > 0 ? `; ${rawPoints} raw points exist: try --step raw` : '';
    return `${head}: no data in this window${finer}\n`;
  }
  const f = (v: number) => formatValue(v, unit);
  const figures = `now ${f(sum.last)}  min ${f(sum.min)}  avg ${f(sum.avg)}  max ${f(sum.max)}`;

  if (!ctx.io.stdout.isTTY) {
    // Plain numbers, one point a line, in the series' own unit (said in the header): easy to cut, sort, plot elsewhere.
    const u = UNIT_LABELS[unit];
    const rows = r.points.map(([ts, min, avg, max]) => [new Date(ts).toISOString(), num(min), num(avg), num(max)]);
    const header = ['TIME', ...['MIN', 'AVG', 'MAX'].map((h) => (u ? `${h} (${u})` : h))];
    return `${head}\n${renderTable(rows, { header, align: [, 'right', 'right', 'right'] })}`;
  }
  const to = Date.parse(r.to);
  const chart = renderChart(r.points, {
    width: Math.min(ctx.io.stdout.columns, 160),
    height: 10,
    from: follows ? firstTs! : Number.isNaN(queriedFrom) ? r.points[0]![0] : queriedFrom,
    to: Number.isNaN(to) ? r.points[r.points.length - 1]![0] : to,
    now,
    unit,
    palette: ctx.out,
  });
  const legend = ctx.out.dim(`${ctx.out.cyan('⠤⠤')} average  ░ min to max`);
  return `${head}\n${figures}\n${chart.join('\n')}\n${legend}\n`;
}

/** The unit of a plain table's numbers; a count needs none. */
const UNIT_LABELS: Record<Unit, string> = { percent: '%', bytes: 'bytes', rate: 'bytes/s', count: '' };

/** "last 24h" for a duration; an ISO --since as the time it means: "since 2024-05-01 12:00:00 UTC (3 h ago)". */
export function describeWindow(since: string, now: number): string {
  if (/^\d+(?:\.\d+)?[smhd]$/.test(since.trim())) return `last ${since.trim()}`;
  const t = parseTimeParam(since, now);
  if (t === null) return `since ${since}`;
  return `since ${new Date(t).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC')} (${relativeTime(t, now)})`;
}

function num(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000);
}
