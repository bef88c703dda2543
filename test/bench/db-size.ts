// How big the metrics database gets after 90 days at the default retention
// (raw 24 h at 10 s, minutes 7 d, hours 90 d) for a host with 20 services,
// and how fast it answers the reads the API and CLI make.
//
//   node --import tsx test/bench/db-size.ts [--services 20] [--reps 200] [--dir DIR]
//
// Writing 90 days at 10 s through writeTick would take 777,600 ticks, so the
// two older tiers are generated directly, in the order the agent's rollups
// write them (one timestamp for every series, then the next): hour rows for
// 90 d .. 7 d ago, minute rows for 7 d .. 24 h ago. The hours of the last 7 days
// are then rolled up from those minutes by the store's own rollup, and the
// last 24 h are written tick by tick through MetricStore.writeTick (rollups
// and pruning run as in the agent). One more hour of ticks follows with every
// tier full, and those are the ticks timed. No Docker needed.
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetricStore, type Retention } from '../../agent/duties/metrics/store.js';
import { openStore, type Db } from '../../agent/store/db.js';
import { goalLine, goalMet, machineInfo, mb, numberOption, option, percentile, printMachine, printResult, round } from './lib.js';

const GOAL_SIZE_MB = 60;
const GOAL_QUERY_MS = 20;

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** The agent's defaults (SPEC section 3). */
const RETENTION: Retention = { raw: DAY, minute: 7 * DAY, hour: 90 * DAY };
const INTERVAL = 10 * SEC;

const serviceCount = numberOption('services', 20);
const reps = numberOption('reps', 200);
const parent = option('dir') || tmpdir();
/** Leave the file behind (its path is printed) to look into it. */
const keep = option('keep') !== undefined;

// ------------------------------------------------------------- values --

/** A deterministic PRNG, so two runs write the same bytes. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(20260101);
const gauss = () => {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
};
const round2 = (x: number) => Math.round(x * 100) / 100;
const clampPct = (x: number) => Math.min(100, Math.max(0, round2(x)));
/** 0..1 over the day, busiest mid-afternoon. */
const diurnal = (tsMs: number) => 0.5 + 0.5 * Math.sin(((tsMs % DAY) / DAY) * 2 * Math.PI - Math.PI / 2);

/** One sample of a series at a time, shaped like what the collectors produce. */
type Generator = (tsMs: number) => number;

interface Series {
  name: string;
  sample: Generator;
}

function seriesSet(services: number): Series[] {
  const list: Series[] = [
    // % of all cores with two decimals, as clampPercent rounds it.
    { name: 'host.cpu', sample: (t) => clampPct(6 + 25 * diurnal(t) + 4 * gauss() + (rand() < 0.01 ? 40 * rand() : 0)) },
    // /proc/loadavg has two decimals.
    { name: 'host.load1', sample: (t) => Math.max(0, round2(0.2 + 1.4 * diurnal(t) + 0.25 * gauss())) },
    // Bytes, from kB in /proc/meminfo: multiples of 1024, around 2.5 GB.
    { name: 'host.mem.used', sample: (t) => Math.round((2.4e9 + 6e8 * diurnal(t) + 4e7 * gauss()) / 1024) * 1024 },
    // Swap moves rarely: a few MB that change now and then.
    { name: 'host.swap.used', sample: (t) => Math.round((12e6 + 3e6 * Math.floor((t / (6 * HOUR)) % 4)) / 1024) * 1024 },
    // Bytes/s, rounded by the duty.
    { name: 'host.net.rx', sample: (t) => Math.max(0, Math.round(2e5 * diurnal(t) + 3e4 * Math.abs(gauss()) + (rand() < 0.02 ? 5e6 * rand() : 0))) },
    { name: 'host.net.tx', sample: (t) => Math.max(0, Math.round(6e5 * diurnal(t) + 8e4 * Math.abs(gauss()) + (rand() < 0.02 ? 2e7 * rand() : 0))) },
  ];
  // Disks fill slowly: % with two decimals that changes in small steps.
  for (const [mount, base] of [['/', 41], ['/var/lib/docker', 63], ['/srv/backups', 27]] as const) {
    list.push({ name: `host.disk.used:${mount}`, sample: (t) => clampPct(base + (t / DAY) * 0.05 + 0.02 * Math.floor(rand() * 3)) });
  }
  for (let i = 1; i <= services; i++) {
    const s = `svc${String(i).padStart(2, '0')}`;
    const busy = 0.2 + 3 * rand(); // some services are busier than others
    const memBase = (80 + 500 * rand()) * 1024 * 1024; // hundreds of MB
    const restartsSoFar = rand() < 0.15 ? 1 + Math.floor(rand() * 3) : 0; // most never restart
    // % of one core with two decimals, as the duty rounds it.
    list.push({ name: `service.cpu:${s}`, sample: (t) => Math.max(0, round2(busy * (0.3 + diurnal(t)) + 0.3 * busy * gauss())) });
    // Usage minus page cache: whole pages, varying.
    list.push({ name: `service.mem:${s}`, sample: (t) => Math.max(4096, Math.round((memBase * (0.9 + 0.2 * diurnal(t)) + 3e6 * gauss()) / 4096) * 4096) });
    list.push({ name: `service.restarts:${s}`, sample: () => restartsSoFar });
  }
  return list;
}

/** min/avg/max/n of `count` samples, the shape of a rollup row. */
function aggregate(sample: Generator, tsMs: number, count: number, spacingMs: number, n: number): [number, number, number, number] {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let k = 0; k < count; k++) {
    const v = sample(tsMs + k * spacingMs);
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  return [min, sum / count, max, n];
}

// -------------------------------------------------------------- sizes --

function fileSize(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}

function tableSizes(db: Db): Record<string, number> {
  try {
    const rows = db.prepare("SELECT name, sum(pgsize) AS bytes FROM dbstat WHERE name LIKE 'metric_%' GROUP BY name").all() as { name: string; bytes: number }[];
    return Object.fromEntries(rows.map((r) => [r.name, mb(r.bytes)]));
  } catch {
    return {}; // SQLite built without the dbstat table
  }
}

function timeIt(fn: () => unknown, times: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    fn();
    out.push(performance.now() - t0);
  }
  return out;
}

const stats = (xs: number[]) => ({ p50: round(percentile(xs, 50), 3), p99: round(percentile(xs, 99), 3), max: round(Math.max(...xs), 3), n: xs.length });

// --------------------------------------------------------------- main --

async function main(): Promise<void> {
  const machine = machineInfo();
  printMachine(machine);
  const dir = mkdtempSync(join(parent, 'dhbench-db-'));
  const dbPath = join(dir, 'deckhand.db');
  const series = seriesSet(serviceCount);
  console.log(`db-size: ${series.length} series (host + ${serviceCount} services x 3), retention raw 24h / minute 7d / hour 90d, in ${parent}`);
  let db: Db | undefined;
  try {
    db = openStore(dir);
    const store = new MetricStore(db, RETENTION);
    const addSeries = db.prepare('INSERT INTO metric_series (name) VALUES (?)');
    const ids = series.map((s) => Number(addSeries.run(s.name).lastInsertRowid));

    // The simulated clock: the run ends at `end`; ticks start 25 h before.
    const end = Math.floor(Date.now() / HOUR) * HOUR;
    const tickStart = end - DAY - HOUR;
    const minuteStart = Math.floor((tickStart - RETENTION.minute) / HOUR) * HOUR; // whole hours, so hours roll up whole
    const hourStart = tickStart - RETENTION.hour;
    const t0 = performance.now();

    // Hour tier, 90 d .. 7 d before the ticks begin, time-major like the rollups write it.
    const insHour = db.prepare('INSERT INTO metric_hour (series_id, ts, min, avg, max, n) VALUES (?, ?, ?, ?, ?, ?)');
    let hourRows = 0;
    const writeHours = db.transaction((from: number, to: number) => {
      for (let ts = from; ts < to; ts += HOUR) {
        // 60 draws (one per minute) stand in for the hour's 360 samples: min and max are real sample values, avg a full double.
        series.forEach((s, i) => {
          insHour.run(ids[i], ts / 1000, ...aggregate(s.sample, ts, 60, MIN, 360));
          hourRows++;
        });
      }
    });
    for (let ts = Math.ceil(hourStart / HOUR) * HOUR; ts < minuteStart; ts += 7 * DAY) writeHours(ts, Math.min(ts + 7 * DAY, minuteStart));

    // Minute tier, 7 d .. 24 h before the ticks begin: six samples a minute, as from 10 s raw.
    const insMinute = db.prepare('INSERT INTO metric_minute (series_id, ts, min, avg, max, n) VALUES (?, ?, ?, ?, ?, ?)');
    let minuteRows = 0;
    const writeMinutes = db.transaction((from: number, to: number) => {
      for (let ts = from; ts < to; ts += MIN) {
        series.forEach((s, i) => {
          insMinute.run(ids[i], ts / 1000, ...aggregate(s.sample, ts, 6, INTERVAL, 6));
          minuteRows++;
        });
      }
    });
    for (let ts = minuteStart; ts < tickStart; ts += HOUR) writeMinutes(ts, Math.min(ts + HOUR, tickStart));
    // Where the agent's rollup marks would stand: minutes rolled up to the first tick, hours up to where the direct hours end.
    const setMark = db.prepare('INSERT OR REPLACE INTO metric_rollup_marks (tier, done_until) VALUES (?, ?)');
    setMark.run('minute', tickStart / 1000);
    setMark.run('hour', minuteStart / 1000);
    const genSec = (performance.now() - t0) / 1000;
    console.log(`generated ${hourRows.toLocaleString('en')} hour rows and ${minuteRows.toLocaleString('en')} minute rows in ${round(genSec, 1)} s`);

    // The last 25 h tick by tick through the store, as the agent writes them.
    const plain: number[] = [];
    const minuteTicks: number[] = [];
    const hourTicks: number[] = [];
    const t1 = performance.now();
    let ticks = 0;
    for (let ts = tickStart; ts < end; ts += INTERVAL) {
      const samples = series.map((s) => [s.name, s.sample(ts)] as const);
      const a = performance.now();
      store.writeTick(ts, samples);
      const ms = performance.now() - a;
      ticks++;
      // Time only the last hour, when every tier is full and pruning deletes real rows.
      if (ts >= end - HOUR) (ts % HOUR === 0 ? hourTicks : ts % MIN === 0 ? minuteTicks : plain).push(ms);
    }
    const driveSec = (performance.now() - t1) / 1000;
    console.log(`${ticks.toLocaleString('en')} ticks through writeTick in ${round(driveSec, 1)} s (synchronous=FULL, one fsync per tick)`);

    // Sizes as the agent leaves the file: main file plus WAL, then after a checkpoint.
    const walBefore = fileSize(`${dbPath}-wal`);
    const dbBefore = fileSize(dbPath);
    db.pragma('wal_checkpoint(TRUNCATE)');
    const afterCheckpoint = fileSize(dbPath) + fileSize(`${dbPath}-wal`);
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    const pageCount = db.pragma('page_count', { simple: true }) as number;
    const freePages = db.pragma('freelist_count', { simple: true }) as number;
    const tables = tableSizes(db);
    const rowCounts = Object.fromEntries(
      ['metric_raw', 'metric_minute', 'metric_hour'].map((t) => [t, db!.prepare(`SELECT count(*) FROM ${t}`).pluck().get() as number]),
    );

    // Reads, on a warm cache, as the API answers metrics.query.
    const names = series.map((s) => s.name);
    let k = 0;
    const next = () => names[k++ % names.length]!;
    const now = end - INTERVAL;
    let points24h = 0;
    const q24h = timeIt(() => (points24h = store.query(next(), now - DAY, now, '1m').length), reps);
    let points1h = 0;
    const q1hRaw = timeIt(() => (points1h = store.query(next(), now - HOUR, now, 'raw').length), reps);
    let points30d = 0;
    const q30d = timeIt(() => (points30d = store.query(next(), now - 30 * DAY, now, '1h').length), reps);

    // The once-a-minute work on its own, past the end of the data: rollUp when a
    // minute has ended (and once when an hour has), and prune. Each scans what
    // its statement's plan makes it scan, whether or not there is new data.
    const rollMinute: number[] = [];
    const pruneMs: number[] = [];
    for (let m = 1; m <= 20; m++) {
      const at = end / 1000 + m * 60;
      rollMinute.push(...timeIt(() => store.rollUp(at), 1));
      pruneMs.push(...timeIt(() => store.prune(at), 1));
    }
    const rollHour = timeIt(() => store.rollUp(end / 1000 + 3600), 1);

    if (keep) {
      db.close();
      db = undefined;
      const copy = mkdtempSync(join(parent, 'dhbench-db-kept-'));
      copyFileSync(dbPath, join(copy, 'deckhand.db'));
      console.log(`kept a copy (before VACUUM) in ${copy}`);
      db = openStore(dir);
    }
    db.exec('VACUUM');
    db.pragma('wal_checkpoint(TRUNCATE)');
    const afterVacuum = fileSize(dbPath) + fileSize(`${dbPath}-wal`);

    const r = {
      sizeMb: { dbBeforeCheckpoint: mb(dbBefore), walBeforeCheckpoint: mb(walBefore), afterCheckpoint: mb(afterCheckpoint), afterVacuum: mb(afterVacuum) },
      pages: { pageSize, pageCount, freePages },
      tablesMb: tables,
      rows: rowCounts,
      queryMs: { minute24h: { ...stats(q24h), points: points24h }, raw1h: { ...stats(q1hRaw), points: points1h }, hour30d: { ...stats(q30d), points: points30d } },
      writeTickMs: { plain: stats(plain), minuteRollupAndPrune: stats(minuteTicks), hourRollup: stats(hourTicks) },
      partsMs: { rollUpMinuteEnded: stats(rollMinute), rollUpHourEnded: stats(rollHour), prune: stats(pruneMs) },
    };

    console.log('');
    console.log(`rows: raw ${rowCounts.metric_raw}, minute ${rowCounts.metric_minute}, hour ${rowCounts.metric_hour}; page ${pageSize} B, ${pageCount} pages, ${freePages} free`);
    if (Object.keys(tables).length) console.log(`space by table (MB): ${Object.entries(tables).map(([t, v]) => `${t} ${v}`).join(', ')}`);
    console.log(`${'file before checkpoint'.padEnd(34)} db ${r.sizeMb.dbBeforeCheckpoint} MB + wal ${r.sizeMb.walBeforeCheckpoint} MB`);
    console.log(goalLine('db + wal after checkpoint', r.sizeMb.afterCheckpoint, 'MB', { below: GOAL_SIZE_MB }));
    console.log(`${'after VACUUM (reference)'.padEnd(34)} ${String(r.sizeMb.afterVacuum).padStart(10)} MB`);
    console.log(goalLine(`24h at 1m (${points24h} pts), p99`, r.queryMs.minute24h.p99, 'ms', { below: GOAL_QUERY_MS }));
    console.log(`${'  p50'.padEnd(34)} ${String(r.queryMs.minute24h.p50).padStart(10)} ms`);
    console.log(`${`1h raw (${points1h} pts) p50 / p99`.padEnd(34)} ${String(r.queryMs.raw1h.p50).padStart(10)} / ${r.queryMs.raw1h.p99} ms`);
    console.log(`${`30d at 1h (${points30d} pts) p50 / p99`.padEnd(34)} ${String(r.queryMs.hour30d.p50).padStart(10)} / ${r.queryMs.hour30d.p99} ms`);
    console.log(`${`writeTick, ${series.length} series p50 / p99`.padEnd(34)} ${String(r.writeTickMs.plain.p50).padStart(10)} / ${r.writeTickMs.plain.p99} ms (${r.writeTickMs.plain.n} ticks)`);
    console.log(
      `${'  with minute rollup + prune'.padEnd(34)} ${String(r.writeTickMs.minuteRollupAndPrune.p50).padStart(10)} / ${r.writeTickMs.minuteRollupAndPrune.p99} ms p50 / p99, max ${r.writeTickMs.minuteRollupAndPrune.max} (${r.writeTickMs.minuteRollupAndPrune.n} ticks)`,
    );
    console.log(`${'  with hour rollup too'.padEnd(34)} ${String(r.writeTickMs.hourRollup.max).padStart(10)} ms (${r.writeTickMs.hourRollup.n} tick)`);
    console.log(
      `${'  parts: rollUp (minute) p50'.padEnd(34)} ${String(r.partsMs.rollUpMinuteEnded.p50).padStart(10)} ms; rollUp (hour) ${r.partsMs.rollUpHourEnded.max} ms; prune p50 ${r.partsMs.prune.p50} ms`,
    );

    printResult('db-size', {
      machine,
      services: serviceCount,
      series: series.length,
      retention: { raw: '24h', minute: '7d', hour: '90d' },
      ...r,
      goals: {
        sizeMb: { goal: GOAL_SIZE_MB, value: r.sizeMb.afterCheckpoint, met: goalMet(r.sizeMb.afterCheckpoint, { below: GOAL_SIZE_MB }) },
        query24hP99Ms: { goal: GOAL_QUERY_MS, value: r.queryMs.minute24h.p99, met: goalMet(r.queryMs.minute24h.p99, { below: GOAL_QUERY_MS }) },
      },
    });
  } finally {
    db?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
