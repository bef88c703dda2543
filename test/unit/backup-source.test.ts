import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import { ExecFrameSplitter, TailBuffer } from '../../agent/docker/exec.js';
import { DomainError } from '../../agent/errors.js';
import { dumpErrorLine, lastErrorLine, writeDumpFile, type DumpExit, type DumpProgress, type DumpSource } from '../../agent/duties/backups/dump-file.js';
import { containerDumpArgs, terminateDumpArgs, terminateLeftoverDumpsArgs } from '../../agent/duties/backups/source-container.js';
import { checkDumpVersion, hostConnection, hostDumpArgs, pgDumpMajor, pgpassLine, serverMajor } from '../../agent/duties/backups/source-host.js';

const frame = (kind: number, payload: Buffer | string) => {
  const p = Buffer.from(payload);
  const h = Buffer.alloc(8);
  h[0] = kind;
  h.writeUInt32BE(p.length, 4);
  return Buffer.concat([h, p]);
};

async function split(chunks: Buffer[]): Promise<{ out: Buffer; err: Buffer }> {
  const errs: Buffer[] = [];
  const outs: Buffer[] = [];
  const s = new ExecFrameSplitter((c) => errs.push(c));
  s.on('data', (c: Buffer) => outs.push(c));
  await pipeline(Readable.from(chunks), s);
  return { out: Buffer.concat(outs), err: Buffer.concat(errs) };
}

describe("the engine's exec stream framing", () => {
  const binary = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256));
  const stream = Buffer.concat([frame(1, binary.subarray(0, 1000)), frame(2, 'pg_dump: warning\n'), frame(1, binary.subarray(1000)), frame(1, ''), frame(2, 'last\n')]);

  it('separates stdout bytes from stderr, byte for byte, however the chunks fall', async () => {
    for (const size of [1, 3, 7, 8, 9, 1000, stream.length]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
      const { out, err } = await split(chunks);
      assert.ok(out.equals(binary), `chunk size ${size}`);
      assert.equal(err.toString(), 'pg_dump: warning\nlast\n');
    }
  });

  it('fails on bytes that are not a frame header (a TTY stream) instead of passing them on', async () => {
    await assert.rejects(split([Buffer.from('PGDMP\x01\x0e\x00garbage')]), /not a multiplexed stream/);
  });

  it('fails when the stream ends inside a frame', async () => {
    await assert.rejects(split([stream.subarray(0, 500)]), /middle of a frame/);
  });

  it('keeps only the tail of stderr', () => {
    const t = new TailBuffer(10);
    for (const s of ['aaaa', 'bbbbbbbb', 'cccccc']) t.add(Buffer.from(s));
    assert.equal(t.text(), 'bbbbcccccc');
  });
});

describe('pg_dump commands and versions', () => {
  it('builds the container and host argv without a password', () => {
    assert.deepEqual(containerDumpArgs({ database: 'app', user: 'app' }), ['pg_dump', '--format=custom', '--no-password', '--username=app', '--dbname=app']);
    const c = hostConnection({ url: 'postgres://backup:s%3Acret@127.0.0.1:5433/other?sslmode=disable', database: 'app' });
    assert.equal(c.password, 's:cret');
    assert.equal(c.url, 'postgres://backup@127.0.0.1:5433/app?sslmode=disable');
    assert.ok(c.secretUrl.includes('s%3Acret'));
    assert.deepEqual(hostDumpArgs({ pgDump: 'pg_dump', url: c.url }), ['pg_dump', '--format=custom', '--no-password', '--dbname=postgres://backup@127.0.0.1:5433/app?sslmode=disable']);
    const q = hostConnection({ url: 'postgresql://127.0.0.1/x?password=p%40ss&application_name=a', database: 'app', user: 'bk' });
    assert.equal(q.password, 'p@ss');
    assert.equal(q.url, 'postgresql://bk@127.0.0.1/app?application_name=a');
    assert.equal(hostConnection({ url: 'postgres://u@h/db', database: 'db' }).password, undefined);
  });

  it('terminates only the connection it named', () => {
    const argv = terminateDumpArgs({ database: 'app', user: 'app', appName: 'deckhand-backup-0a1b' });
    assert.match(argv.at(-1)!, /application_name = 'deckhand-backup-0a1b'/);
    assert.throws(() => terminateDumpArgs({ database: 'app', user: 'app', appName: "x'; drop" }));
    assert.match(terminateLeftoverDumpsArgs({ database: 'app', user: 'app' }).at(-1)!, /application_name LIKE 'deckhand-backup-%' AND pid <> pg_backend_pid\(\)/);
  });

  it('escapes the pgpass line', () => {
    assert.equal(pgpassLine('a:b\\c'), '*:*:*:*:a\\:b\\\\c\n');
  });

  it('reads versions and refuses a pg_dump older than the server', () => {
    assert.equal(serverMajor('150018'), 1500);
    assert.equal(serverMajor('90624'), 906);
    assert.equal(pgDumpMajor('pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n'), 1500);
    assert.equal(pgDumpMajor('pg_dump (PostgreSQL) 17beta1'), 1700);
    assert.equal(pgDumpMajor('pg_dump (PostgreSQL) 9.6.24'), 906);
    checkDumpVersion('pg_dump (PostgreSQL) 16.2', '150004');
    checkDumpVersion('pg_dump (PostgreSQL) 15.1', '150018');
    assert.throws(
      () => checkDumpVersion('pg_dump (PostgreSQL) 14.9', '160001'),
      (e: unknown) => e instanceof DomainError && e.kind === 'failed' && /pg_dump \(14\) is older than the server \(PostgreSQL 16\)/.test(e.message) && /postgresql-client-16/.test(e.message),
    );
  });

  it('takes the last non-empty stderr line', () => {
    assert.equal(lastErrorLine('pg_dump: warning\npg_dump: error: database "x" does not exist\n\n'), 'pg_dump: error: database "x" does not exist');
    assert.equal(lastErrorLine(''), '');
  });

  it("takes pg_dump's error line and the server's words, not the closing `Command was:`", () => {
    const stderr =
      'pg_dump: error: Dumping the contents of table "blob" failed: PQgetResult() failed.\n' +
      'pg_dump: detail: Error message from server: FATAL:  terminating connection due to administrator command\n' +
      'pg_dump: detail: Command was: COPY public.blob (id, v) TO stdout;\n';
    assert.equal(
      dumpErrorLine(stderr),
      'pg_dump: error: Dumping the contents of table "blob" failed: PQgetResult() failed.; Error message from server: FATAL: terminating connection due to administrator command',
    );
    assert.equal(dumpErrorLine('pg_dump: error: connection to server failed: FATAL:  role "nobody" does not exist\n'), 'pg_dump: error: connection to server failed: FATAL:  role "nobody" does not exist');
    assert.equal(dumpErrorLine('something else\n'), 'something else');
    assert.equal(dumpErrorLine(''), '');
  });
});

/** A source that writes `chunks` (pausing between them) and exits with `code`. */
function fakeSource(chunks: Buffer[], exit: DumpExit, delayMs = 0): DumpSource {
  return {
    what: 'fake pg_dump',
    async run(out: Writable, signal: AbortSignal) {
      for (const c of chunks) {
        signal.throwIfAborted();
        if (!out.write(c)) await new Promise((r) => out.once('drain', r));
        if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      }
      signal.throwIfAborted();
      out.end();
      return exit;
    },
  };
}

describe('the dump file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dhtest-dumpfile-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes 0600, reports progress at most every interval, hashes and renames', async () => {
    const final = join(dir, 'ok.dump');
    const events: DumpProgress[] = [];
    const chunks = Array.from({ length: 20 }, (_, i) => Buffer.alloc(1000, i));
    const res = await writeDumpFile(final, fakeSource(chunks, { code: 0, stderr: '' }, 10), { onProgress: (e) => events.push(e), progressIntervalMs: 50 });
    assert.equal(res.bytes, 20_000);
    assert.equal(readFileSync(final).length, 20_000);
    assert.equal(statSync(final).mode & 0o777, 0o600);
    assert.equal(existsSync(`${final}.partial`), false);
    assert.match(res.sha256, /^[0-9a-f]{64}$/);
    assert.ok(events.length >= 2 && events.length <= 8, `${events.length} progress events`);
    assert.deepEqual(events.at(-1), { ...events.at(-1)!, bytes: 20_000, done: true });
  });

  it('many small chunks across several write blocks: the same bytes and SHA-256, progress on the way', async () => {
    const final = join(dir, 'blocks.dump');
    const events: DumpProgress[] = [];
    // 2,600 chunks of 1,234 bytes: a little over three 1 MiB blocks, the last one partial.
    const chunks = Array.from({ length: 2600 }, (_, i) => Buffer.alloc(1234, i % 251));
    const all = Buffer.concat(chunks);
    let n = 0;
    const source: DumpSource = {
      what: 'fake pg_dump',
      async run(out: Writable) {
        for (const c of chunks) {
          if (!out.write(c)) await new Promise((r) => out.once('drain', r));
          if (++n % 200 === 0) await new Promise((r) => setTimeout(r, 5));
        }
        out.end();
        return { code: 0, stderr: '' };
      },
    };
    const res = await writeDumpFile(final, source, { onProgress: (e) => events.push(e), progressIntervalMs: 1 });
    assert.equal(res.bytes, all.length);
    assert.ok(readFileSync(final).equals(all));
    assert.equal(res.sha256, createHash('sha256').update(all).digest('hex'));
    assert.ok(events.filter((e) => !e.done && e.bytes < all.length).length >= 3, `${events.length} progress events`);
  });

  it('a non-zero exit fails with pg_dump\'s last line and leaves nothing', async () => {
    const final = join(dir, 'bad.dump');
    await assert.rejects(
      writeDumpFile(final, fakeSource([Buffer.from('PGDMP')], { code: 1, stderr: 'pg_dump: error: connection failed: FATAL:  database "nope" does not exist\n' })),
      (e: unknown) => e instanceof DomainError && e.kind === 'failed' && e.message === 'pg_dump: error: connection failed: FATAL:  database "nope" does not exist',
    );
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('bad')), []);
  });

  it('a pg_dump killed by a signal says so, and leaves nothing', async () => {
    const final = join(dir, 'killed.dump');
    await assert.rejects(
      writeDumpFile(final, fakeSource([Buffer.from('PGDMP')], { code: 137, stderr: '' })),
      /^DomainError: fake pg_dump was killed by signal 9 \(SIGKILL\), exit status 137, and said nothing$/,
    );
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('killed')), []);
  });

  it('an abort leaves no partial', async () => {
    const final = join(dir, 'abort.dump');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    const chunks = Array.from({ length: 100 }, () => Buffer.alloc(1000));
    await assert.rejects(writeDumpFile(final, fakeSource(chunks, { code: 0, stderr: '' }, 5), { signal: ac.signal }), /aborted; nothing kept/);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('abort')), []);
  });

  it('a stale partial from a crash is replaced, and exit 0 with no bytes is no backup', async () => {
    const final = join(dir, 'empty.dump');
    writeFileSync(join(dir, 'x.dump.partial'), 'left by a crash');
    await writeDumpFile(join(dir, 'x.dump'), fakeSource([Buffer.from('x')], { code: 0, stderr: '' }));
    assert.equal(readFileSync(join(dir, 'x.dump'), 'utf8'), 'x');
    assert.equal(existsSync(join(dir, 'x.dump.partial')), false);
    await assert.rejects(writeDumpFile(final, fakeSource([], { code: 0, stderr: '' })), /wrote nothing/);
    assert.equal(existsSync(`${final}.partial`), false);
  });
});
