// What a deckhand backup and restore cost against the plain commands they
// wrap, in the same run: a compose PostgreSQL 15 (service `db`) filled by
// `pgbench -i -s SCALE` (70: over 1 GB), then, interleaved (the order
// alternates each round):
//
//   - reference dump: `docker exec DB pg_dump -Fc -U app -d app`, stdout into
//     a file (no fsync; the fsync of that file is timed apart, for the record);
//   - deckhand dump: `backup.run` over the API; the `dump` step's own ms
//     (pg_dump through the exec API, the SHA-256 on the way, the fsync),
//     verification (`verify` step: pg_restore reads the whole file) apart,
//     and the whole call; the agent's RSS every 100 ms during the run;
//   - reference restore: `docker exec -i DB pg_restore --clean --if-exists
//     --single-transaction -U app -d app`, stdin from deckhand's last file;
//   - deckhand restore: `backup.restore {id, confirm: true}` of that backup;
//     the `restore` step's own ms against the reference, and the whole call
//     (SHA-256 of the file and a verified safety backup come first).
//
//   node --import tsx test/bench/backup-run.ts [--scale 70] [--rounds 2] [--no-restore]
//
// Needs: `npm run build` (dist/), scripts/test-env.sh up (dockerd, docker-compose, test images).
import { spawn } from 'node:child_process';
import { closeSync, createReadStream, fsyncSync, mkdtempSync, openSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeDir } from '../helpers/agent.js';
import { connect, startApiAgent } from '../helpers/api.js';
import { startPgStack } from '../helpers/pg.js';
import { requireDocker } from '../helpers/stack.js';
import { cleanupRegistry, cpuDelta, cpuSeconds, cpuSecondsByName, flagOption, goalLine, goalMet, machineInfo, memory, numberOption, printMachine, printResult, ProcessSampler, round, sleep, timedStreams } from './lib.js';

const SCALE = numberOption('scale', 70);
const ROUNDS = numberOption('rounds', 2);
const RESTORE = !flagOption('no-restore');
const GOAL_RATIO = 1.05;
const GOAL_RSS_EXTRA_MB = 10;
const RSS_EVERY_MS = 100;

const { cleanups, cleanup } = cleanupRegistry();

/** Runs argv with stdout into `outFile` and/or stdin from `inFile`; resolves with the wall ms once it exited 0. */
function timed(argv: string[], io: { outFile?: string; inFile?: string } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const out = io.outFile ? openSync(io.outFile, 'w', 0o600) : undefined;
    const t0 = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { stdio: [io.inFile ? 'pipe' : 'ignore', out ?? 'ignore', 'pipe'] });
    if (out !== undefined) closeSync(out); // the child holds its own copy
    if (io.inFile) {
      const input = createReadStream(io.inFile, { highWaterMark: 1 << 20 });
      input.on('error', (err) => {
        child.kill();
        reject(err);
      });
      child.stdin!.on('error', () => undefined); // the exit code tells
      input.pipe(child.stdin!);
    }
    let err = '';
    child.stderr!.on('data', (c) => (err = (err + c).slice(-4000)));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${argv.join(' ')}: exit ${code}: ${err}`))));
  });
}

function fsyncMs(file: string): number {
  const t0 = performance.now();
  const fd = openSync(file, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return performance.now() - t0;
}

const MiB = 1024 * 1024;
const s = (ms: number) => round(ms / 1000, 2);
const median = (xs: number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};

interface DeckhandDump {
  id: number;
  file: string;
  size: number;
  /** The stream's `dump` step ms: pg_dump started -> file written, hashed and fsynced. */
  dumpStepMs: number;
  recordDumpMs: number;
  verifyMs: number;
  /** backup.run sent -> end event. */
  totalMs: number;
  /** backup.run sent -> the dump step's ok event. */
  callToDumpMs: number;
  rss: { idleMb: number; peakDumpMb: number; peakRunMb: number; extraMb: number; samples: number };
  /** CPU the agent and dockerd used from the call to the dump step's ok event. */
  agentCpuMs: number;
  dockerdCpuMs: number;
}

interface DeckhandRestore {
  stepMs: Record<string, number>;
  totalMs: number;
  safetyBackupId: number;
  /** CPU of the agent and dockerd during the restore step. */
  agentCpuMs: number;
  dockerdCpuMs: number;
}

async function main(): Promise<void> {
  requireDocker();
  const machine = machineInfo(true);
  printMachine(machine);

  const pg = await startPgStack('bench-backup');
  cleanups.push(() => removeDir(pg.stack.dir));
  cleanups.push(() => pg.down());
  const db = await pg.stack.containerId('db');
  const work = mkdtempSync(join(tmpdir(), 'deckhand-bench-backup-'));
  cleanups.push(() => removeDir(work));

  const pgVersion = (await pg.query<{ v: string }>("SELECT current_setting('server_version') AS v"))[0]!.v;
  const fill0 = performance.now();
  await timed(['docker', 'exec', db, 'pgbench', '-i', '-q', '-s', String(SCALE), '-U', 'app', 'app']);
  const fillMs = performance.now() - fill0;
  await pg.query('CHECKPOINT');
  const dbSize = Number((await pg.query<{ n: string }>("SELECT pg_database_size('app') AS n"))[0]!.n);
  console.log(`PostgreSQL ${pgVersion} in service db; pgbench -i -s ${SCALE}: ${s(fillMs)} s; pg_database_size(app) = ${round(dbSize / MiB, 0)} MiB (${round(dbSize / 1024 ** 3, 2)} GiB)`);

  const api = await startApiAgent({
    config: {
      stack: { project: pg.stack.project, dir: pg.stack.dir },
      backups: [{ name: 'bench', schedule: '0 3 * * *', source: { service: 'db', database: 'app', user: 'app' } }],
    },
    env: { DECKHAND_LOG_LEVEL: 'info' },
  });
  cleanups.push(() => removeDir(api.agent.dir));
  cleanups.push(async () => void (await api.agent.stop()));
  const pid = api.agent.child.pid!;
  const client = await connect(api.url, api.token('bench', 'admin'));
  cleanups.push(() => client.close());
  const streams = timedStreams(client);

  const stepsOf = (stream: number) => {
    const out: Record<string, { ms: number; at: number }> = {};
    for (const a of streams.arrivals) if (a.stream === stream && a.event.type === 'step' && a.event.status === 'ok') out[a.event.step] = { ms: a.event.ms, at: a.at };
    return out;
  };

  const referenceDump = async (i: number) => {
    const file = join(work, `reference-${i}.dump`);
    const d0 = cpuSecondsByName('dockerd');
    const ms = await timed(['docker', 'exec', db, 'pg_dump', '-Fc', '-U', 'app', '-d', 'app'], { outFile: file });
    const dockerdCpuMs = cpuDelta(d0, cpuSecondsByName('dockerd')) * 1000;
    const size = statSync(file).size;
    const syncMs = fsyncMs(file);
    return { ms, size, syncMs, file, dockerdCpuMs };
  };

  const deckhandDump = async (): Promise<DeckhandDump> => {
    const idle: number[] = [];
    for (let k = 0; k < 10; k++) {
      idle.push(memory(pid).rssKb);
      await sleep(RSS_EVERY_MS);
    }
    const sampler = new ProcessSampler(pid, RSS_EVERY_MS);
    sampler.start();
    const d0 = cpuSecondsByName('dockerd');
    const a0 = cpuSeconds(pid);
    const t0 = performance.now();
    const r = await client.call('backup.run', { name: 'bench' });
    if (!r.result?.stream) throw new Error(`backup.run: ${JSON.stringify(r)}`);
    let a1 = 0;
    let d1 = d0;
    const watch = setInterval(() => {
      if (a1 === 0 && streams.arrivals.some((a) => a.stream === r.result.stream && a.event.type === 'step' && a.event.step === 'dump' && a.event.status === 'ok')) {
        a1 = cpuSeconds(pid);
        d1 = cpuSecondsByName('dockerd');
      }
    }, 20);
    const end = await streams.waitEnd(r.result.stream, 6 * 3600_000);
    clearInterval(watch);
    sampler.stop();
    const totalMs = end.at - t0;
    if (!end.event.ok || end.event.backup?.status !== 'verified') throw new Error(`backup.run did not succeed: ${JSON.stringify(end.event)}`);
    const steps = stepsOf(r.result.stream);
    const dumpOkAt = steps.dump!.at;
    const duringDump = sampler.rssKb.filter((x) => x.t <= dumpOkAt).map((x) => x.kb);
    const idleKb = median(idle);
    const peakDump = Math.max(...duringDump);
    const b = end.event.backup;
    return {
      id: b.id,
      file: b.file,
      size: b.size,
      dumpStepMs: steps.dump!.ms,
      recordDumpMs: b.timings.dumpMs,
      verifyMs: b.timings.verifyMs,
      totalMs,
      callToDumpMs: dumpOkAt - t0,
      rss: {
        idleMb: round(idleKb / 1024, 1),
        peakDumpMb: round(peakDump / 1024, 1),
        peakRunMb: round(Math.max(...sampler.rssKb.map((x) => x.kb)) / 1024, 1),
        extraMb: round((peakDump - idleKb) / 1024, 1),
        samples: duringDump.length,
      },
      agentCpuMs: round((a1 - a0) * 1000, 0),
      dockerdCpuMs: round(cpuDelta(d0, d1) * 1000, 0),
    };
  };

  const refRestoreDockerdCpu: number[] = [];
  const referenceRestore = async (file: string) => {
    const d0 = cpuSecondsByName('dockerd');
    const ms = await timed(['docker', 'exec', '-i', db, 'pg_restore', '--clean', '--if-exists', '--single-transaction', '-U', 'app', '-d', 'app'], { inFile: file });
    refRestoreDockerdCpu.push(round(cpuDelta(d0, cpuSecondsByName('dockerd')) * 1000, 0));
    return ms;
  };

  const deckhandRestore = async (id: number): Promise<DeckhandRestore> => {
    const t0 = performance.now();
    const r = await client.call('backup.restore', { id, confirm: true });
    if (!r.result?.stream) throw new Error(`backup.restore: ${JSON.stringify(r)}`);
    // The agent's and dockerd's CPU from the restore step's start (as it arrives) to the end.
    let a0 = 0;
    let d0 = new Map<number, number>();
    const watch = setInterval(() => {
      if (a0 === 0 && streams.arrivals.some((a) => a.stream === r.result.stream && a.event.type === 'step' && a.event.step === 'restore' && a.event.status === 'started')) {
        a0 = cpuSeconds(pid);
        d0 = cpuSecondsByName('dockerd');
      }
    }, 20);
    const end = await streams.waitEnd(r.result.stream, 12 * 3600_000);
    clearInterval(watch);
    const agentCpuMs = a0 ? round((cpuSeconds(pid) - a0) * 1000, 0) : Number.NaN;
    const dockerdCpuMs = a0 ? round(cpuDelta(d0, cpuSecondsByName('dockerd')) * 1000, 0) : Number.NaN;
    if (!end.event.ok || end.event.restore?.status !== 'succeeded') throw new Error(`backup.restore did not succeed: ${JSON.stringify(end.event)}`);
    const steps = Object.fromEntries(Object.entries(stepsOf(r.result.stream)).map(([k, v]) => [k, v.ms]));
    return { stepMs: steps, totalMs: end.at - t0, safetyBackupId: end.event.restore.safetyBackupId, agentCpuMs, dockerdCpuMs };
  };

  // Warm-up, not counted: the first run also asks the database's size, and page caches fill.
  const warm = await deckhandDump();
  const warmRef = await referenceDump(-1);
  removeDir(warmRef.file);
  console.log(`warm-up (not counted): deckhand dump step ${s(warm.dumpStepMs)} s, reference ${s(warmRef.ms)} s`);

  const refs: Awaited<ReturnType<typeof referenceDump>>[] = [];
  const dumps: DeckhandDump[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const order = i % 2 === 0 ? ['reference', 'deckhand'] : ['deckhand', 'reference'];
    for (const which of order) {
      if (which === 'reference') {
        const ref = await referenceDump(i);
        removeDir(ref.file);
        refs.push(ref);
      } else dumps.push(await deckhandDump());
    }
    const d = dumps.at(-1)!;
    const ref = refs.at(-1)!;
    console.log(
      `dump round ${i + 1}: reference ${s(ref.ms)} s (${round(ref.size / MiB, 1)} MiB; its fsync ${round(ref.syncMs, 0)} ms; dockerd CPU ${round(ref.dockerdCpuMs, 0)} ms)   deckhand dump step ${s(d.dumpStepMs)} s (${round(d.size / MiB, 1)} MiB; agent CPU ${d.agentCpuMs} ms, dockerd ${d.dockerdCpuMs} ms), verify ${s(d.verifyMs)} s, whole run ${s(d.totalMs)} s; RSS idle ${d.rss.idleMb} MB, peak ${d.rss.peakDumpMb} MB (${d.rss.extraMb >= 0 ? '+' : ''}${d.rss.extraMb})`,
    );
  }

  const refRestores: number[] = [];
  const dhRestores: DeckhandRestore[] = [];
  const last = dumps.at(-1)!;
  if (RESTORE) {
    for (let i = 0; i < ROUNDS; i++) {
      const order = i % 2 === 0 ? ['reference', 'deckhand'] : ['deckhand', 'reference'];
      for (const which of order) {
        if (which === 'reference') refRestores.push(await referenceRestore(last.file));
        else dhRestores.push(await deckhandRestore(last.id));
      }
      const d = dhRestores.at(-1)!;
      console.log(
        `restore round ${i + 1}: reference pg_restore ${s(refRestores.at(-1)!)} s (dockerd CPU ${refRestoreDockerdCpu.at(-1)} ms)   deckhand restore step ${s(d.stepMs.restore ?? Number.NaN)} s (agent CPU ${d.agentCpuMs} ms, dockerd ${d.dockerdCpuMs} ms; checksum ${s(d.stepMs.checksum ?? Number.NaN)} s, safety backup ${s(d.stepMs.safety ?? Number.NaN)} s), whole restore ${s(d.totalMs)} s`,
      );
    }
    const rows = Number((await pg.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_accounts'))[0]!.n);
    if (rows !== SCALE * 100_000) throw new Error(`after the restores pgbench_accounts has ${rows} rows, not ${SCALE * 100_000}`);
  }

  const refDump = median(refs.map((r) => r.ms));
  const dhDump = median(dumps.map((d) => d.dumpStepMs));
  const dhVerify = median(dumps.map((d) => d.verifyMs));
  const dhTotal = median(dumps.map((d) => d.totalMs));
  const dumpRatio = round(dhDump / refDump, 3);
  const rssExtra = Math.max(...dumps.map((d) => d.rss.extraMb));
  const refFsync = median(refs.map((r) => r.syncMs));

  console.log('');
  console.log(`${ROUNDS} rounds each, interleaved; medians`);
  const row = (label: string, ms: number, extra = '') => console.log(`${label.padEnd(52)} ${String(s(ms)).padStart(8)} s${extra}`);
  row('reference: docker exec pg_dump -Fc > file', refDump, `   (+ fsync of the file afterwards ${round(refFsync, 0)} ms)`);
  row('deckhand: dump step (pg_dump, SHA-256, write, fsync)', dhDump, `   (record timings.dumpMs ${s(median(dumps.map((d) => d.recordDumpMs)))} s; call -> dump ok ${s(median(dumps.map((d) => d.callToDumpMs)))} s)`);
  row('deckhand: verify step (pg_restore -f /dev/null)', dhVerify);
  row('deckhand: whole backup.run (call -> end event)', dhTotal);
  console.log(`dump sizes: reference ${round(median(refs.map((r) => r.size)) / MiB, 1)} MiB, deckhand ${round(median(dumps.map((d) => d.size)) / MiB, 1)} MiB`);
  console.log(`agent RSS during the dumps: idle ${dumps.map((d) => d.rss.idleMb).join(' / ')} MB, peak ${dumps.map((d) => d.rss.peakDumpMb).join(' / ')} MB (whole run ${dumps.map((d) => d.rss.peakRunMb).join(' / ')} MB), every ${RSS_EVERY_MS} ms`);
  const dumpBestRatio = round(Math.min(...dumps.map((d) => d.dumpStepMs)) / Math.min(...refs.map((r) => r.ms)), 3);
  console.log(`fastest of each (least disturbed by other work on the machine): dump ${dumpBestRatio}x`);
  console.log(goalLine('dump: deckhand / reference', dumpRatio, 'x', { max: GOAL_RATIO }));
  console.log(goalLine('agent RSS peak - idle, dump', rssExtra, 'MB', { max: GOAL_RSS_EXTRA_MB }));

  let restore: Record<string, unknown> | undefined;
  if (RESTORE) {
    const refR = median(refRestores);
    const dhStep = median(dhRestores.map((d) => d.stepMs.restore ?? Number.NaN));
    const dhWhole = median(dhRestores.map((d) => d.totalMs));
    const restoreRatio = round(dhStep / refR, 3);
    row('reference: docker exec -i pg_restore --clean ... < file', refR);
    row('deckhand: restore step (pg_restore, stdin over exec)', dhStep);
    row('deckhand: checksum step (SHA-256 of the file)', median(dhRestores.map((d) => d.stepMs.checksum ?? Number.NaN)));
    row('deckhand: safety step (a verified backup first)', median(dhRestores.map((d) => d.stepMs.safety ?? Number.NaN)));
    row('deckhand: whole backup.restore (call -> end event)', dhWhole);
    const restoreBestRatio = round(Math.min(...dhRestores.map((d) => d.stepMs.restore ?? Number.NaN)) / Math.min(...refRestores), 3);
    console.log(`fastest of each: restore step ${restoreBestRatio}x`);
    console.log(goalLine('restore step: deckhand / reference', restoreRatio, 'x', { max: GOAL_RATIO }));
    restore = {
      referenceMs: refRestores.map((x) => round(x, 0)),
      referenceDockerdCpuMs: refRestoreDockerdCpu,
      deckhand: dhRestores.map((d) => ({ stepMs: d.stepMs, totalMs: round(d.totalMs, 0), agentCpuMs: d.agentCpuMs, dockerdCpuMs: d.dockerdCpuMs })),
      medianReferenceMs: round(refR, 0),
      medianRestoreStepMs: round(dhStep, 0),
      medianWholeMs: round(dhWhole, 0),
      ratio: restoreRatio,
      bestRatio: restoreBestRatio,
      goal: { maxRatio: GOAL_RATIO, met: goalMet(restoreRatio, { max: GOAL_RATIO }) },
    };
  }

  printResult('backup-run', {
    machine,
    postgres: pgVersion,
    scale: SCALE,
    rounds: ROUNDS,
    databaseBytes: dbSize,
    dump: {
      reference: refs.map((r) => ({ ms: round(r.ms, 0), bytes: r.size, fsyncMs: round(r.syncMs, 0), dockerdCpuMs: round(r.dockerdCpuMs, 0) })),
      deckhand: dumps.map((d) => ({ dumpStepMs: d.dumpStepMs, recordDumpMs: d.recordDumpMs, verifyMs: d.verifyMs, totalMs: round(d.totalMs, 0), callToDumpMs: round(d.callToDumpMs, 0), bytes: d.size, rss: d.rss, agentCpuMs: d.agentCpuMs, dockerdCpuMs: d.dockerdCpuMs })),
      medianReferenceMs: round(refDump, 0),
      medianDumpStepMs: round(dhDump, 0),
      medianVerifyMs: round(dhVerify, 0),
      medianTotalMs: round(dhTotal, 0),
      ratio: dumpRatio,
      bestRatio: dumpBestRatio,
      goal: { maxRatio: GOAL_RATIO, met: goalMet(dumpRatio, { max: GOAL_RATIO }) },
    },
    rss: { extraMaxMb: rssExtra, goal: { maxExtraMb: GOAL_RSS_EXTRA_MB, met: goalMet(rssExtra, { max: GOAL_RSS_EXTRA_MB }) } },
    ...(restore ? { restore } : {}),
  });
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await cleanup();
}
