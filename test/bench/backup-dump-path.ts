// Diagnosis of the dump path, for backup-run.ts: the same pg_dump of a
// pgbench database through the docker CLI into a file, and through the
// agent's own code in this process (no agent, no API): the exec stream into
// a sink that throws the bytes away (the demux alone), into a plain
// fs.createWriteStream, and through writeDumpFile (SHA-256, writes, fsync),
// interleaved, each with the wall time and this process's CPU.
//
//   node --import tsx test/bench/backup-dump-path.ts [--scale 70] [--reps 3]
import { spawn } from 'node:child_process';
import { closeSync, createWriteStream, mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { DockerEngine } from '../../agent/docker/engine.js';
import { execToStream } from '../../agent/docker/exec.js';
import { writeDumpFile } from '../../agent/duties/backups/dump-file.js';
import { containerSource } from '../../agent/duties/backups/source-container.js';
import { removeDir } from '../helpers/agent.js';
import { startPgStack } from '../helpers/pg.js';
import { cleanupRegistry, numberOption, round } from './lib.js';

const SCALE = numberOption('scale', 70);
const REPS = numberOption('reps', 3);
const { cleanups, cleanup } = cleanupRegistry();

function cli(argv: string[], outFile: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const out = openSync(outFile, 'w', 0o600);
    const t0 = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out, 'inherit'] });
    closeSync(out);
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`exit ${code}`))));
  });
}

async function main(): Promise<void> {
  const pg = await startPgStack('bench-dumppath');
  cleanups.push(() => removeDir(pg.stack.dir));
  cleanups.push(() => pg.down());
  const db = await pg.stack.containerId('db');
  const work = mkdtempSync(join(tmpdir(), 'deckhand-bench-dumppath-'));
  cleanups.push(() => removeDir(work));
  await cli(['docker', 'exec', db, 'pgbench', '-i', '-q', '-s', String(SCALE), '-U', 'app', 'app'], join(work, 'fill.log'));
  const engine = new DockerEngine();
  const cmd = ['pg_dump', '--format=custom', '--no-password', '--username=app', '--dbname=app'];
  let chunks = 0;
  let bytes = 0;
  const variants: Record<string, () => Promise<number>> = {
    'docker CLI > file': () => cli(['docker', 'exec', db, ...cmd], join(work, 'cli.dump')),
    'execToStream -> discard': async () => {
      chunks = 0;
      bytes = 0;
      const t0 = performance.now();
      const sink = new Writable({
        write(c: Buffer, _e, cb) {
          chunks++;
          bytes += c.length;
          cb();
        },
      });
      await execToStream(engine, db, { cmd }, sink, {});
      return performance.now() - t0;
    },
    'execToStream -> createWriteStream': async () => {
      const t0 = performance.now();
      const out = createWriteStream(join(work, 'ws.dump'));
      await execToStream(engine, db, { cmd }, out, {});
      return performance.now() - t0;
    },
    'writeDumpFile(containerSource)': async () => {
      const t0 = performance.now();
      await writeDumpFile(join(work, `wdf-${Date.now()}.dump`), containerSource(engine, { project: pg.stack.project, service: 'db', database: 'app', user: 'app' }));
      return performance.now() - t0;
    },
  };
  const times: Record<string, number[]> = {};
  for (let i = 0; i < REPS; i++) {
    const names = Object.keys(variants);
    if (i % 2) names.reverse();
    const cpu: Record<string, number> = {};
    for (const n of names) {
      const c0 = process.cpuUsage();
      (times[n] ??= []).push(await variants[n]!());
      const c = process.cpuUsage(c0);
      cpu[n] = round((c.user + c.system) / 1000, 0);
    }
    console.log(`rep ${i + 1}: ${names.map((n) => `${n} ${round(times[n]!.at(-1)! / 1000, 2)} s (cpu ${cpu[n]} ms)`).join(', ')}; discard saw ${chunks} chunks, ${bytes} bytes`);
  }
  for (const [n, xs] of Object.entries(times)) console.log(`${n.padEnd(36)} ${xs.map((x) => round(x / 1000, 2)).join(' ')} s`);
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await cleanup();
}
