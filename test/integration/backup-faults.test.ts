// Backups under faults, against the built agent (as user deckhand), a real
// PostgreSQL in the compose stack and real WebSocket calls: the database
// down, authentication refused, the database dropped and pg_dump killed
// mid-dump, the agent killed mid-dump, a full disk, a changed file, the
// service's container replaced, a restore failing inside pg_restore, and two
// runs or restores at once. Each time the agent keeps running, says what
// happened (record, stream end, event, /health, /metrics), never leaves a
// file that looks good and never loses an older backup.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runChecked } from '../../agent/exec/runner.js';
import { connect, startApiAgent, type ApiAgent, type RpcClient } from '../helpers/api.js';
import { AGENT_USER, removeDir, systemUser, tempDir, waitFor } from '../helpers/agent.js';
import { startPgStack, type PgStack } from '../helpers/pg.js';
import { requireDocker } from '../helpers/stack.js';

/** Starts a streaming call and resolves with its events once the end arrives (as in backups.test.ts, whose tests an import would run). */
async function streamed(c: RpcClient, method: string, params: unknown, timeoutMs = 120_000): Promise<{ events: any[]; end: any }> {
  const reply = await c.call(method, params);
  if (reply.error) throw Object.assign(new Error(reply.error.message), { rpc: reply.error });
  const id = reply.result.stream;
  await waitFor(() => c.notifications.some((n) => n.stream === id && n.event.type === 'end'), timeoutMs, () => `${method} did not end`);
  const events = c.notifications.filter((n) => n.stream === id).map((n) => n.event);
  return { events, end: events.at(-1) };
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const WRONG_PASSWORD = 'Wr0ng-pa55-q7x';
/** ~160 MB of hex text: a dump that takes seconds and does not fit in the small disk. */
const BIG_ROWS = 1_250_000;

describe('backups under faults', { timeout: 150_000 }, () => {
  let pg: PgStack;
  let api: ApiAgent;
  let c: RpcClient;
  let config: Record<string, unknown>;
  let agentDir: string;
  let smallDisk: string;
  let mounted = false;
  const dirOf = (name: string) => join(api.agent.dataDir, 'backups', name);
  const files = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);
  const leftovers = (dir: string, known: string[] = []) => files(dir).filter((f) => !known.some((k) => k.endsWith(`/${f}`)));
  const list = async (name: string) => (await c.call('backup.list', { name })).result.backups as any[];
  const eventsOf = async (type: string, subject: string) => ((await c.call('events.list', { type })).result.events as any[]).filter((e) => e.subject === subject);
  const failuresMetric = async (name: string) => {
    const m = new RegExp(`deckhand_backup_failures_total\\{backup="${name}"\\} (\\d+)`).exec((await api.agent.get('/metrics')).text);
    return m ? Number(m[1]) : undefined;
  };
  const healthOf = async (name: string) => (await api.agent.get('/health')).json().checks[`backup:${name}`][0];
  const dumpSessions = async () =>
    (await pg.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'deckhand-backup%'"))[0]!.n;

  /** A run started; resolves once its `.partial` holds bytes (the dump is under way). */
  async function runUntilPartial(client: RpcClient, name: string): Promise<string> {
    const reply = await client.call('backup.run', { name });
    assert.ok(reply.result?.stream, JSON.stringify(reply));
    await waitFor(
      () => files(dirOf(name)).some((f) => f.endsWith('.partial') && statSync(join(dirOf(name), f)).size > 0),
      30_000,
      () => `a .partial with bytes in ${dirOf(name)}: ${files(dirOf(name))}`,
    );
    return reply.result.stream;
  }
  const endOf = async (client: RpcClient, stream: string) => {
    await waitFor(() => client.notifications.some((n) => n.stream === stream && n.event.type === 'end'), 60_000, () => `stream ${stream} did not end`);
    return client.notifications.find((n) => n.stream === stream && n.event.type === 'end').event;
  };

  let starts = 0;
  async function startTheAgent(): Promise<void> {
    api = await startApiAgent({ dir: agentDir, config });
    c = await connect(api.url, api.token(`ops${++starts}`, 'admin'));
  }

  before(async () => {
    requireDocker();
    pg = await startPgStack('bkfault');
    await pg.query('CREATE TABLE notes (id int PRIMARY KEY, body text)');
    await pg.query("INSERT INTO notes VALUES (1, 'one'), (2, 'two'), (3, 'three')");
    await pg.query('CREATE DATABASE big');
    await pg.query(`CREATE TABLE blob AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) || md5((g * 7)::text) || md5((g * 13)::text) AS v FROM generate_series(1, ${BIG_ROWS}) g`, [], 'big');
    await pg.query('CREATE DATABASE bigcopy TEMPLATE big');
    await pg.query('CREATE DATABASE fill');
    await pg.query('CREATE TABLE t AS SELECT 1 AS id', [], 'fill');
    agentDir = tempDir('bkfault');
    smallDisk = join(agentDir, 'small-disk');
    const service = (database: string, user = 'app') => ({ service: 'db', database, user });
    config = {
      stack: { project: pg.stack.project, dir: pg.stack.dir },
      backups: [
        { name: 'db', schedule: '0 3 * * *', source: service('app') },
        { name: 'nobody', schedule: '0 3 * * *', source: service('app', 'nobody') },
        { name: 'url', schedule: '0 3 * * *', source: { url: `postgres://app:${WRONG_PASSWORD}@127.0.0.1:${pg.port}/app`, database: 'app' } },
        { name: 'urlok', schedule: '0 3 * * *', source: { url: pg.url(), database: 'app' } },
        { name: 'big', schedule: '0 3 * * *', source: service('big') },
        { name: 'bigkill', schedule: '0 3 * * *', source: service('big') },
        { name: 'bigcopy', schedule: '0 3 * * *', source: service('bigcopy') },
        { name: 'full', schedule: '0 3 * * *', source: service('fill'), dir: smallDisk },
      ],
    };
    await startTheAgent();
  });

  after(async () => {
    c?.close();
    await api?.agent.stop();
    if (mounted) execFileSync('umount', [smallDisk]);
    await pg?.down();
    if (pg) removeDir(pg.stack.dir);
    if (agentDir) removeDir(agentDir);
  });

  let first: any;

  it('PostgreSQL down: the run fails saying so, leaves no file, keeps the older backup; back up, the next run succeeds and resolves the alert', async () => {
    first = (await streamed(c, 'backup.run', { name: 'db' })).end.backup;
    assert.equal(first.status, 'verified');
    const firstSha = sha256(first.file);

    // Stopped the operator's way: the supervisor would bring a container stopped behind its back right back up.
    const stopped = await c.call('stack.stop', { service: 'db' });
    assert.equal(stopped.error, undefined, JSON.stringify(stopped.error));
    const { end } = await streamed(c, 'backup.run', { name: 'db' });
    assert.equal(end.ok, false);
    assert.equal(end.backup.status, 'failed');
    assert.match(end.backup.error, /service db .* has no running container \(containers: exited\).*start it/);
    assert.deepEqual(leftovers(dirOf('db'), [first.file]), [], 'no .dump or .partial of the failed run');
    assert.equal(sha256(first.file), firstSha, 'the older verified backup is untouched');
    const [newest] = await list('db');
    assert.equal(newest.id, end.backup.id);
    assert.equal(newest.status, 'failed');

    // The host's pg_dump against the URL: the server does not answer.
    const host = await streamed(c, 'backup.run', { name: 'urlok' });
    assert.equal(host.end.ok, false);
    // Refused outright, or (when the container is already coming back) "the database system is starting up".
    assert.match(host.end.backup.error, /^cannot reach PostgreSQL at postgres:\/\/app@127\.0\.0\.1:\d+\/app to read its version: /);
    assert.deepEqual(leftovers(dirOf('urlok'), []), [], 'no file of the failed host run');

    const raised = await eventsOf('backup.failed', 'db');
    assert.ok(raised.some((e) => e.data?.id === end.backup.id && /no running container/.test(e.message)), JSON.stringify(raised));
    const health = await healthOf('db');
    assert.match(health.output, new RegExp(`the last run \\(${end.backup.id}\\) failed: .*no running container`));
    await waitFor(async () => (await failuresMetric('db')) === 1, 5000, () => 'failures_total 1');

    const started = await c.call('stack.start', { service: 'db' });
    assert.equal(started.error, undefined, JSON.stringify(started.error));
    await waitFor(async () => pg.query('SELECT 1').then(() => true, () => false), 30_000);
    const again = await streamed(c, 'backup.run', { name: 'db' });
    assert.equal(again.end.ok, true, JSON.stringify(again.end));
    const resolved = await eventsOf('backup.failed.resolved', 'db');
    assert.ok(resolved.some((e) => e.data?.id === again.end.backup.id), JSON.stringify(resolved));
    assert.doesNotMatch((await healthOf('db')).output ?? '', /failed/);
    assert.equal(await failuresMetric('db'), 1, 'the counter counts, it does not reset');
  });

  it("authentication refused: the run fails in PostgreSQL's own words, and the password appears nowhere", async () => {
    const role = await streamed(c, 'backup.run', { name: 'nobody' });
    assert.equal(role.end.ok, false);
    assert.equal(role.end.backup.status, 'failed');
    assert.match(role.end.backup.error, /role "nobody" does not exist/);
    assert.deepEqual(files(dirOf('nobody')), []);

    const pass = await streamed(c, 'backup.run', { name: 'url' });
    assert.equal(pass.end.ok, false);
    assert.match(pass.end.backup.error, /password authentication failed for user "app"/);
    assert.deepEqual(files(dirOf('url')), []);
    const status = (await c.call('status.get')).result;
    const everything = [JSON.stringify(pass), JSON.stringify(await list('url')), JSON.stringify(status), (await api.agent.get('/health')).text, api.agent.output];
    for (const text of everything) assert.ok(!text.includes(WRONG_PASSWORD), 'the password leaked');
    assert.ok((await eventsOf('backup.failed', 'url')).length >= 1);
  });

  it('two runs of one backup at once: exactly one starts, the other gets -32002; a restore during a restore, or during a run of its backup, gets -32002', async () => {
    const other = await connect(api.url, api.token('other', 'admin'));
    try {
      const replies = await Promise.all([c.call('backup.run', { name: 'db' }), other.call('backup.run', { name: 'db' })]);
      const started = replies.filter((r) => r.result?.stream);
      const refused = replies.filter((r) => r.error);
      assert.equal(started.length, 1, JSON.stringify(replies));
      assert.equal(refused.length, 1);
      assert.equal(refused[0].error.code, -32002);
      const owner = replies[0].result ? c : other;
      assert.equal((await endOf(owner, started[0].result.stream)).ok, true);

      const one = await c.call('backup.restore', { id: first.id, confirm: true, to: 'app_r1' });
      const two = await other.call('backup.restore', { id: first.id, confirm: true, to: 'app_r2' });
      assert.ok(one.result?.stream, JSON.stringify(one));
      assert.equal(two.error?.code, -32002, JSON.stringify(two));
      assert.match(two.error.message, /a restore is already running/);
      assert.equal((await endOf(c, one.result.stream)).ok, true);
      assert.deepEqual(await pg.query("SELECT datname FROM pg_database WHERE datname LIKE 'app_r%'"), [{ datname: 'app_r1' }]);

      // A restore of a backup while that backup runs is refused too.
      const run = await c.call('backup.run', { name: 'db' });
      const during = await other.call('backup.restore', { id: first.id, confirm: true, to: 'app_r3' });
      assert.equal(during.error?.code, -32002, JSON.stringify(during));
      assert.match(during.error.message, /backup db is running/);
      assert.equal((await endOf(c, run.result.stream)).ok, true);
    } finally {
      other.close();
    }
  });

  it('pg_dump killed mid-dump, and the database dropped mid-dump: both fail, nothing is left', async () => {
    const stream = await runUntilPartial(c, 'big');
    const top = await pg.stack.docker('top', await pg.stack.containerId('db'), '-eo', 'pid,args');
    const pids = top.split('\n').filter((l) => /\bpg_dump\b/.test(l)).map((l) => l.trim().split(/\s+/)[0]!);
    assert.equal(pids.length, 1, top);
    process.kill(Number(pids[0]), 'SIGKILL'); // host pid of the container's pg_dump
    const killed = await endOf(c, stream);
    assert.equal(killed.ok, false);
    assert.equal(killed.backup.status, 'failed');
    assert.equal(killed.backup.error, 'pg_dump in service db was killed by signal 9 (SIGKILL), exit status 137, and said nothing');
    assert.deepEqual(files(dirOf('big')), []);

    const stream2 = await runUntilPartial(c, 'bigcopy');
    await pg.query('DROP DATABASE bigcopy WITH (FORCE)');
    const dropped = await endOf(c, stream2);
    assert.equal(dropped.ok, false);
    assert.equal(dropped.backup.status, 'failed');
    assert.match(dropped.backup.error, /^pg_dump: error: .*(terminating connection due to administrator command|server closed the connection)/);
    assert.deepEqual(files(dirOf('bigcopy')), []);
    // No verified backup is overdue yet, so the check passes, but it says why the last run failed.
    assert.match((await healthOf('big')).output, new RegExp(`the last run \\(${killed.backup.id}\\) failed: pg_dump in service db was killed by signal 9`));
    assert.match((await healthOf('bigcopy')).output, /the last run \(\d+\) failed: pg_dump: error: /);
    await waitFor(async () => (await failuresMetric('bigcopy')) === 1 && (await failuresMetric('big')) === 1, 5000, () => 'failures counted');
  });

  it('the agent killed mid-dump: after a restart the run is interrupted, the .partial gone, no pg_dump left, backup.failed raised', async () => {
    await runUntilPartial(c, 'bigkill');
    const [running] = await list('bigkill');
    assert.equal(running.status, 'running');
    process.kill(api.agent.child.pid!, 'SIGKILL');
    assert.equal((await api.agent.exited).signal, 'SIGKILL');
    c.close();

    // pg_dump runs in the container and outlives its agent: still dumping into nowhere.
    assert.equal(await dumpSessions(), 1);

    await startTheAgent();
    // The new agent ended it at start, before it was ready; the dump alone would have taken seconds more.
    await waitFor(async () => (await dumpSessions()) === 0, 2000, () => 'no pg_dump left running');
    assert.match(api.agent.output, /ended the dump an earlier agent left running/);
    const [after] = await list('bigkill');
    assert.equal(after.id, running.id);
    assert.equal(after.status, 'interrupted');
    assert.match(after.error, /the agent stopped or died during the run/);
    assert.deepEqual(files(dirOf('bigkill')), [], 'the .partial was removed at start');
    const raised = await eventsOf('backup.failed', 'bigkill');
    assert.ok(raised.some((e) => e.data?.id === running.id && /was interrupted/.test(e.message)), JSON.stringify(raised));
    await waitFor(async () => (await failuresMetric('bigkill')) === 1, 5000, () => 'interrupted runs count as failures');
    const top = await pg.stack.docker('top', await pg.stack.containerId('db'), '-eo', 'pid,args');
    assert.doesNotMatch(top, /\bpg_dump\b/);
  });

  it('the agent stopped (SIGTERM) mid-dump: it ends the dump and removes the .partial itself; the run is recorded interrupted', async () => {
    await runUntilPartial(c, 'bigkill');
    const [running] = await list('bigkill');
    const stopped = await api.agent.stop();
    c.close();
    assert.equal(stopped.code, 0, api.agent.output.slice(-2000));
    assert.deepEqual(files(dirOf('bigkill')), [], 'the .partial was removed before the agent exited');
    await waitFor(async () => (await dumpSessions()) === 0, 10_000, () => 'the dump session ended with the agent');
    await startTheAgent();
    const [after] = await list('bigkill');
    assert.equal(after.id, running.id);
    assert.equal(after.status, 'interrupted');
    assert.match(after.error, /the agent stopped during the run; nothing was kept/);
  });

  it('a full backup disk: the run fails clearly, nothing partial is left, the older backup in that dir is untouched', async () => {
    const u = systemUser(AGENT_USER);
    mkdirSync(smallDisk);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=68m,uid=${u.uid},gid=${u.gid},mode=0700`, 'tmpfs', smallDisk]);
    mounted = true;
    const small = (await streamed(c, 'backup.run', { name: 'full' })).end;
    assert.equal(small.ok, true, JSON.stringify(small));
    const smallSha = sha256(small.backup.file);

    // The database grows past what the disk holds.
    await pg.query('DROP DATABASE fill');
    await pg.query('CREATE DATABASE fill TEMPLATE big');
    const { end } = await streamed(c, 'backup.run', { name: 'full' });
    assert.equal(end.ok, false);
    assert.equal(end.backup.status, 'failed');
    assert.match(end.backup.error, /cannot write .*\.partial: ENOSPC: no space left on device|not enough free space/);
    assert.deepEqual(leftovers(smallDisk, [small.backup.file]), [], 'nothing partial left');
    assert.equal(sha256(small.backup.file), smallSha);
    assert.equal((await list('full')).find((b) => b.id === small.backup.id).status, 'verified');
    await waitFor(async () => (await dumpSessions()) === 0, 10_000, () => 'pg_dump stopped after the disk filled');

    // With less free than the 64 MiB floor, the space check refuses before a byte is written.
    const filler = join(smallDisk, 'filler');
    writeFileSync(filler, Buffer.alloc(8 << 20));
    const refused = (await streamed(c, 'backup.run', { name: 'full' })).end;
    assert.equal(refused.ok, false);
    assert.match(refused.backup.error, /not enough free space in .*: .* free, 64 MiB needed .*nothing was written/);
    assert.deepEqual(leftovers(smallDisk, [small.backup.file, filler]), []);
    assert.equal(sha256(small.backup.file), smallSha);
  });

  it('a truncated and a bit-flipped backup file: restore refuses both by checksum, the database untouched', async () => {
    await pg.query("UPDATE notes SET body = 'later' WHERE id = 1");
    const original = readFileSync(first.file);
    const rows = await pg.query('SELECT id, body FROM notes ORDER BY id');
    try {
      truncateSync(first.file, Math.floor(original.length / 2));
      const cut = (await streamed(c, 'backup.restore', { id: first.id, confirm: true })).end;
      assert.equal(cut.ok, false);
      assert.match(cut.error, /has changed since it was verified/);
      assert.equal(cut.restore.safetyBackupId, undefined);

      const flipped = Buffer.from(original);
      flipped[Math.floor(flipped.length / 3)]! ^= 0x10;
      writeFileSync(first.file, flipped);
      const flip = (await streamed(c, 'backup.restore', { id: first.id, confirm: true })).end;
      assert.equal(flip.ok, false);
      assert.match(flip.error, /has changed since it was verified/);
      assert.deepEqual(await pg.query('SELECT id, body FROM notes ORDER BY id'), rows);
    } finally {
      writeFileSync(first.file, original);
    }
  });

  it("the service's container replaced between two runs: the next run finds the new one", async () => {
    const before = await pg.stack.containerId('db');
    await runChecked({ argv: [...pg.stack.cli, '--project-name', pg.stack.project, 'up', '-d', '--force-recreate', 'db'], cwd: pg.stack.dir, timeoutMs: 60_000 });
    const now = await pg.stack.containerId('db');
    assert.notEqual(now, before);
    await waitFor(async () => pg.query('SELECT 1').then(() => true, () => false), 30_000);
    const { end } = await streamed(c, 'backup.run', { name: 'db' });
    assert.equal(end.ok, true, JSON.stringify(end));
    assert.equal(end.backup.status, 'verified');
  });

  it('a restore that fails inside pg_restore: ok:false, the database left as it was, the safety backup kept and verified', async () => {
    const rows = await pg.query('SELECT id, body FROM notes ORDER BY id');
    // The dump's --clean drops notes; a view depending on it makes that fail.
    await pg.query('CREATE VIEW notes_view AS SELECT * FROM notes');
    const { events, end } = await streamed(c, 'backup.restore', { id: first.id, confirm: true });
    assert.equal(end.ok, false);
    assert.equal(end.restore.status, 'failed');
    assert.match(end.error, /^restore failed: .*cannot drop .*notes.*because other objects depend on it.*; pg_restore ran in one transaction, so app was left as it was; the safety backup \d+ is kept/);
    const failedStep = events.find((e) => e.type === 'step' && e.status === 'failed');
    assert.equal(failedStep.step, 'restore');
    assert.deepEqual(await pg.query('SELECT id, body FROM notes ORDER BY id'), rows);
    assert.equal((await pg.query("SELECT count(*)::int AS n FROM pg_views WHERE viewname = 'notes_view'"))[0]!.n, 1);
    const safety = (await list('db')).find((b) => b.id === end.restore.safetyBackupId);
    assert.equal(safety.trigger, 'safety');
    assert.equal(safety.status, 'verified');
    assert.equal(sha256(safety.file), safety.sha256);
    assert.ok((await eventsOf('backup.restore_failed', 'db')).some((e) => e.data?.restore === end.restore.id));
  });

  it('through all of it the agent kept running, and the password never reached its output', async () => {
    assert.equal(api.agent.child.exitCode, null);
    assert.equal((await api.agent.get('/readyz')).status, 200);
    assert.ok(!api.agent.output.includes(WRONG_PASSWORD));
    const fatal = api.agent.logLines().filter((l) => Number(l.level) >= 60 || /unhandled|uncaught/i.test(String(l.msg)));
    assert.deepEqual(fatal, []);
  });
});
