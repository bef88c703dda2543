// kill -9 at random moments while a child swaps certificate versions in a
// loop: after each kill `current` is a complete version whose key matches its
// certificate, the symlinked copy is one whole pair, and the copy of real
// files is what agent/duties/certs/files.ts promises: along the rename order
// (privkey, chain, cert, fullchain) no file is newer than the key, and the
// files not replaced since the last complete copy are the pair its
// deckhand-pair.json names. The next start repairs the copy.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { build } from 'esbuild';
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CertStore, inspectPair, PAIR_FILES, readPairRecord, type PairFile } from '../../agent/duties/certs/files.js';
import { ROOT, removeDir, tempDir } from '../helpers/agent.js';
import { selfSigned } from '../helpers/certs.js';

const DOMAINS = ['crash.example'];
const PAIRS = 8;
const LANES = 2;
const KILLS_PER_LANE = 100;
const COPY_ORDER: PairFile[] = ['privkey.pem', 'chain.pem', 'cert.pem', 'fullchain.pem'];
const SWAPPER = join(ROOT, 'test/helpers/cert-swapper.ts');

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

interface Known {
  serial: string;
  /** sha256 of each file's content. */
  sums: Record<PairFile, string>;
}

function pairMatches(keyPem: Buffer | string, fullchainPem: Buffer | string): boolean {
  return new X509Certificate(fullchainPem).checkPrivateKey(createPrivateKey(keyPem));
}

/** Index in KNOWN of the pair whose FILE has this content. Pairs share chain.pem (empty): -1 there. */
function indexOf(known: Known[], file: PairFile, content: Buffer): number {
  if (file === 'chain.pem') return -1;
  const s = sha(content);
  const i = known.findIndex((k) => k.sums[file] === s);
  assert.ok(i >= 0, `${file} is a whole file of a known pair`);
  return i;
}

/**
 * The swapper bundled once with esbuild: node starts a plain bundle in tens
 * of milliseconds, where loading it through tsx takes nearly half a second a
 * kill, too slow for 200 kills on a small machine.
 */
async function bundleSwapper(outfile: string): Promise<void> {
  await build({ entryPoints: [SWAPPER], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'silent' });
}

let swapperBundle = '';

async function runAndKill(args: string[], delayMs: number): Promise<void> {
  const child = spawn(process.execPath, [swapperBundle, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_code, signal) => res(signal)));
  await new Promise<void>((res, rej) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) res();
    });
    child.on('exit', (code) => rej(new Error(`swapper exited ${code} before it was ready: ${err}`)));
  });
  await new Promise((r) => setTimeout(r, delayMs));
  child.kill('SIGKILL');
  const signal = await exited;
  assert.equal(signal, 'SIGKILL', `the swapper was still swapping when killed: ${err}`);
}

function checkStore(dataDir: string): string {
  const base = join(dataDir, 'certs', 'main');
  const version = readlinkSync(join(base, 'current'));
  const vdir = join(base, version);
  assert.ok(existsSync(join(vdir, 'complete')), `current -> ${version} is complete`);
  const key = readFileSync(join(vdir, 'privkey.pem'));
  const full = readFileSync(join(vdir, 'fullchain.pem'));
  assert.ok(pairMatches(key, full), `current ${version}: key matches certificate`);
  inspectPair({ keyPem: key.toString(), fullchainPem: full.toString() }, { domains: DOMAINS, keyType: 'ecdsa-p256' });
  for (const f of PAIR_FILES) assert.equal(realpathSync(join(base, f)), realpathSync(join(vdir, f)), `${f} resolves through current`);
  return version;
}

function checkLinks(dir: string): void {
  if (!existsSync(join(dir, 'live'))) return; // killed before the first copy finished
  const vdir = realpathSync(join(dir, 'live'));
  assert.ok(existsSync(join(vdir, 'complete')), 'live is a complete version');
  const key = readFileSync(join(vdir, 'privkey.pem'));
  const full = readFileSync(join(vdir, 'fullchain.pem'));
  assert.ok(pairMatches(key, full), 'live: key matches certificate');
  const record = JSON.parse(readFileSync(join(vdir, 'deckhand-pair.json'), 'utf8')) as { serial: string };
  assert.equal(new X509Certificate(full).serialNumber, record.serial);
}

/** Returns true when the copy was caught between renames. */
function checkFiles(dir: string, known: Known[]): boolean {
  const record = readPairRecord(dir);
  if (!record) {
    // Killed inside the very first copy: whatever is there is a prefix of the order, of one pair.
    const present = COPY_ORDER.filter((f) => existsSync(join(dir, f)));
    assert.deepEqual(present, COPY_ORDER.slice(0, present.length), 'first copy: files appear in order');
    return present.length > 0;
  }
  const r = known.findIndex((k) => k.serial === record.serial);
  assert.ok(r >= 0, 'the record names a known pair');
  const content = Object.fromEntries(COPY_ORDER.map((f) => [f, readFileSync(join(dir, f))])) as Record<PairFile, Buffer>;
  const keyAt = indexOf(known, 'privkey.pem', content['privkey.pem']);
  // How many installs back from the key each file is (pairs are installed in a cycle).
  const back = (i: number) => (keyAt - i + PAIRS) % PAIRS;
  const recordBack = back(r);
  let last = 0;
  for (const f of COPY_ORDER) {
    const i = indexOf(known, f, content[f]);
    if (i < 0) continue;
    assert.ok(back(i) >= last, `${f} is not newer than the file renamed before it`);
    assert.ok(back(i) <= recordBack, `${f} is not older than the pair the record names`);
    last = back(i);
  }
  const whole = pairMatches(content['privkey.pem'], content['fullchain.pem']);
  // The record names the pair in place only once all four are renamed.
  if (keyAt === r) assert.ok(whole, 'record and key agree: the whole pair is in place');
  return !whole;
}

describe('certificate files across kill -9', { timeout: 60_000 }, () => {
  let dir: string;
  let pairsFile: string;
  let known: Known[];
  before(async () => {
    dir = tempDir('certcrash');
    swapperBundle = join(dir, 'cert-swapper.mjs');
    await bundleSwapper(swapperBundle);
    const made = join(dir, 'made');
    mkdirSync(made);
    const pairs = Array.from({ length: PAIRS }, () => selfSigned(made, DOMAINS));
    known = pairs.map((p) => {
      const c = inspectPair(p);
      return { serial: c.serial, sums: { 'privkey.pem': sha(c.keyPem), 'cert.pem': sha(c.certPem), 'chain.pem': sha(c.chainPem), 'fullchain.pem': sha(c.fullchainPem) } };
    });
    pairsFile = join(dir, 'pairs.json');
    writeFileSync(pairsFile, JSON.stringify({ domains: DOMAINS, pairs: pairs.map((p, i) => ({ ...p, serial: known[i]!.serial })) }));
  });
  after(() => removeDir(dir));

  it(`keeps a whole pair current through ${LANES * KILLS_PER_LANE} kills`, async () => {
    const stats = { kills: 0, swapsSeen: 0, windows: 0 };
    let stopped = false;
    const lane = async (n: number) => {
      const data = join(dir, `lane${n}`, 'data');
      const files = join(dir, `lane${n}`, 'files');
      const links = join(dir, `lane${n}`, 'links');
      let before: string | null = null;
      for (let k = 0; k < KILLS_PER_LANE && !stopped; k++) {
        await runAndKill([data, pairsFile, files, links], Math.floor(Math.random() * 40));
        stats.kills++;
        if (!existsSync(join(data, 'certs', 'main', 'current'))) continue; // killed before the first switch
        const version = checkStore(data);
        if (version !== before) stats.swapsSeen++;
        before = version;
        checkLinks(links);
        if (checkFiles(files, known)) stats.windows++;
      }
      // The next start repairs what a kill left: both copies hold the current pair.
      const store = CertStore.open(data, 'main');
      const cur = store.readCurrent()!;
      store.copyTo(files);
      store.copyTo(links, { layout: 'symlinks' });
      const base = join(data, 'certs', 'main');
      assert.ok(readdirSync(base).filter((e) => e.startsWith('v')).length <= 2, 'current and one previous version, nothing else');
      assert.deepEqual(readdirSync(files).filter((e) => e.endsWith('.tmp')), [], 'no temporary files left in the copy');
      assert.ok(readdirSync(join(links, 'versions')).length <= 2);
      for (const d of [files, links]) {
        assert.equal(readPairRecord(d)!.serial, cur.serial);
        assert.ok(pairMatches(readFileSync(join(d, 'privkey.pem')), readFileSync(join(d, 'fullchain.pem'))));
      }
    };
    // One failing lane stops the others before the directory goes.
    const results = await Promise.allSettled(
      Array.from({ length: LANES }, (_, n) =>
        lane(n).catch((err: unknown) => {
          stopped = true;
          throw err;
        }),
      ),
    );
    for (const r of results) if (r.status === 'rejected') throw r.reason;
    console.log(`kills ${stats.kills}, current changed between kills ${stats.swapsSeen} times, copies caught between renames ${stats.windows}`);
    assert.equal(stats.kills, LANES * KILLS_PER_LANE);
    assert.ok(stats.swapsSeen > stats.kills / 4, 'the kills landed while versions were being swapped');
    // How many kills land between a copy's renames varies (a few in 200, the
    // window being one fsync and three renames): counted, not required.
  });
});
