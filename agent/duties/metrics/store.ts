// Metric series in SQLite, in three tiers: raw samples, per-minute and
// per-hour rollups (min/avg/max), each pruned to its retention so the file
// stays bounded. Times are unix seconds; rows are keyed (series, ts) in
// WITHOUT ROWID tables so reading one series is one range scan.
import type { Db, Migration } from '../../store/db.js';
import { migrate } from '../../store/db.js';

export type Tier = 'raw' | 'minute' | 'hour';
export type Step = 'raw' | '1m' | '1h';

export interface Retention {
  raw: number; // ms, as in config
  minute: number;
  hour: number;
}

/** [ts (unix ms), min, avg, max] */
export type Point = [number, number, number, number];

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    sql: `CREATE TABLE metric_series (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    CREATE TABLE metric_raw (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;
    CREATE TABLE metric_minute (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, min REAL NOT NULL, avg REAL NOT NULL, max REAL NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;
    CREATE TABLE metric_hour (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, min REAL NOT NULL, avg REAL NOT NULL, max REAL NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;
    CREATE TABLE metric_rollup_marks (tier TEXT PRIMARY KEY, done_until INTEGER NOT NULL);`,
  },
];

const TIER_TABLE: Record<Tier, string> = { raw: 'metric_raw', minute: 'metric_minute', hour: 'metric_hour' };

/**
 * The most rows one prune deletes per tier. A minute of samples is less
 * (100 series at a 1 s interval: 6,000 raw rows), so this only bites on a
 * backlog (retention shortened, agent off for long); the prune then runs
 * again at every tick, a slice at a time (10-20 ms a tick), instead of once
 * in one long stall (half a second for 500,000 rows).
 */
export const PRUNE_ROWS_PER_TIER = 10_000;

export class MetricStore {
  private readonly seriesIds = new Map<string, number>();
  private readonly insertRaw;
  private readonly findSeries;
  private readonly addSeries;
  private readonly getMark;
  private readonly setMark;
  private lastPruneMinute = -1;
  private pruneBehind = false;

  constructor(
    private readonly db: Db,
    private readonly retention: Retention,
  ) {
    migrate(db, 'metrics', MIGRATIONS);
    this.insertRaw = db.prepare('INSERT OR REPLACE INTO metric_raw (series_id, ts, value) VALUES (?, ?, ?)');
    this.findSeries = db.prepare('SELECT id FROM metric_series WHERE name = ?').pluck();
    this.addSeries = db.prepare('INSERT INTO metric_series (name) VALUES (?)');
    this.getMark = db.prepare('SELECT done_until FROM metric_rollup_marks WHERE tier = ?').pluck();
    this.setMark = db.prepare('INSERT OR REPLACE INTO metric_rollup_marks (tier, done_until) VALUES (?, ?)');
  }

  /**
   * One tick, one transaction: the samples, the rollups of every minute and
   * hour completed since the last run (so a restart catches up from raw),
   * and once a minute (every tick while a backlog lasts) the pruning of each
   * tier and of the series left without points.
   */
  writeTick(tsMs: number, samples: ReadonlyArray<readonly [string, number]>): void {
    const ts = Math.floor(tsMs / 1000);
    this.db.transaction(() => {
      for (const [name, value] of samples) {
        if (Number.isFinite(value)) this.insertRaw.run(this.seriesId(name), ts, value);
      }
      this.rollUp(ts);
      const minute = Math.floor(ts / 60);
      if (minute !== this.lastPruneMinute || this.pruneBehind) {
        this.pruneBehind = !this.prune(ts);
        this.lastPruneMinute = minute;
      }
    })();
  }

  /**
   * Rolls raw into minutes and minutes into hours, for every bucket that has ended.
   * CROSS JOIN keeps SQLite's loop order: per series, one range scan of its key
   * (a plain JOIN let it scan the whole tier: 30 ms a minute, 130 ms an hour).
   */
  rollUp(nowSec: number): void {
    const minuteEnd = Math.floor(nowSec / 60) * 60;
    const minuteFrom = this.mark('minute', minuteEnd - Math.ceil(this.retention.raw / 1000));
    if (minuteEnd > minuteFrom) {
      this.db
        .prepare(
          `INSERT OR REPLACE INTO metric_minute (series_id, ts, min, avg, max, n)
           SELECT r.series_id, (r.ts / 60) * 60, min(r.value), avg(r.value), max(r.value), count(*)
           FROM metric_series s CROSS JOIN metric_raw r ON r.series_id = s.id AND r.ts >= ? AND r.ts < ?
           GROUP BY r.series_id, r.ts / 60`,
        )
        .run(minuteFrom, minuteEnd);
      this.setMark.run('minute', minuteEnd);
    }
    const hourEnd = Math.floor(nowSec / 3600) * 3600;
    const hourFrom = this.mark('hour', hourEnd - Math.ceil(this.retention.minute / 1000));
    if (hourEnd > hourFrom) {
      this.db
        .prepare(
          `INSERT OR REPLACE INTO metric_hour (series_id, ts, min, avg, max, n)
           SELECT m.series_id, (m.ts / 3600) * 3600, min(m.min), sum(m.avg * m.n) / sum(m.n), max(m.max), sum(m.n)
           FROM metric_series s CROSS JOIN metric_minute m ON m.series_id = s.id AND m.ts >= ? AND m.ts < ?
           GROUP BY m.series_id, m.ts / 3600`,
        )
        .run(hourFrom, hourEnd);
      this.setMark.run('hour', hourEnd);
    }
  }

  /**
   * Deletes points past each tier's retention (at most PRUNE_ROWS_PER_TIER a
   * tier), then the series that have no point left in any tier (a service
   * removed from the stack). True when nothing old is left.
   */
  prune(nowSec: number): boolean {
    let done = true;
    for (const tier of ['raw', 'minute', 'hour'] as const) {
      const cutoff = nowSec - Math.ceil(this.retention[tier] / 1000);
      const table = TIER_TABLE[tier];
      // The IN over series lets SQLite walk each series' key range instead of the whole table.
      const deleted = this.db
        .prepare(`DELETE FROM ${table} WHERE (series_id, ts) IN (SELECT series_id, ts FROM ${table} WHERE series_id IN (SELECT id FROM metric_series) AND ts < ? LIMIT ?)`)
        .run(cutoff, PRUNE_ROWS_PER_TIER).changes;
      if (deleted >= PRUNE_ROWS_PER_TIER) done = false;
    }
    if (done) this.removeEmptySeries();
    return done;
  }

  /** Series whose points have all aged out; forgotten here too, so a service that comes back gets a new one. */
  private removeEmptySeries(): void {
    const removed = this.db
      .prepare(
        `DELETE FROM metric_series WHERE NOT EXISTS (SELECT 1 FROM metric_raw WHERE series_id = metric_series.id)
           AND NOT EXISTS (SELECT 1 FROM metric_minute WHERE series_id = metric_series.id)
           AND NOT EXISTS (SELECT 1 FROM metric_hour WHERE series_id = metric_series.id)
         RETURNING name`,
      )
      .pluck()
      .all() as string[];
    for (const name of removed) this.seriesIds.delete(name);
  }

  hasSeries(name: string): boolean {
    return this.findSeries.get(name) !== undefined;
  }

  seriesNames(): string[] {
    return this.db.prepare('SELECT name FROM metric_series ORDER BY name').pluck().all() as string[];
  }

  /** The finest tier whose retention still reaches back to `fromMs`. */
  defaultStep(fromMs: number, nowMs = Date.now()): Step {
    const age = nowMs - fromMs;
    if (age <= this.retention.raw) return 'raw';
    if (age <= this.retention.minute) return '1m';
    return '1h';
  }

  query(name: string, fromMs: number, toMs: number, step: Step): Point[] {
    const id = this.findSeries.get(name) as number | undefined;
    if (id === undefined) return [];
    const from = Math.floor(fromMs / 1000);
    const to = Math.floor(toMs / 1000);
    if (step === 'raw') {
      const rows = this.db.prepare('SELECT ts, value FROM metric_raw WHERE series_id = ? AND ts >= ? AND ts <= ? ORDER BY ts').raw().all(id, from, to) as [number, number][];
      return rows.map(([ts, v]) => [ts * 1000, v, v, v]);
    }
    const table = step === '1m' ? 'metric_minute' : 'metric_hour';
    const rows = this.db.prepare(`SELECT ts, min, avg, max FROM ${table} WHERE series_id = ? AND ts >= ? AND ts <= ? ORDER BY ts`).raw().all(id, from, to) as Point[];
    for (const row of rows) row[0] *= 1000;
    return rows;
  }

  private mark(tier: 'minute' | 'hour', initial: number): number {
    return (this.getMark.get(tier) as number | undefined) ?? initial;
  }

  private seriesId(name: string): number {
    let id = this.seriesIds.get(name);
    if (id === undefined) {
      id = (this.findSeries.get(name) as number | undefined) ?? Number(this.addSeries.run(name).lastInsertRowid);
      this.seriesIds.set(name, id);
    }
    return id;
  }
}
