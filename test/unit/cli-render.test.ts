// Rendering for humans: tables, relative times, sizes, colour, the chart, progress.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatValue, renderChart, summarize, unitOfSeries, valueRange, type Point } from '../../server-cli/render/chart.js';
import { colourEnabled, palette, stripAnsi, visibleLength } from '../../server-cli/render/colour.js';
import { createProgress } from '../../server-cli/render/progress.js';
import { formatBytes, formatPercent, formatRate } from '../../server-cli/render/size.js';
import { renderTable, truncate } from '../../server-cli/render/table.js';
import { formatDuration, relativeTime } from '../../server-cli/render/time.js';

const NOW = Date.parse('2025-06-01T12:00:00Z');

describe('tables', () => {
  it('align columns by their widest cell, two spaces apart, no trailing spaces', () => {
    const out = renderTable(
      [
        ['web', 'running', '0'],
        ['postgres', 'exited', '12'],
      ],
      { header: ['SERVICE', 'STATE', 'RESTARTS'] },
    );
    assert.equal(out, 'SERVICE   STATE    RESTARTS\nweb       running  0\npostgres  exited   12\n');
  });

  it('right-align numbers where asked; indent', () => {
    const out = renderTable(
      [
        ['a', '1'],
        ['b', '100'],
      ],
      { align: [undefined, 'right'], indent: '  ' },
    );
    assert.equal(out, '  a    1\n  b  100\n');
  });

  it('measure cells by what shows: colour codes take no room', () => {
    const p = palette(true);
    const out = renderTable([
      [p.green('ok'), 'x'],
      ['failing', 'y'],
    ]);
    assert.equal(stripAnsi(out), 'ok       x\nfailing  y\n');
    assert.equal(visibleLength(p.red('héllo')), 5);
  });

  it('a short row lets its last cell run across the columns it lacks, without widening them', () => {
    const out = renderTable(
      [
        ['web-1', 'pass', '3/3'],
        ['web-2', 'unreachable (connection refused)'],
      ],
      { header: ['HOST', 'HEALTH', 'SERVICES'] },
    );
    assert.equal(out, 'HOST   HEALTH  SERVICES\nweb-1  pass    3/3\nweb-2  unreachable (connection refused)\n');
  });

  it('cut the last column to the terminal width with an ellipsis', () => {
    const out = renderTable([['1 h ago', 'a long message that goes on and on and on']], { maxWidth: 30 });
    assert.equal(out, '1 h ago  a long message that…\n');
    assert.ok([...out.trimEnd()].length <= 30);
    assert.equal(truncate('short', 10), 'short');
  });

  it('empty: nothing', () => assert.equal(renderTable([]), ''));
});

describe('relative times and durations', () => {
  it('past and future, in the largest sensible unit', () => {
    const cases: [number, string][] = [
      [0, 'just now'],
      [4_000, 'just now'],
      [42_000, '42 s ago'],
      [5 * 60_000 + 10_000, '5 min ago'],
      [3 * 3_600_000 + 59 * 60_000, '3 h ago'],
      [47 * 3_600_000, '47 h ago'],
      [3 * 86_400_000, '3 d ago'],
      [-2 * 3_600_000, 'in 2 h'],
    ];
    for (const [back, text] of cases) assert.equal(relativeTime(NOW - back, NOW), text, text);
    assert.equal(relativeTime(new Date(NOW - 3_600_000).toISOString(), NOW), '1 h ago');
    assert.equal(relativeTime('not a time', NOW), 'not a time');
  });

  it('durations with two units at most', () => {
    assert.equal(formatDuration(40), '40 s');
    assert.equal(formatDuration(5 * 60 + 3), '5 min');
    assert.equal(formatDuration(2 * 3600 + 5 * 60), '2 h 5 min');
    assert.equal(formatDuration(3 * 3600), '3 h');
    assert.equal(formatDuration(4 * 86400 + 3 * 3600 + 7), '4 d 3 h');
    assert.equal(formatDuration(-5), '0 s');
  });
});

describe('sizes and percentages', () => {
  it('bytes in binary units, one decimal below 10', () => {
    const cases: [number, string][] = [
      [0, '0 B'],
      [512, '512 B'],
      [1023, '1023 B'],
      [1024, '1.0 KiB'],
      [1536, '1.5 KiB'],
      [10 * 1024, '10 KiB'],
      [10.23 * 1024, '10 KiB'],
      [9.96 * 1024, '10 KiB'],
      [1023.9 * 1024, '1.0 MiB'],
      [153 * 2 ** 20, '153 MiB'],
      [3.8 * 2 ** 30, '3.8 GiB'],
      [2 * 2 ** 40, '2.0 TiB'],
      [-2048, '-2.0 KiB'],
    ];
    for (const [n, text] of cases) assert.equal(formatBytes(n), text, String(n));
    assert.equal(formatBytes(Number.NaN), '-');
    assert.equal(formatRate(1536), '1.5 KiB/s');
  });

  it('percentages: a decimal below 10', () => {
    assert.equal(formatPercent(0), '0%');
    assert.equal(formatPercent(3.46), '3.5%');
    assert.equal(formatPercent(41.2), '41%');
    assert.equal(formatPercent(100), '100%');
  });
});

describe('colour', () => {
  const tty = { isTTY: true };
  it('only on a terminal, never with NO_COLOR or TERM=dumb', () => {
    assert.equal(colourEnabled(tty, {}), true);
    assert.equal(colourEnabled({ isTTY: false }, {}), false);
    assert.equal(colourEnabled(tty, { NO_COLOR: '1' }), false);
    assert.equal(colourEnabled(tty, { NO_COLOR: '' }), true, 'no-color.org: an empty NO_COLOR does not count');
    assert.equal(colourEnabled(tty, { TERM: 'dumb' }), false);
  });

  it('a disabled palette leaves text alone', () => {
    assert.equal(palette(false).red('x'), 'x');
    assert.equal(palette(true).red('x'), '\x1b[31mx\x1b[39m');
  });
});

describe('the metrics chart', () => {
  const p = palette(false);
  const hourly = (values: number[]): Point[] => values.map((v, i) => [NOW - (values.length - 1 - i) * 3_600_000, v - 1, v, v + 1]);

  it('knows the unit of each series', () => {
    assert.equal(unitOfSeries('host.cpu'), 'percent');
    assert.equal(unitOfSeries('host.disk.used:/srv'), 'percent');
    assert.equal(unitOfSeries('service.cpu:web'), 'percent');
    assert.equal(unitOfSeries('host.mem.used'), 'bytes');
    assert.equal(unitOfSeries('service.mem:web'), 'bytes');
    assert.equal(unitOfSeries('host.net.tx'), 'rate');
    assert.equal(unitOfSeries('host.load1'), 'count');
    assert.equal(formatValue(2 ** 30, 'bytes'), '1.0 GiB');
    assert.equal(formatValue(0.4567, 'count'), '0.46');
  });

  it('fits the width it is given, labels on the left, times below', () => {
    const points = hourly([10, 20, 30, 40, 50, 60, 70, 80, 90, 80, 70, 60, 50, 40, 30, 20, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    for (const width of [40, 80, 132]) {
      const lines = renderChart(points, { width, height: 8, from: NOW - 24 * 3_600_000, to: NOW, now: NOW, unit: 'percent', palette: p });
      assert.equal(lines.length, 8 + 2, 'plot rows, axis, time labels');
      for (const l of lines) assert.ok([...l].length <= width, `${width}: "${l}"`);
      assert.match(lines[0]!, /^100% ┤/);
      assert.match(lines[7]!, /^ {2}0% ┤/);
      assert.match(lines[8]!, /^ {5}└─+$/);
      assert.match(lines[9]!, /^ {6}24 h ago\s+.*now$/);
    }
  });

  it('draws the average as a braille line that rises with the values', () => {
    const lines = renderChart(hourly([0, 25, 50, 75, 100]).map(([t, , avg]) => [t, avg, avg, avg] as Point), { width: 30, height: 4, from: NOW - 4 * 3_600_000, to: NOW, now: NOW, unit: 'percent', palette: p });
    const plot = lines.slice(0, 4).map((l) => l.slice(l.indexOf('┤') >= 0 ? l.indexOf('┤') + 1 : l.indexOf('│') + 1));
    const firstDotColumn = (row: string) => [...row].findIndex((ch) => ch >= '\u2801' && ch <= '\u28ff');
    // Top row is reached last, bottom row first.
    assert.ok(firstDotColumn(plot[0]!) > firstDotColumn(plot[3]!), plot.join('\n'));
    assert.ok(plot.every((row) => firstDotColumn(row) >= 0), 'the line crosses every row');
  });

  it('shades the min..max band where the line is not', () => {
    const points: Point[] = [
      [NOW - 3_600_000, 0, 50, 100],
      [NOW, 0, 50, 100],
    ];
    const lines = renderChart(points, { width: 20, height: 4, from: NOW - 3_600_000, to: NOW, now: NOW, unit: 'percent', palette: p });
    assert.ok(lines.slice(0, 4).some((l) => l.includes('░')));
  });

  it('joins samples sparser than the dots into one line', () => {
    // Seven samples ten minutes apart across 60 columns: every column between the first and last has a dot.
    const points: Point[] = Array.from({ length: 7 }, (_, i) => [NOW - (6 - i) * 600_000, 10 * i, 10 * i, 10 * i]);
    const lines = renderChart(points, { width: 66, height: 5, from: NOW - 3_600_000, to: NOW, now: NOW, unit: 'count', palette: p });
    const plot = lines.slice(0, 5).map((l) => [...l.slice(l.search(/[┤│]/) + 1)]);
    const width = Math.max(...plot.map((r) => r.length));
    const columnsWithDots = Array.from({ length: width }, (_, c) => plot.some((r) => (r[c] ?? ' ') >= '\u2801' && (r[c] ?? ' ') <= '\u28ff'));
    const first = columnsWithDots.indexOf(true);
    const last = columnsWithDots.lastIndexOf(true);
    assert.ok(last - first > 50, `spans the plot: ${first}..${last}`);
    assert.ok(columnsWithDots.slice(first, last + 1).every(Boolean), lines.join('\n'));
  });

  it('leaves a gap where there is no data', () => {
    const points: Point[] = [
      [NOW - 10 * 3_600_000, 50, 50, 50],
      [NOW - 9 * 3_600_000, 50, 50, 50],
      [NOW - 1 * 3_600_000, 50, 50, 50],
      [NOW, 50, 50, 50],
    ];
    const lines = renderChart(points, { width: 40, height: 2, from: NOW - 10 * 3_600_000, to: NOW, now: NOW, unit: 'percent', palette: p });
    const row = lines.find((l) => /[\u2801-\u28ff]/.test(l))!;
    assert.match(row, /[\u2801-\u28ff] {5,}[\u2801-\u28ff]/, row);
  });

  it('a flat series gets a range around it, percentages start at 0', () => {
    assert.deepEqual(valueRange([[0, 5, 5, 5]], 'count'), { lo: 4.5, hi: 5.5 });
    assert.deepEqual(valueRange([[0, 0, 0, 0]], 'bytes'), { lo: 0, hi: 1 });
    assert.deepEqual(valueRange([[0, 20, 30, 60]], 'percent'), { lo: 0, hi: 100 });
    assert.deepEqual(valueRange([[0, 1, 2, 3]], 'percent'), { lo: 0, hi: 3 });
    assert.deepEqual(valueRange([], 'count'), { lo: 0, hi: 1 });
  });

  it('summarizes: min of mins, mean of averages, max of maxes, last average', () => {
    assert.deepEqual(
      summarize([
        [1, 1, 2, 3],
        [2, 0, 4, 9],
      ]),
      { min: 0, avg: 3, max: 9, last: 4 },
    );
    assert.equal(summarize([]), null);
  });

  it('colours the line and dims the band on a terminal', () => {
    const lines = renderChart(hourly([10, 50, 90]), { width: 30, height: 4, from: NOW - 2 * 3_600_000, to: NOW, now: NOW, unit: 'percent', palette: palette(true) });
    assert.ok(lines.join('\n').includes('\x1b[36m'));
  });
});

describe('progress', () => {
  const stream = (isTTY: boolean) => {
    let text = '';
    return { s: { write: (t: string) => void (text += t), isTTY, columns: 20 }, text: () => text };
  };

  it('on a terminal: one status line rewritten in place, erased when done', () => {
    const o = stream(true);
    const pr = createProgress(o.s);
    pr.update('waiting for web-1, web-2, web-3');
    pr.update('waiting for web-3');
    pr.done();
    assert.equal(o.text(), '\r\x1b[2Kwaiting for web-1,…\r\x1b[2Kwaiting for web-3\r\x1b[2K');
  });

  it('elsewhere: transient status dropped, kept lines printed once', () => {
    const o = stream(false);
    const pr = createProgress(o.s);
    pr.update('waiting');
    pr.line('step 1: pull ok');
    pr.done();
    assert.equal(o.text(), 'step 1: pull ok\n');
  });
});
