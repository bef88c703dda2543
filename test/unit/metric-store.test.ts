import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { MetricStore, PRUNE_ROWS_PER_TIER } from '../../agent/duties/metrics/store.js';
import { openStore, type Db } from '../../agent/store/db.js';

const H = 3_600_000;
const RET = { raw: 24 * H, minute: 7 * 24 * H, hour: 90 * 24 * H };

describe('metric store: rollups and retention', () => {
  let dir: string;
  let db: Db;
  let store: MetricStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dh-metrics-'));
    db = openStore(dir);
    store = new MetricStore(db, RET);
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const t0 = Date.UTC(2026, 0, 1, 0, 0, 0);

  it('rolls complete minutes into min/avg/max, and hours from minutes with weighted averages', () => {
    // 6 samples a minute for two hours: value = minute index, plus 0..5 within the minute.
    for (let m = 0; m < 120; m++) {
      for (let s = 0; s < 6; s++) store.writeTick(t0 + m * 60_000 + s * 10_000, [['host.cpu', m + s]]);
    }
    store.writeTick(t0 + 120 * 60_000, [['host.cpu', 0]]); // crosses into hour 2: hours 0 and 1 are complete
    const minutes = store.query('host.cpu', t0, t0 + 2 * H, '1m');
    assert.equal(minutes.length, 120);
    assert.deepEqual(minutes[0], [t0, 0, 2.5, 5]);
    assert.deepEqual(minutes[59], [t0 + 59 * 60_000, 59, 61.5, 64]);
    const hours = store.query('host.cpu', t0, t0 + 2 * H, '1h');
    assert.equal(hours.length, 2);
    assert.deepEqual(hours[0], [t0, 0, 32, 64]);
    assert.deepEqual(hours[1], [t0 + H, 60, 92, 124]);
  });

  it('the current, unfinished minute is not rolled up yet', () => {
    store.writeTick(t0 + 5_000, [['x', 1]]);
    store.writeTick(t0 + 15_000, [['x', 3]]);
    assert.equal(store.query('x', t0, t0 + H, '1m').length, 0);
    store.writeTick(t0 + 60_000, [['x', 9]]);
    assert.deepEqual(store.query('x', t0, t0 + H, '1m'), [[t0, 1, 2, 3]]);
  });

  it('raw points come back as [ts, v, v, v]', () => {
    store.writeTick(t0, [['a', 1.5], ['b', 2]]);
    assert.deepEqual(store.query('a', t0, t0, 'raw'), [[t0, 1.5, 1.5, 1.5]]);
    assert.deepEqual(store.query('nope', t0, t0, 'raw'), []);
    assert.deepEqual(store.seriesNames(), ['a', 'b']);
  });

  it('skips values that are not finite numbers', () => {
    store.writeTick(t0, [['a', Number.NaN], ['b', Number.POSITIVE_INFINITY], ['c', 1]]);
    assert.deepEqual(store.query('a', t0, t0, 'raw'), []);
    assert.equal(store.query('c', t0, t0, 'raw').length, 1);
  });

  it('prunes each tier to its retention', () => {
    store.writeTick(t0, [['a', 1]]);
    store.writeTick(t0 + 60_000, [['a', 2]]); // minute 0 rolled up
    store.writeTick(t0 + 25 * H, [['a', 3]]); // raw of t0 is now older than 24h
    assert.deepEqual(store.query('a', t0, t0 + 26 * H, 'raw').map((p) => p[1]), [3]);
    assert.ok(store.query('a', t0, t0 + 26 * H, '1m').length >= 1, 'minute tier still holds day-old data');
    store.writeTick(t0 + 8 * 24 * H, [['a', 4]]);
    assert.equal(store.query('a', t0, t0 + H, '1m').length, 0, 'minutes older than 7 days are gone');
    assert.equal(store.query('a', t0, t0 + H, '1h').length, 1, 'the hour survives');
  });

  it('removes a series once its points have aged out of every tier, and makes it afresh if it comes back', () => {
    const D = 24 * H;
    for (let m = 0; m <= 61; m++) store.writeTick(t0 + m * 60_000, [['host.cpu', 1], ['service.mem:old', 5]]); // an hour rolled up
    // The service is removed from the stack: only the host is sampled from now on.
    store.writeTick(t0 + 2 * D, [['host.cpu', 1]]);
    assert.deepEqual(store.seriesNames(), ['host.cpu', 'service.mem:old'], 'its minutes and hours are still kept');
    store.writeTick(t0 + 8 * D, [['host.cpu', 1]]);
    assert.ok(store.hasSeries('service.mem:old'), 'its hour is still kept');
    store.writeTick(t0 + 91 * D, [['host.cpu', 1]]);
    assert.deepEqual(store.seriesNames(), ['host.cpu']);
    assert.equal(store.hasSeries('service.mem:old'), false);
    assert.equal(db.prepare('SELECT count(*) FROM metric_hour h LEFT JOIN metric_series s ON s.id = h.series_id WHERE s.id IS NULL').pluck().get(), 0);

    // The service is deployed again: a new series, written and read as any other.
    store.writeTick(t0 + 91 * D + 1000, [['service.mem:old', 7]]);
    assert.deepEqual(store.query('service.mem:old', t0 + 91 * D, t0 + 92 * D, 'raw').map((p) => p[1]), [7]);
  });

  it('a backlog is pruned a slice per tick, not in one stall', () => {
    store.writeTick(t0, [['x', 1]]);
    const id = db.prepare("SELECT id FROM metric_series WHERE name = 'x'").pluck().get() as number;
    const insert = db.prepare('INSERT OR REPLACE INTO metric_raw (series_id, ts, value) VALUES (?, ?, ?)');
    const backlog = 2 * PRUNE_ROWS_PER_TIER + 500;
    db.transaction(() => {
      for (let i = 0; i < backlog; i++) insert.run(id, t0 / 1000 + i, i);
    })();
    const raw = () => db.prepare('SELECT count(*) FROM metric_raw').pluck().get() as number;
    const later = t0 + 3 * 24 * H;
    store.writeTick(later, [['y', 1]]);
    assert.equal(raw(), backlog - PRUNE_ROWS_PER_TIER + 1, 'one slice, plus the new sample');
    store.writeTick(later + 1000, [['y', 1]]); // the same minute: still behind, so it prunes again
    assert.equal(raw(), backlog - 2 * PRUNE_ROWS_PER_TIER + 2);
    store.writeTick(later + 2000, [['y', 1]]);
    assert.equal(raw(), 3);
    store.writeTick(later + 3000, [['y', 1]]);
    assert.equal(raw(), 4, 'caught up: no prune until the next minute');
  });

  it('catches up rollups from raw after a restart', () => {
    for (let s = 0; s < 6; s++) store.writeTick(t0 + s * 10_000, [['a', s]]);
    // A new store on the same file (the agent restarted) sees minute 0 end.
    const again = new MetricStore(db, RET);
    again.writeTick(t0 + 3 * 60_000, [['a', 100]]);
    assert.deepEqual(again.query('a', t0, t0, '1m'), [[t0, 0, 2.5, 5]]);
  });

  it('chooses the finest tier that covers the range', () => {
    const now = Date.now();
    assert.equal(store.defaultStep(now - H, now), 'raw');
    assert.equal(store.defaultStep(now - 2 * 24 * H, now), '1m');
    assert.equal(store.defaultStep(now - 30 * 24 * H, now), '1h');
  });
});
