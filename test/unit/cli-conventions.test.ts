// Pure parts of the CLI's conventions: messages in the operator's words, a
// metrics window that follows the data and says what an ISO time means,
// piped tables that are never cut, and the token in use marked in a list.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeCall } from '../../server-cli/actions.js';
import { createCtx, terminalWidth, type Ctx } from '../../server-cli/commands/common.js';
import { renderEvents } from '../../server-cli/commands/events.js';
import { describeWindow, renderSeries } from '../../server-cli/commands/metrics.js';
import { renderTokens } from '../../server-cli/commands/token.js';
import type { Io } from '../../server-cli/io.js';
import { PassThrough } from 'node:stream';

const NOW = Date.parse('2026-06-01T12:00:00Z');

function ctxOf(opts: { tty: boolean; columns?: number }): { ctx: Ctx } {
  const stream = { write: () => {}, isTTY: opts.tty, columns: opts.columns ?? 80 };
  const io: Io = { env: { NO_COLOR: '1' }, stdout: stream, stderr: stream, stdin: new PassThrough(), now: () => NOW, onInterrupt: () => () => {} };
  return { ctx: createCtx(io) };
}

describe('messages in the operator words', () => {
  it('describeCall names the action, with its object', () => {
    assert.equal(describeCall('stack.logs', { service: 'web' }), 'read the logs of web');
    assert.equal(describeCall('stack.logs', {}), 'read the logs of the stack');
    assert.equal(describeCall('stack.restart', { service: 'db' }), 'restart db');
    assert.equal(describeCall('token.revoke', { name: 'ci' }), 'revoke the token ci');
    assert.equal(describeCall('metrics.query', { series: 'host.cpu' }), 'read the metric host.cpu');
    assert.equal(describeCall('deploy.rollback', { id: 7 }), 'roll back to deploy 7');
    assert.equal(describeCall('no.such', {}), 'call no.such');
  });
});

describe('metrics window', () => {
  it('a duration reads "last 24h"; an ISO time as the UTC time it means, and how long ago', () => {
    assert.equal(describeWindow('24h', NOW), 'last 24h');
    assert.equal(describeWindow('2026-06-01T13:30:00+02:00', NOW), 'since 2026-06-01 11:30:00 UTC (30 min ago)');
  });

  const fresh = {
    series: 'host.cpu',
    step: 'raw' as const,
    from: new Date(NOW - 24 * 3_600_000).toISOString(),
    to: new Date(NOW).toISOString(),
    // Five minutes of data in a 24 h window.
    points: Array.from({ length: 30 }, (_, i): [number, number, number, number] => [NOW - (30 - i) * 10_000, 10, 20 + (i % 5), 30]),
  };
  const dataColumns = (chart: string) => Math.max(...chart.split('\n').map((l) => [...l].filter((c) => /[\u2801-\u28ff]/.test(c)).length));

  it('the default window charts the span the data covers, not one squeezed column', () => {
    const { ctx } = ctxOf({ tty: true, columns: 100 });
    const follows = renderSeries(ctx, 'web-1', fresh, { since: '24h', followData: true });
    assert.match(follows, /^host\.cpu on web-1, last 24h, data only since 5 min ago \(step raw, 30 points\)\n/);
    assert.ok(dataColumns(follows) > 40, follows);
    const asked = renderSeries(ctx, 'web-1', fresh, { since: '24h', followData: false });
    assert.match(asked, /^host\.cpu on web-1, last 24h \(step raw, 30 points\)\n/);
    assert.ok(dataColumns(asked) <= 2, 'an explicit 24h is charted as asked');
  });

  it('piped: the unit in the header; no data at a coarse step hints at --step raw', () => {
    const { ctx } = ctxOf({ tty: false });
    assert.match(renderSeries(ctx, 'web-1', { ...fresh, series: 'service.mem:web' }, { since: '1h', followData: false }), /\nTIME +MIN \(bytes\) +AVG \(bytes\) +MAX \(bytes\)\n/);
    const empty = { ...fresh, step: '1h' as const, points: [] };
    assert.equal(renderSeries(ctx, 'web-1', empty, { since: '24h', followData: false }, 12), 'host.cpu on web-1, last 24h (step 1h, 0 points): no data in this window; 12 raw points exist: try --step raw\n');
    assert.equal(renderSeries(ctx, 'web-1', empty, { since: '24h', followData: false }), 'host.cpu on web-1, last 24h (step 1h, 0 points): no data in this window\n');
  });
});

describe('piped output is never cut', () => {
  const long = `deploy of web failed: ${'the health check of web did not pass in time; '.repeat(3)}`.trim();
  const events = { events: [{ id: 1, ts: new Date(NOW - 60_000).toISOString(), type: 'deploy.failed', severity: 'warn', subject: 'web', message: long }] };

  it('a table is cut to the terminal, but not in a pipe', () => {
    const tty = ctxOf({ tty: true, columns: 80 }).ctx;
    const pipe = ctxOf({ tty: false, columns: 80 }).ctx;
    assert.equal(terminalWidth(tty), 80);
    assert.equal(terminalWidth(pipe), undefined);
    assert.ok(renderEvents(tty, events).includes('…'));
    assert.ok(renderEvents(pipe, events).includes(long));
  });
});

describe('token list', () => {
  it('marks the token this CLI uses', () => {
    const { ctx } = ctxOf({ tty: false });
    const out = renderTokens(ctx, { tokens: [{ name: 'laptop', scope: 'admin', createdAt: new Date(NOW).toISOString(), current: true }, { name: 'ci', scope: 'read', createdAt: new Date(NOW).toISOString() }] });
    assert.match(out, /\nlaptop \(this CLI\) +admin/);
    assert.match(out, /\nci +read/);
  });
});
