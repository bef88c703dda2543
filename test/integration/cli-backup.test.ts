// The built CLI (dist/deckhand.js, copied alone into an empty directory) as a
// process against the real agent and a real PostgreSQL in a compose stack:
// backup run (plain step lines, the end line, --json), backup list with the
// row counts of a restore-verified backup, restore refused without --yes
// (exit 2, naming the database), restore over changed rows with the undo
// command, restore --to a new database and again into it (exit 1, nothing
// touched), unknown names and ids (exit 1), a read token (exit 3), and
// Ctrl-C that leaves the run going on the server (exit 130).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { BackupInfo, BackupListResult, RestoreInfo } from '../../agent/api/protocol.js';
import { freePort, removeDir, ROOT, tempDir, waitFor } from '../helpers/agent.js';
import { startApiAgent, type ApiAgent } from '../helpers/api.js';
import { POSTGRES_IMAGE, requireDocker, TestStack } from '../helpers/stack.js';
import { run as runProgram } from '../helpers/run.js';

const BUILT_CLI = join(ROOT, 'dist/deckhand.js');
const PASSWORD = 'cli-backup-pw';
const ITEMS = 5_000;

interface Run {
  code: number | null;
  out: string;
  err: string;
}

describe('deckhand backup list, run, restore against a real agent and PostgreSQL', { timeout: 600_000 }, () => {
  let a: ApiAgent;
  let stack: TestStack;
  let port: number;
  let work: string;
  let cli: string;
  let reader: string;
  let operate: string;
  let admin: string;
  let first: BackupInfo;

  const env = (token: string): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: work, XDG_CONFIG_HOME: work, DECKHAND_URL: a.url, DECKHAND_TOKEN: token, DECKHAND_FINGERPRINT: a.tls.fingerprint });
  const run = (args: string[], token = operate): Promise<Run> => runProgram(process.execPath, [cli, ...args], { cwd: work, env: env(token), timeoutMs: 240_000 });
  const list = async (name?: string): Promise<BackupInfo[]> => (JSON.parse((await run(['backup', 'list', ...(name ? [name] : []), '--json'], reader)).out) as BackupListResult).backups;
  const query = async <R extends pg.QueryResultRow>(sql: string, db = 'app'): Promise<R[]> => {
    const c = new pg.Client({ connectionString: `postgres://app:${PASSWORD}@127.0.0.1:${port}/${db}` });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return (await c.query<R>(sql)).rows;
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  const notes = async (db = 'app') => (await query<{ id: number }>('SELECT id FROM notes ORDER BY id', db)).map((r) => r.id);

  before(async () => {
    if (!existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run npm run build`);
    requireDocker();
    work = tempDir('cli-backup');
    cli = join(work, 'deckhand.js');
    copyFileSync(BUILT_CLI, cli);
    port = await freePort();
    stack = TestStack.unique('clibackup', {
      db: { image: POSTGRES_IMAGE, environment: { PGPORT: String(port), POSTGRES_LISTEN_ADDRESSES: '127.0.0.1', POSTGRES_USER: 'app', POSTGRES_PASSWORD: PASSWORD, POSTGRES_DB: 'app' } },
    });
    await stack.up();
    await waitFor(async () => query('SELECT 1').then(() => true, () => false), 60_000, () => `PostgreSQL on 127.0.0.1:${port}`);
    await query(`CREATE TABLE items AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, ${ITEMS}) g`);
    await query("CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')");
    a = await startApiAgent({
      config: {
        stack: { project: stack.project, dir: stack.dir },
        backups: [{ name: 'db', schedule: '0 3 * * *', source: { service: 'db', database: 'app', user: 'app' }, verify: 'restore' }],
      },
    });
    reader = a.token('reader', 'read');
    operate = a.token('ops', 'operate');
    admin = a.token('admin', 'admin');
  });

  after(async () => {
    await a?.agent.stop();
    await stack?.down();
    if (stack) removeDir(stack.dir);
    if (work) removeDir(work);
  });

  it('backup list before any run: a note on stderr, nothing on stdout, exit 0', async () => {
    const r = await run(['backup', 'list', 'db'], reader);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, '');
    assert.match(r.err, /^no backups of db on 127\.0\.0\.1:\d+ yet\n$/);
  });

  it('backup run: a line per step, then "backup db N verified: SIZE in T (sha256 …)"; exit 0', async () => {
    const r = await run(['backup', 'run', 'db']);
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    for (const step of ['space', 'dump', 'verify', 'commit', 'rotate']) assert.match(r.out, new RegExp(`^\\[ *\\d+\\.\\ds\\] ${step} ok`, 'm'), r.out);
    assert.match(r.out, /\nbackup db \d+ verified: [\d.]+ (B|KiB|MiB) in [\d.]+ s \(sha256 [0-9a-f]{12}…\); restored for the check: 2 tables, 5k rows\n$/, r.out);
    first = (await list('db'))[0]!;
    assert.equal(first.status, 'verified');
    assert.deepEqual(first.rows, { 'public.items': ITEMS, 'public.notes': 3 });
  });

  it('backup run --json: one document with the verified record; the steps on stderr', async () => {
    const r = await run(['--json', 'backup', 'run', 'db']);
    assert.equal(r.code, 0, r.err);
    const doc = JSON.parse(r.out) as { ok: boolean; backup: BackupInfo };
    assert.equal(doc.ok, true);
    assert.equal(doc.backup.status, 'verified');
    assert.ok(doc.backup.id > first.id);
    assert.match(r.err, /dump ok/);
  });

  it('backup list: newest first, size, "yes (2 tables, 5k rows)", verified', async () => {
    const r = await run(['backup', 'list', 'db'], reader);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trimEnd().split('\n');
    assert.match(lines[0]!, /^ID\s+NAME\s+STARTED\s+SIZE\s+VERIFIED\s+STATUS$/);
    assert.equal(lines.length, 3, r.out);
    assert.match(lines[1]!, /^\s*\d+\s+db\s+(just now|\d+ s ago)\s+[\d.]+ (B|KiB|MiB)\s+yes \(2 tables, 5k rows\)\s+verified$/);
    assert.ok(Number(lines[1]!.trim().split(/\s+/)[0]) > Number(lines[2]!.trim().split(/\s+/)[0]), 'newest first');
    const limited = JSON.parse((await run(['backup', 'list', '--limit', '1', '--json'], reader)).out) as BackupListResult;
    assert.equal(limited.backups.length, 1);
    assert.ok(limited.next, 'next when more remain');
  });

  it('unknown names and ids: exit 1 with the agent words; a read token cannot run one (exit 3)', async () => {
    const none = await run(['backup', 'run', 'nosuch']);
    assert.equal(none.code, 1);
    assert.match(none.err, /no backup named nosuch \(configured: db\)/);
    const noId = await run(['backup', 'restore', '99999', '--yes'], admin);
    assert.equal(noId.code, 1);
    assert.match(noId.err, /no backup 99999/);
    const read = await run(['backup', 'run', 'db'], reader);
    assert.equal(read.code, 3);
    assert.match(read.err, /token lacks the scope to run the backup db on 127\.0\.0\.1:\d+ \(needs operate, this token is read\)/);
  });

  it('restore without --yes: refused (exit 2), naming the database it would replace; nothing restored', async () => {
    const r = await run(['backup', 'restore', String(first.id)], admin);
    assert.equal(r.code, 2);
    assert.match(r.err, new RegExp(`restoring backup ${first.id} \\(db, [^)]+\\) replaces database app on 127\\.0\\.0\\.1:\\d+; run again with --yes`));
    assert.ok((await list('db')).every((b) => b.trigger !== 'safety'), 'no safety backup: nothing was started');
  });

  it('restore --yes over changed rows: the rows are back, and the end line names the safety backup and the undo', async () => {
    await query("DELETE FROM notes WHERE id = 1; INSERT INTO notes VALUES (4, 'four')");
    const r = await run(['backup', 'restore', String(first.id), '--yes'], admin);
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    for (const step of ['checksum', 'safety', 'restore']) assert.match(r.out, new RegExp(`\\] ${step} ok`), r.out);
    const m = new RegExp(`\\nrestored backup ${first.id} into app in [\\d.]+ s; the database before it is backup (\\d+): to undo, deckhand backup restore (\\d+) --yes\\n$`).exec(r.out);
    assert.ok(m, r.out);
    assert.equal(m[1], m[2]);
    assert.deepEqual(await notes(), [1, 2, 3]);
    const safety = (await list('db')).find((b) => b.id === Number(m[1]));
    assert.equal(safety?.trigger, 'safety');
    assert.equal(safety?.status, 'verified');
  });

  it('restore --to a new database: created, nothing replaced; again into it: exit 1, nothing touched', async () => {
    const r = await run(['backup', 'restore', String(first.id), '--yes', '--to', 'app_copy'], admin);
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(r.out, new RegExp(`\\nrestored backup ${first.id} into the new database app_copy in [\\d.]+ s; nothing was replaced \\(to undo, drop app_copy\\)\\n$`));
    assert.deepEqual(await notes('app_copy'), [1, 2, 3]);
    const again = await run(['--json', 'backup', 'restore', String(first.id), '--yes', '--to', 'app_copy'], admin);
    assert.equal(again.code, 1);
    const doc = JSON.parse(again.out) as { ok: boolean; restore: RestoreInfo };
    assert.equal(doc.ok, false);
    assert.match(doc.restore.error ?? '', /database app_copy already exists/);
    const plain = await run(['backup', 'restore', String(first.id), '--yes', '--to', 'app_copy'], admin);
    assert.equal(plain.code, 1);
    assert.match(plain.out, /restore of backup \d+ into the new database app_copy FAILED: database app_copy already exists.*\nno database was touched\n$/);
  });

  it('Ctrl-C while watching a run: exit 130, the run goes on and ends verified', async () => {
    const before = (await list('db')).length;
    const child = spawn(process.execPath, [cli, 'backup', 'run', 'db'], { cwd: work, env: env(operate), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    // The verify restores into a throwaway container: seconds, time enough to stop watching in.
    await waitFor(() => /\] dump ok/.test(out), 60_000, () => `the dump step to end: ${out}${err}`);
    child.kill('SIGINT');
    assert.equal(await exited, 130, `${out}\n${err}`);
    assert.match(err, /stopped watching: the backup db goes on on 127\.0\.0\.1:\d+; see how it ends with `deckhand backup list db`/);
    assert.doesNotMatch(out, /^backup db \d+ verified/m, 'no end line: it did not end while we watched');
    let latest: BackupInfo | undefined;
    await waitFor(
      async () => {
        const all = await list('db');
        latest = all[0];
        return all.length > before && latest?.status !== 'running';
      },
      120_000,
      () => `the run to finish: ${JSON.stringify(latest)}`,
    );
    assert.equal(latest!.status, 'verified');
  });
});
