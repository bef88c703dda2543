// A terminal chart of one metric series: the average as a braille line (each
// character cell holds 2x4 dots, so the line has twice the columns and four
// times the rows of the text grid), the min..max band shaded behind it, value
// labels on the left and relative times below. It fits the width it is given.
import type { Palette } from './colour.js';
import { formatBytes, formatPercent, formatRate } from './size.js';
import { relativeTime } from './time.js';

/** [ts (unix ms), min, avg, max], as metrics.query returns them. */
export type Point = [number, number, number, number];

export type Unit = 'percent' | 'bytes' | 'rate' | 'count';

/** What a series measures, from its name (SPEC section 5, series names). */
export function unitOfSeries(series: string): Unit {
  const base = series.split(':')[0]!;
  if (base === 'host.cpu' || base === 'host.disk.used' || base === 'service.cpu') return 'percent';
  if (base === 'host.mem.used' || base === 'host.swap.used' || base === 'service.mem') return 'bytes';
  if (base === 'host.net.rx' || base === 'host.net.tx') return 'rate';
  return 'count';
}

export function formatValue(value: number, unit: Unit): string {
  switch (unit) {
    case 'percent':
      return formatPercent(value);
    case 'bytes':
      return formatBytes(value);
    case 'rate':
      return formatRate(value);
    case 'count':
      return Number.isInteger(value) ? String(value) : String(Math.round(value * 100) / 100);
  }
}

export interface ChartOptions {
  /** Columns available, labels included. */
  width: number;
  /** Text rows of the plot area. */
  height?: number;
  /** The window shown, unix ms; points outside are clamped to the edges. */
  from: number;
  to: number;
  now: number;
  unit: Unit;
  palette: Palette;
}

interface Column {
  min: number;
  max: number;
  avgSum: number;
  count: number;
  firstTs: number;
  lastTs: number;
}

// Braille dot bits by [sub-row 0..3 from the top][sub-column 0..1].
const DOT = [
  [0x01, 0x08],
  [0x02, 0x10],
  [0x04, 0x20],
  [0x40, 0x80],
];

export function renderChart(points: Point[], opts: ChartOptions): string[] {
  const height = Math.max(2, opts.height ?? 10);
  const range = valueRange(points, opts.unit);
  const labels = [range.hi, (range.hi + range.lo) / 2, range.lo].map((v) => formatValue(v, opts.unit));
  const labelWidth = Math.max(...labels.map((l) => l.length));
  const plotWidth = Math.max(10, opts.width - labelWidth - 2);
  const columns = bucket(points, plotWidth * 2, opts.from, opts.to);

  const subRows = height * 4;
  const toSubRow = (v: number) => clamp(Math.round(((v - range.lo) / (range.hi - range.lo)) * (subRows - 1)), 0, subRows - 1);

  // dots[row][cell] = braille bits; band[row][cell] = the min..max band reaches this cell.
  const dots = Array.from({ length: height }, () => new Array<number>(plotWidth).fill(0));
  const band = Array.from({ length: height }, () => new Array<boolean>(plotWidth).fill(false));
  const setDot = (x: number, y: number) => {
    const row = height - 1 - Math.floor(y / 4);
    dots[row]![Math.floor(x / 2)]! |= DOT[3 - (y % 4)]![x % 2]!;
  };

  // Consecutive data columns are joined (the samples may be sparser than the
  // dots); a pause in the data much longer than the usual interval is a gap.
  const maxJoinMs = joinThreshold(points);
  const markBand = (x: number, min: number, max: number) => {
    for (let r = Math.floor(toSubRow(min) / 4); r <= Math.floor(toSubRow(max) / 4); r++) band[height - 1 - r]![Math.floor(x / 2)] = true;
  };
  let prev: { x: number; y: number; col: Column } | null = null;
  columns.forEach((col, x) => {
    if (!col) return;
    const avg = col.avgSum / col.count;
    const y = toSubRow(avg);
    if (prev && col.firstTs - prev.col.lastTs <= maxJoinMs) {
      let lastY = prev.y;
      for (let xx = prev.x + 1; xx <= x; xx++) {
        const f = (xx - prev.x) / (x - prev.x);
        const yy = Math.round(prev.y + (y - prev.y) * f);
        // Fill the rise between neighbouring dots, so steep steps stay a line.
        const [lo, hi] = lastY < yy ? [lastY + 1, yy] : lastY > yy ? [yy, lastY - 1] : [yy, yy];
        for (let k = lo; k <= hi; k++) setDot(xx, k);
        if (xx < x) markBand(xx, lerp(prev.col.min, col.min, f), lerp(prev.col.max, col.max, f));
        lastY = yy;
      }
    } else {
      setDot(x, y);
    }
    markBand(x, col.min, col.max);
    prev = { x, y, col };
  });

  const p = opts.palette;
  const lines: string[] = [];
  const labelRows = new Map([
    [0, labels[0]!],
    [Math.floor((height - 1) / 2), labels[1]!],
    [height - 1, labels[2]!],
  ]);
  for (let r = 0; r < height; r++) {
    const label = labelRows.get(r);
    const cells = dots[r]!.map((bits, c) => (bits ? p.cyan(String.fromCharCode(0x2800 + bits)) : band[r]![c] ? p.dim('░') : ' ')).join('');
    lines.push(`${(label ?? '').padStart(labelWidth)} ${label !== undefined ? '┤' : '│'}${cells}`.trimEnd());
  }
  lines.push(`${' '.repeat(labelWidth)} └${'─'.repeat(plotWidth)}`);
  lines.push(timeAxis(opts, labelWidth + 2, plotWidth));
  return lines;
}

/** Min and max of the band, widened where a flat line would divide by zero; percentages start at 0. */
export function valueRange(points: Point[], unit: Unit): { lo: number; hi: number } {
  let lo = Infinity;
  let hi = -Infinity;
  for (const [, min, avg, max] of points) {
    lo = Math.min(lo, min, avg);
    hi = Math.max(hi, max, avg);
  }
  if (!Number.isFinite(lo)) return { lo: 0, hi: 1 };
  if (unit === 'percent') {
    lo = Math.min(0, lo);
    hi = hi > 50 && hi <= 100 ? 100 : Math.max(hi, 1);
  }
  if (hi - lo < 1e-9) {
    const pad = Math.abs(hi) > 0 ? Math.abs(hi) * 0.1 : 1;
    lo = lo >= 0 ? Math.max(0, lo - pad) : lo - pad;
    hi = hi + pad;
  }
  return { lo, hi };
}

function bucket(points: Point[], count: number, from: number, to: number): (Column | undefined)[] {
  const columns: (Column | undefined)[] = new Array(count).fill(undefined);
  const span = Math.max(1, to - from);
  for (const [ts, min, avg, max] of points) {
    const x = clamp(Math.floor(((ts - from) / span) * count), 0, count - 1);
    const col = columns[x];
    if (col) {
      col.min = Math.min(col.min, min);
      col.max = Math.max(col.max, max);
      col.avgSum += avg;
      col.count++;
      col.firstTs = Math.min(col.firstTs, ts);
      col.lastTs = Math.max(col.lastTs, ts);
    } else {
      columns[x] = { min, max, avgSum: avg, count: 1, firstTs: ts, lastTs: ts };
    }
  }
  return columns;
}

function timeAxis(opts: ChartOptions, offset: number, plotWidth: number): string {
  const nearNow = Math.max(5_000, (opts.to - opts.from) * 0.02);
  const label = (t: number) => (Math.abs(opts.now - t) <= nearNow ? 'now' : relativeTime(t, opts.now));
  const left = label(opts.from);
  const mid = label((opts.from + opts.to) / 2);
  const right = label(opts.to);
  const line = new Array<string>(offset + plotWidth).fill(' ');
  const place = (text: string, at: number) => [...text].forEach((ch, i) => (line[at + i] = ch));
  place(left, offset);
  const midAt = offset + Math.floor(plotWidth / 2 - mid.length / 2);
  if (midAt > offset + left.length + 2 && midAt + mid.length + 2 < offset + plotWidth - right.length) place(mid, midAt);
  place(right, offset + plotWidth - right.length);
  return line.join('').trimEnd();
}

/** Three times the usual (median) interval between points: longer than that, the agent was not sampling. */
function joinThreshold(points: Point[]): number {
  const gaps: number[] = [];
  for (let i = 1; i < points.length; i++) gaps.push(points[i]![0] - points[i - 1]![0]);
  if (gaps.length === 0) return 0;
  gaps.sort((a, b) => a - b);
  return 3 * gaps[Math.floor(gaps.length / 2)]!;
}

function lerp(a: number, b: number, f: number): number {
  return a + (b - a) * f;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

export interface SeriesSummary {
  min: number;
  avg: number;
  max: number;
  last: number;
}

export function summarize(points: Point[]): SeriesSummary | null {
  if (points.length === 0) return null;
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const [, lo, avg, hi] of points) {
    min = Math.min(min, lo);
    max = Math.max(max, hi);
    sum += avg;
  }
  return { min, avg: sum / points.length, max, last: points[points.length - 1]![2] };
}
