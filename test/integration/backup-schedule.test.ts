// When backups run and what stays on disk, against the built agent and a real
// PostgreSQL: node-cron ticks (never two runs of a backup at once), the
// catch-up run at start after a missed schedule (and none when the last
// backup is recent), the rotation applied at start (old files deleted down
// to minKeep, a file deleted by hand marked missing and not counted, a
// `.partial` leftover removed, a stranger's file left alone), and a
// deploy's backupFirst (taken before `up`; a failed one stops the deploy).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { connect, startApiAgent, streamed, type ApiAgent, type RpcClient } from '../helpers/api.js';
import { freePort, removeDir, tempDir, waitFor } from '../helpers/agent.js';
import { startPgStack, type PgStack } from '../helpers/pg.js';
import { requireDocker, WEB_IMAGE } from '../helpers/stack.js';

const DAY = 24 * 3600_000;

/** Moves records' times back by `ms` while the agent is stopped (the agent's own file, opened as root). */
function backdate(dataDir: string, ids: number[], ms: number): void {
  const db = new Database(join(dataDir, 'deckhand.db'));
  try {
    const stmt = db.prepare('UPDATE backups SET started_at = started_at - ?, finished_at = finished_at - ? WHERE id = ?');
    for (const id of ids) stmt.run(ms, ms, id);
  } finally {
    db.close();
  }
}

describe('backup schedule, catch-up, rotation and backupFirst', { timeout: 300_000 }, () => {
  let pg: PgStack;
  let webPort: number;
  const agents: ApiAgent[] = [];
  const clients: RpcClient[] = [];

  // One agent at a time supervises the stack: an earlier one would restart what a test stops.
  const start = async (backups: object[], opts: { dir?: string; deploy?: object } = {}) => {
    for (const c of clients) c.close();
    for (const a of agents) await a.agent.stop();
    const a = await startApiAgent({
      ...(opts.dir ? { dir: opts.dir } : {}),
      config: { stack: { project: pg.stack.project, dir: pg.stack.dir, ...(opts.deploy ? { deploy: opts.deploy } : {}) }, backups },
    });
    agents.push(a);
    const c = await connect(a.url, a.token(`ops${agents.length}`, 'admin'));
    clients.push(c);
    return { a, c };
  };
  const list = async (c: RpcClient, name: string) => (await c.call('backup.list', { name })).result.backups as any[];

  before(async () => {
    requireDocker();
    webPort = await freePort();
    pg = await startPgStack('bksched', { extra: { web: { image: WEB_IMAGE, environment: { PORT: String(webPort) } } } });
    // Random text: a dump of a few MB that takes a moment.
    await pg.query("CREATE TABLE items AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 120000) g");
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const a of agents) await a.agent.stop();
    await pg?.down();
    if (pg) removeDir(pg.stack.dir);
    for (const a of agents) removeDir(a.agent.dir);
  });

  it('runs on its cron schedule, one run at a time: a tick during a run is skipped', async () => {
    const { a, c } = await start([{ name: 'tick', schedule: '*/2 * * * * *', source: { service: 'db', database: 'app', user: 'app' } }]);
    await waitFor(async () => (await list(c, 'tick')).filter((b) => b.status === 'verified').length >= 3, 60_000, () => 'three scheduled runs');
    await a.agent.stop();
    const db = new Database(join(a.agent.dataDir, 'deckhand.db'), { readonly: true });
    const rows = db.prepare("SELECT id, started_at AS s, finished_at AS f, trigger FROM backups WHERE name = 'tick' ORDER BY id").all() as { s: number; f: number; trigger: string }[];
    db.close();
    assert.ok(rows.length >= 3);
    for (const r of rows) assert.equal(r.trigger, 'schedule');
    for (let i = 1; i < rows.length; i++) assert.ok(rows[i]!.s >= rows[i - 1]!.f, `run ${i} began before run ${i - 1} ended`);
  });

  it('a run missed while the agent was down runs once at start; a recent one does not', async () => {
    const backups = [{ name: 'nightly', schedule: '0 3 * * *', source: { service: 'db', database: 'app', user: 'app' } }];
    const dir = tempDir('bkcatch');
    let { a, c } = await start(backups, { dir });
    const { end } = await streamed(c, 'backup.run', { name: 'nightly' });
    assert.equal(end.ok, true, JSON.stringify(end));
    const firstId = end.backup.id;

    // Restarted at once: the last backup is minutes old, nothing to catch up.
    c.close();
    await a.agent.stop();
    ({ a, c } = await start(backups, { dir }));
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual((await list(c, 'nightly')).map((b) => b.id), [firstId]);

    // Down for two days: one catch-up run at start.
    c.close();
    await a.agent.stop();
    backdate(a.agent.dataDir, [firstId], 2 * DAY);
    ({ a, c } = await start(backups, { dir }));
    await waitFor(async () => (await list(c, 'nightly')).some((b) => b.trigger === 'catchup' && b.status === 'verified'), 60_000, () => 'a catch-up run');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await list(c, 'nightly')).filter((b) => b.trigger === 'catchup').length, 1);
    const health = (await a.agent.get('/health')).json();
    assert.equal(health.checks['backup:nightly'][0].status, 'pass');
  });

  it('rotation at start: old ones go down to minKeep, a hand-deleted file is missing and not counted, leftovers go, strangers stay', async () => {
    const backups = [{ name: 'rot', schedule: '0 3 * * *', source: { service: 'db', database: 'app', user: 'app' }, retention: { days: 1, minKeep: 2 } }];
    const dir = tempDir('bkrot');
    let { a, c } = await start(backups, { dir });
    const ids: number[] = [];
    const files: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { end } = await streamed(c, 'backup.run', { name: 'rot' });
      assert.equal(end.ok, true, JSON.stringify(end));
      ids.push(end.backup.id);
      files.push(end.backup.file);
    }
    c.close();
    await a.agent.stop();
    const bdir = join(a.agent.dataDir, 'backups', 'rot');
    // The three oldest are three days old; the third one's file is deleted by hand.
    backdate(a.agent.dataDir, ids.slice(0, 3), 3 * DAY);
    unlinkSync(files[2]!);
    writeFileSync(join(bdir, 'rot-20260101T000000.000Z.dump.partial'), 'half a dump');
    writeFileSync(join(bdir, 'README.txt'), 'not a backup');

    ({ a, c } = await start(backups, { dir }));
    const after = await list(c, 'rot');
    const byId = new Map(after.map((b) => [b.id, b]));
    // Newest first: 4 (fresh) and 2 are the two verified ones kept; 3 is missing, so 2 is needed for minKeep; 1 is deleted.
    assert.equal(byId.get(ids[3]!)?.status, 'verified');
    assert.equal(byId.get(ids[2]!)?.status, 'missing');
    assert.equal(byId.get(ids[2]!)?.verified, false);
    assert.equal(byId.get(ids[1]!)?.status, 'verified');
    assert.equal(byId.has(ids[0]!), false, 'the oldest record is gone with its file');
    assert.equal(existsSync(files[0]!), false);
    assert.equal(existsSync(files[1]!), true);
    assert.equal(existsSync(files[3]!), true);
    const left = readdirSync(bdir).sort();
    assert.ok(left.includes('README.txt'));
    assert.ok(!left.some((f) => f.endsWith('.partial')), left.join(', '));

    // A missing backup cannot be restored.
    const r = await c.call('backup.restore', { id: ids[2], confirm: true });
    assert.equal(r.error?.code, -32004);
    assert.match(r.error.message, /gone/);
  });

  it('a deploy takes backupFirst before up; when that backup fails the deploy stops before touching anything', async () => {
    const backups = [{ name: 'pre', schedule: '0 3 * * *', source: { service: 'db', database: 'app', user: 'app' } }];
    const deploy = { healthTimeout: '20s', stableFor: '1s', watch: '1s', backupFirst: 'pre' };
    const { a, c } = await start(backups, { deploy });
    await waitFor(async () => (await a.agent.get('/health')).json().checks['service:web']?.[0]?.status === 'pass', 30_000, () => 'web healthy');

    const ok = await streamed(c, 'deploy.start', {});
    assert.equal(ok.end.ok, true, JSON.stringify(ok.end));
    const steps = ok.end.deploy.steps.filter((s: any) => s.status === 'ok').map((s: any) => s.step);
    assert.ok(steps.indexOf('backup') > steps.indexOf('disk') && steps.indexOf('backup') < steps.indexOf('up'), steps.join(' '));
    const taken = await list(c, 'pre');
    assert.equal(taken[0].trigger, 'deploy');
    assert.equal(taken[0].verified, true);

    // The database stopped by an operator: no container to dump from.
    assert.ok((await c.call('stack.stop', { service: 'db' })).result?.ok);
    await waitFor(async () => (await pg.stack.containerId('db')) === '', 30_000, () => 'db stopped');
    const webBefore = await pg.stack.containerId('web');
    const bad = await streamed(c, 'deploy.start', {});
    assert.equal(bad.end.ok, false, JSON.stringify(bad.end.deploy.steps));
    const failedStep = bad.end.deploy.steps.find((s: any) => s.status === 'failed');
    assert.equal(failedStep.step, 'backup');
    assert.match(failedStep.detail, /no running container/);
    assert.ok(!bad.end.deploy.steps.some((s: any) => s.step === 'up'), 'nothing was brought up');
    assert.equal(await pg.stack.containerId('web'), webBefore, 'web was not recreated');
    assert.equal((await list(c, 'pre'))[0].status, 'failed');
    assert.ok((await c.call('stack.start', { service: 'db' })).result?.ok);
  });
});
