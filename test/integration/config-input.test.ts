// The built agent against config input that is not what it should be: paths
// that are not files (/dev/zero, a FIFO, a directory), files too big, maps of
// 40,000 keys, huge values, input that would make the YAML parser recurse or
// collect errors without end, an alias bomb, and a dataDir others may write to.
// Each must end in exit 2 with a short, exact message, quickly and in little
// memory; none needs Docker.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_BIN, freePort, removeDir, tempDir } from '../helpers/agent.js';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Peak resident memory of the agent process as sampled from /proc, in MiB. */
  peakMiB: number;
}

/** Kills the agent if it has not exited by then: a hang fails the test instead of stalling the suite. */
const KILL_AFTER_MS = 15_000;

/** The built agent with ARGS; samples its peak RSS while it runs. */
function agent(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [AGENT_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peakKiB = 0;
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const sampler = setInterval(() => (peakKiB = Math.max(peakKiB, peakRssKiB(child.pid))), 5);
    const killer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
    child.on('close', (code, signal) => {
      clearInterval(sampler);
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0, peakMiB: peakKiB / 1024 });
    });
  });
}

function checkConfig(file: string): Promise<Run> {
  return agent(['check-config', '--config', file]);
}

/** VmHWM: the most memory the process has held so far; 0 once it is gone. */
function peakRssKiB(pid: number | undefined): number {
  try {
    return Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function assertRefused(r: Run, stderr: string | RegExp): void {
  assert.equal(r.signal, null, `killed after ${Math.round(r.ms)} ms: it hung`);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stdout, '');
  if (typeof stderr === 'string') assert.equal(r.stderr, stderr);
  else assert.match(r.stderr, stderr);
}

function manyKeys(count: number): string {
  const parts: string[] = [];
  for (let i = 0; i < count; i++) parts.push(`key${i}: ${i}\n`);
  return parts.join('');
}

describe('check-config reads only what a config can be', () => {
  let dir: string;
  let dataDir: string;
  let port: number;
  const file = (name: string, text: string | Buffer) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  /** A valid config on its own, to append problems to. */
  const goodConfig = () => `dataDir: ${dataDir}\nhealth: {listen: "127.0.0.1:${port}"}\n`;

  before(async () => {
    dir = tempDir('cfginput');
    dataDir = join(dir, 'data');
    mkdirSync(dataDir, { mode: 0o750 });
    port = await freePort();
  });
  after(() => removeDir(dir));

  it('a good config with an existing 0750 dataDir: exit 0', async () => {
    const r = await checkConfig(file('good.yaml', goodConfig()));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /: ok\n$/);
  });

  it('/dev/zero: exit 2 at once, in bounded memory', async () => {
    const r = await checkConfig('/dev/zero');
    assertRefused(r, 'cannot read config: /dev/zero is a character device, not a regular file\n');
    assert.ok(r.ms < 5000, `took ${Math.round(r.ms)} ms`);
    assert.ok(r.peakMiB < 200, `peak RSS ${r.peakMiB.toFixed(0)} MiB`);
  });

  it('a FIFO: exit 2 without waiting for a writer', async () => {
    const fifo = join(dir, 'agent.fifo');
    execFileSync('mkfifo', [fifo]);
    const r = await checkConfig(fifo);
    assertRefused(r, `cannot read config: ${fifo} is a FIFO (named pipe), not a regular file\n`);
  });

  it('a directory: exit 2', async () => {
    const r = await checkConfig(dir);
    assertRefused(r, `cannot read config: ${dir} is a directory, not a regular file\n`);
  });

  it('a 2 MiB file: exit 2 with its size and the limit', async () => {
    const big = file('big.yaml', `${goodConfig()}# ${'x'.repeat(2 * 1024 * 1024 - goodConfig().length - 3)}\n`);
    const r = await checkConfig(big);
    assertRefused(r, `cannot read config: ${big} is 2097152 bytes (2.0 MiB); the limit is 1048576 bytes (1.0 MiB)\n`);
  });

  it('a 100 MB scalar: refused by size, with a short message', async () => {
    const huge = file('huge.yaml', `dataDir: ${'v'.repeat(100_000_000)}\n`);
    const r = await checkConfig(huge);
    assertRefused(r, /^cannot read config: .* is 100000010 bytes \(95\.4 MiB\); the limit is 1048576 bytes \(1\.0 MiB\)\n$/);
    assert.ok(r.stdout.length + r.stderr.length < 4096, `${r.stderr.length} bytes of output`);
    assert.ok(r.peakMiB < 200, `peak RSS ${r.peakMiB.toFixed(0)} MiB`);
  });

  it('a 900 KB value and a 900 KB key inside the limit: echoed clipped', async () => {
    const value = 'v'.repeat(900_000);
    const r = await checkConfig(file('long-value.yaml', `${goodConfig()}stack: {project: app, dir: ${value}}\n`));
    assertRefused(r, `stack.dir: must be an absolute path, got "${'v'.repeat(200)}…" (900000 characters)\n`);
    const k = await checkConfig(file('long-key.yaml', `${goodConfig()}? ${'k'.repeat(900_000)}\n: 1\n`));
    assertRefused(k, `${'k'.repeat(200)}… (900000 characters): unknown key\n`);
  });

  it('40,000 unknown keys: exit 2 in seconds, 20 lines and a count', async () => {
    const r = await checkConfig(file('keys.yaml', goodConfig() + manyKeys(40_000)));
    assertRefused(r, /^key0: unknown key\n/);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 21);
    assert.equal(lines[20], 'and 39980 more problems');
    assert.ok(r.ms < 3000, `took ${Math.round(r.ms)} ms`);
  });

  it('40,000 keys and a duplicate of the first at the end: the duplicate, with both places, in seconds', async () => {
    const text = `${manyKeys(40_000)}key0: again\n`;
    const r = await checkConfig(file('dup.yaml', text));
    assertRefused(r, 'line 40001, column 1: duplicate key "key0" (first at line 1, column 1)\n');
    assert.ok(r.ms < 3000, `took ${Math.round(r.ms)} ms`);
  });

  it('inside the limit, a million "[" and a file of garbage: exit 2 quickly, in bounded memory', async () => {
    const deep = await checkConfig(file('deep.yaml', '['.repeat(1_000_000)));
    assertRefused(deep, 'line 1, column 65: [ ] and { } nested deeper than 64 levels\n');
    const garbage = await checkConfig(file('garbage.yaml', ']:\t@`\n'.repeat(170_000)));
    assertRefused(garbage, /^line \d+, column \d+: more than 300000 YAML tokens; a config needs a few thousand\n$/);
    for (const r of [deep, garbage]) {
      assert.ok(r.ms < 3000, `took ${Math.round(r.ms)} ms`);
      assert.ok(r.peakMiB < 200, `peak RSS ${r.peakMiB.toFixed(0)} MiB`);
    }
  });

  it('a billion-laughs alias bomb: exit 2 with the line and column, in bounded memory', async () => {
    let text = 'l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n';
    for (let i = 1; i <= 9; i++) text += `l${i}: &l${i} [${Array(9).fill(`*l${i - 1}`).join(', ')}]\n`;
    const r = await checkConfig(file('bomb.yaml', text));
    assertRefused(r, /^line \d+, column \d+: aliases expand the document by more than 10000 nodes \(alias \*l\d and those before it\)\n$/);
    assert.ok(r.peakMiB < 200, `peak RSS ${r.peakMiB.toFixed(0)} MiB`);
  });
});

describe('a dataDir others may write to is refused', () => {
  let dir: string;
  let dataDir: string;
  let config: string;

  before(async () => {
    dir = tempDir('cfgdatadir');
    dataDir = join(dir, 'shared data');
    mkdirSync(dataDir);
    chmodSync(dataDir, 0o770);
    config = join(dir, 'agent.yaml');
    writeFileSync(config, `dataDir: ${dataDir}\nhealth: {listen: "127.0.0.1:${await freePort()}"}\n`);
  });
  after(() => removeDir(dir));

  const expected = () =>
    `dataDir: ${dataDir} is group-writable (mode 0770), so other users could replace the agent's database and keys; run: chmod 0750 '${dataDir}'\n`;

  it('check-config: exit 2, naming the directory, its mode and the chmod', async () => {
    assertRefused(await checkConfig(config), expected());
  });

  it('run: exit 2 before opening anything in it', async () => {
    const r = await agent(['run', '--config', config]);
    assertRefused(r, expected());
    assert.equal(existsSync(join(dataDir, 'deckhand.db')), false);
  });

  it('after the chmod it names, check-config passes', async () => {
    chmodSync(dataDir, 0o750);
    const r = await checkConfig(config);
    assert.equal(r.code, 0, r.stderr);
  });
});
