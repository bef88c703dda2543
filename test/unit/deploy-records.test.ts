// Deploy records and .env snapshots against a real SQLite file and real
// files: no .env content in the database (also after migrating an old one),
// snapshot files 0600 and pruned outside the rollback window, records pruned
// to the last 200, and the goal an interrupted record resumes towards.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { resumeGoal } from '../../agent/duties/deploy/duty.js';
import { EnvSnapshots } from '../../agent/duties/deploy/env-snapshots.js';
import { DeployRecords, type DeployRecord } from '../../agent/duties/deploy/records.js';
import { migrate, openStore, type Db } from '../../agent/store/db.js';

let dir: string;
let db: Db;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dh-records-'));
  db = openStore(dir);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const base = (over: Partial<DeployRecord> = {}): Omit<DeployRecord, 'id'> => ({
  kind: 'deploy',
  startedAt: Date.now(),
  actor: 'ops',
  result: 'succeeded',
  services: [],
  envBefore: null,
  envAfter: null,
  envKeys: [],
  envChanges: [],
  imageRefs: { before: { web: 'web:1' } },
  imagesBefore: { web: 'sha256:aaa' },
  steps: [{ step: 'record', status: 'ok', at: 1 }],
  ...over,
});

describe('env snapshots', () => {
  it('keeps each content once, 0600, named by a keyed hash, and loads it back byte for byte', () => {
    const s = new EnvSnapshots(dir);
    const text = "PASSWORD='a$b'\nX=\"q\\\"\"\n";
    const id = s.save(text)!;
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.equal(s.save(text), id);
    assert.equal(s.load(id), text);
    assert.equal(s.save(null), null);
    assert.equal(s.load(null), null);
    const file = join(dir, 'deploy-env', id);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'deploy-env')).mode & 0o777, 0o700);
    // Another agent (another key) names the same content differently: a name reveals nothing.
    const other = mkdtempSync(join(tmpdir(), 'dh-records-other-'));
    assert.notEqual(new EnvSnapshots(other).save(text), id);
    rmSync(other, { recursive: true });
    assert.equal(new EnvSnapshots(dir).save(text), id, 'the key is kept across restarts');
  });

  it('prunes what is not in use and says clearly when a needed one is gone', () => {
    const s = new EnvSnapshots(dir);
    const a = s.save('A=1\n')!;
    const b = s.save('B=2\n')!;
    assert.equal(s.prune(new Set([a])), 1);
    assert.deepEqual(readdirSync(join(dir, 'deploy-env')).sort(), [a, 'key'].sort());
    assert.throws(() => s.load(b), /no longer kept: only the last deploys can be rolled back to/);
    assert.throws(() => s.load('../../etc/passwd'), /no longer kept/);
  });

  it('value hashes tell values apart without being them', () => {
    const s = new EnvSnapshots(dir);
    assert.equal(s.valueHash('K', 'secret'), s.valueHash('K', 'secret'));
    assert.notEqual(s.valueHash('K', 'secret'), s.valueHash('K', 'secret2'));
    assert.notEqual(s.valueHash('K', 'secret'), s.valueHash('L', 'secret'));
    assert.ok(!s.valueHash('K', 'secret').includes('secret'));
  });
});

describe('deploy records', () => {
  it('an old database: .env contents move to snapshot files and leave no trace in the file', () => {
    const SECRET = 'hunter2-very-secret-value';
    // The first schema, with .env contents in the rows.
    migrate(db, 'deploy', [
      {
        version: 1,
        sql: `CREATE TABLE deploys (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, started_at INTEGER NOT NULL, finished_at INTEGER, actor TEXT NOT NULL,
          result TEXT NOT NULL, error TEXT, services TEXT NOT NULL, ref_before TEXT, ref_after TEXT, env_before TEXT, env_after TEXT,
          env_keys TEXT NOT NULL, image_refs TEXT NOT NULL, images_before TEXT NOT NULL, images_after TEXT, steps TEXT NOT NULL, target_id INTEGER);
          CREATE INDEX deploys_result ON deploys (result);`,
      },
    ]);
    db.prepare(
      `INSERT INTO deploys (kind, started_at, actor, result, services, env_before, env_after, env_keys, image_refs, images_before, images_after, steps)
       VALUES ('deploy', 1, 'ops', 'succeeded', '[]', ?, ?, '["PASSWORD"]', '{"before":{}}', '{}', '{}', '[]')`,
    ).run('PASSWORD=old\n', `PASSWORD=${SECRET}\n`);
    db.close();
    db = openStore(dir);
    const snapshots = new EnvSnapshots(dir);
    const records = new DeployRecords(db, snapshots);
    const r = records.get(1)!;
    assert.equal(snapshots.load(r.envBefore), 'PASSWORD=old\n');
    assert.equal(snapshots.load(r.envAfter), `PASSWORD=${SECRET}\n`);
    const columns = (db.prepare('PRAGMA table_info(deploys)').all() as { name: string }[]).map((c) => c.name);
    assert.ok(!columns.includes('env_before') && !columns.includes('env_after'), columns.join(','));
    db.close();
    for (const f of ['deckhand.db', 'deckhand.db-wal']) {
      let bytes = '';
      try {
        bytes = readFileSync(join(dir, f), 'latin1');
      } catch {
        continue;
      }
      assert.ok(!bytes.includes(SECRET), `${f} still holds the old .env content`);
    }
    db = openStore(dir);
  });

  it('keeps the last 200 finished records and every unfinished one', () => {
    const records = new DeployRecords(db, new EnvSnapshots(dir));
    const running = records.create(base({ result: 'running' }));
    for (let i = 0; i < 250; i++) records.create(base());
    assert.equal(records.prune(), 50);
    const left = db.prepare('SELECT COUNT(*) FROM deploys').pluck().get();
    assert.equal(left, 200 + 1);
    assert.ok(records.get(running.id), 'an unfinished record is never pruned');
    assert.equal(records.prune(), 0);
  });

  it('snapshots in use: the last N records (before, after, goal) and unfinished ones', () => {
    const s = new EnvSnapshots(dir);
    const records = new DeployRecords(db, s);
    const ids = Array.from({ length: 5 }, (_, i) => s.save(`N=${i}\n`)!);
    records.create(base({ result: 'running', envBefore: ids[0]!, envAfter: ids[0]! }));
    records.create(base({ envBefore: ids[1]!, envAfter: ids[1]! }));
    records.create(base({ kind: 'recovery', envBefore: ids[2]!, envAfter: ids[3]!, goal: { env: ids[4]!, refs: {}, images: {} } }));
    assert.deepEqual([...records.snapshotsInUse(1)].sort(), [ids[0], ids[2], ids[3], ids[4]].sort());
  });

  it('an interrupted record resumes towards the state good before it, never the half-applied one', () => {
    const before = { env: 'e-before', refs: { web: 'web:1' }, images: { web: 'sha256:good' } };
    const goal = { env: 'e-goal', refs: { web: 'web:2' }, images: { web: 'sha256:goal' } };
    const rec = (kind: DeployRecord['kind'], steps: string[], withGoal = true): DeployRecord => ({
      ...base({ kind, result: 'running', envBefore: before.env, imagesBefore: before.images, imageRefs: { before: before.refs }, steps: steps.map((step) => ({ step, status: 'started', at: 1 })) }),
      ...(withGoal ? { goal } : {}),
      id: 7,
    });
    assert.deepEqual(resumeGoal(rec('deploy', ['record', 'env', 'up'], false)), before);
    assert.deepEqual(resumeGoal(rec('deploy', ['record', 'up', 'health', 'rollback'], false)), before);
    assert.deepEqual(resumeGoal(rec('recovery', ['record', 'restore-files'])), goal, "a recovery's before is the half-applied deploy");
    assert.deepEqual(resumeGoal(rec('rollback', ['record', 'up'])), goal);
    assert.deepEqual(resumeGoal(rec('rollback', ['record', 'up', 'health', 'rollback'])), before, 'a rollback that was undoing itself');
  });
});
