// Deploy records: one row per deploy, rollback or recovery, written at every
// step, so a killed agent finds the unfinished one and knows exactly what to
// put back (images by ID, the .env snapshot, git commit). The database keeps
// no .env content: only snapshot ids (EnvSnapshots holds the files) and, for
// each key a deploy set, a keyed hash of its value.
import type { Db, Migration } from '../../store/db.js';
import { migrate } from '../../store/db.js';
import type { EnvSnapshots } from './env-snapshots.js';
import type { ServiceFailure } from './failures.js';

/** Deploy records kept (SPEC: the last 200). */
export const KEEP_RECORDS = 200;

const migrations = (moveEnvOut: (db: Db) => void): Migration[] => [
  {
    version: 1,
    sql: `CREATE TABLE deploys (
      id INTEGER PRIMARY KEY,
      kind TEXT NOT NULL,
      started_at INTEGER NOT NULL,
      finished_at INTEGER,
      actor TEXT NOT NULL,
      result TEXT NOT NULL,
      error TEXT,
      services TEXT NOT NULL,
      ref_before TEXT,
      ref_after TEXT,
      env_before TEXT,
      env_after TEXT,
      env_keys TEXT NOT NULL,
      image_refs TEXT NOT NULL,
      images_before TEXT NOT NULL,
      images_after TEXT,
      steps TEXT NOT NULL,
      target_id INTEGER
    );
    CREATE INDEX deploys_result ON deploys (result);`,
  },
  {
    // .env contents leave the database for 0600 snapshot files; the rows keep ids.
    version: 2,
    sql: `ALTER TABLE deploys ADD COLUMN env_before_id TEXT;
      ALTER TABLE deploys ADD COLUMN env_after_id TEXT;
      ALTER TABLE deploys ADD COLUMN env_changes TEXT NOT NULL DEFAULT '[]';
      ALTER TABLE deploys ADD COLUMN goal TEXT;`,
    run: moveEnvOut,
  },
  {
    version: 3,
    sql: `ALTER TABLE deploys DROP COLUMN env_before;
      ALTER TABLE deploys DROP COLUMN env_after;`,
  },
  {
    // Why services failed the gate (exit code, health, masked log tail), read before the rollback replaced them.
    version: 4,
    sql: `ALTER TABLE deploys ADD COLUMN failures TEXT;`,
  },
];

export type DeployKind = 'deploy' | 'rollback' | 'recovery';
export type DeployResult = 'running' | 'succeeded' | 'failed' | 'rolled_back' | 'rollback_failed' | 'interrupted';

export interface StepRecord {
  step: string;
  status: 'started' | 'ok' | 'failed' | 'skipped';
  at: number;
  ms?: number;
  detail?: string;
}

/** What runs, or should: enough to put it all back. */
export interface StackState {
  ref?: string;
  /** .env snapshot id (EnvSnapshots); null: no .env file */
  env: string | null;
  /** service -> the image reference compose uses for it */
  refs: Record<string, string>;
  /** service -> image ID */
  images: Record<string, string>;
}

export interface EnvChange {
  key: string;
  /** Keyed hash of the new value (EnvSnapshots.valueHash): tells values apart, reveals nothing. */
  hash: string;
}

export interface DeployRecord {
  id: number;
  kind: DeployKind;
  startedAt: number;
  finishedAt?: number;
  actor: string;
  result: DeployResult;
  error?: string;
  /** Services in scope; empty means the whole stack. */
  services: string[];
  refBefore?: string;
  refAfter?: string;
  /** .env snapshot ids before and after (null: no file) */
  envBefore: string | null;
  envAfter: string | null;
  /** Names of the .env keys changed (values stay out of listings). */
  envKeys: string[];
  envChanges: EnvChange[];
  /** service -> the image reference compose uses for it, before and after */
  imageRefs: { before: Record<string, string>; after?: Record<string, string> };
  /** service -> image ID before the deploy / after it */
  imagesBefore: Record<string, string>;
  imagesAfter?: Record<string, string>;
  steps: StepRecord[];
  /** For a rollback: the deploy whose state it went back to; for a recovery: the record it finished. */
  targetId?: number;
  /** For a rollback or recovery: the state it drives the stack to, kept so an interrupted one resumes towards the same. */
  goal?: StackState;
  /** For each service that failed the health gate or watch window: why, as far as its container told. */
  failures?: ServiceFailure[];
}

interface Row {
  id: number;
  kind: DeployKind;
  started_at: number;
  finished_at: number | null;
  actor: string;
  result: DeployResult;
  error: string | null;
  services: string;
  ref_before: string | null;
  ref_after: string | null;
  env_before_id: string | null;
  env_after_id: string | null;
  env_keys: string;
  env_changes: string;
  image_refs: string;
  images_before: string;
  images_after: string | null;
  steps: string;
  target_id: number | null;
  goal: string | null;
  failures: string | null;
}

export class DeployRecords {
  constructor(
    private readonly db: Db,
    snapshots: EnvSnapshots,
  ) {
    // Content the migrations delete is zeroed in the file, not left in free pages.
    db.pragma('secure_delete = ON');
    try {
      if (migrate(db, 'deploy', migrations((d) => moveEnvContentsOut(d, snapshots))) > 0) db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.pragma('secure_delete = OFF');
    }
  }

  create(r: Omit<DeployRecord, 'id'>): DeployRecord {
    const info = this.db
      .prepare(
        `INSERT INTO deploys (kind, started_at, actor, result, services, ref_before, env_before_id, env_after_id, env_keys, env_changes, image_refs, images_before, steps, target_id, goal)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.kind,
        r.startedAt,
        r.actor,
        r.result,
        JSON.stringify(r.services),
        r.refBefore ?? null,
        r.envBefore,
        r.envAfter,
        JSON.stringify(r.envKeys),
        JSON.stringify(r.envChanges),
        JSON.stringify(r.imageRefs),
        JSON.stringify(r.imagesBefore),
        JSON.stringify(r.steps),
        r.targetId ?? null,
        r.goal ? JSON.stringify(r.goal) : null,
      );
    return { ...r, id: Number(info.lastInsertRowid) };
  }

  /** Writes the record's current state (called at every step). */
  save(r: DeployRecord): void {
    this.db
      .prepare(
        `UPDATE deploys SET finished_at = ?, result = ?, error = ?, ref_before = ?, ref_after = ?, env_before_id = ?, env_after_id = ?, env_keys = ?, env_changes = ?,
           image_refs = ?, images_before = ?, images_after = ?, steps = ?, failures = ? WHERE id = ?`,
      )
      .run(
        r.finishedAt ?? null,
        r.result,
        r.error ?? null,
        r.refBefore ?? null,
        r.refAfter ?? null,
        r.envBefore,
        r.envAfter,
        JSON.stringify(r.envKeys),
        JSON.stringify(r.envChanges),
        JSON.stringify(r.imageRefs),
        JSON.stringify(r.imagesBefore),
        r.imagesAfter ? JSON.stringify(r.imagesAfter) : null,
        JSON.stringify(r.steps),
        r.failures ? JSON.stringify(r.failures) : null,
        r.id,
      );
  }

  get(id: number): DeployRecord | undefined {
    const row = this.db.prepare('SELECT * FROM deploys WHERE id = ?').get(id) as Row | undefined;
    return row && toRecord(row);
  }

  list(limit: number): DeployRecord[] {
    return (this.db.prepare('SELECT * FROM deploys ORDER BY id DESC LIMIT ?').all(limit) as Row[]).map(toRecord);
  }

  /** Records newest first, below `before` (an id) when given, read one at a time. */
  *iterate(before = Number.MAX_SAFE_INTEGER): Generator<DeployRecord> {
    for (const row of this.db.prepare('SELECT * FROM deploys WHERE id < ? ORDER BY id DESC').iterate(before) as IterableIterator<Row>) yield toRecord(row);
  }

  recentIds(n: number): number[] {
    return this.db.prepare('SELECT id FROM deploys ORDER BY id DESC LIMIT ?').pluck().all(n) as number[];
  }

  unfinished(): DeployRecord[] {
    return (this.db.prepare("SELECT * FROM deploys WHERE result = 'running' ORDER BY id").all() as Row[]).map(toRecord);
  }

  /** Snapshot ids the last `within` records and every unfinished one refer to (before, after, goal). */
  snapshotsInUse(within: number): Set<string> {
    const rows = this.db
      .prepare(
        `SELECT env_before_id AS b, env_after_id AS a, goal AS g FROM deploys
         WHERE id IN (SELECT id FROM deploys ORDER BY id DESC LIMIT ?) OR result = 'running'`,
      )
      .all(within) as { b: string | null; a: string | null; g: string | null }[];
    const ids = new Set<string>();
    for (const r of rows) {
      for (const id of [r.b, r.a, r.g ? (JSON.parse(r.g) as StackState).env : null]) if (id) ids.add(id);
    }
    return ids;
  }

  /** Deletes finished records beyond the newest `keep`; returns how many. */
  prune(keep = KEEP_RECORDS): number {
    return this.db
      .prepare(`DELETE FROM deploys WHERE result != 'running' AND id NOT IN (SELECT id FROM deploys ORDER BY id DESC LIMIT ?)`)
      .run(keep).changes;
  }
}

/** Migration 2: every .env content still in a row goes to a snapshot file, and is wiped from the file's free pages too. */
function moveEnvContentsOut(db: Db, snapshots: EnvSnapshots): void {
  const rows = db.prepare('SELECT id, env_before, env_after FROM deploys WHERE env_before IS NOT NULL OR env_after IS NOT NULL').all() as {
    id: number;
    env_before: string | null;
    env_after: string | null;
  }[];
  const set = db.prepare('UPDATE deploys SET env_before_id = ?, env_after_id = ?, env_before = NULL, env_after = NULL WHERE id = ?');
  for (const r of rows) set.run(snapshots.save(r.env_before), snapshots.save(r.env_after), r.id);
}

function toRecord(r: Row): DeployRecord {
  return {
    id: r.id,
    kind: r.kind,
    startedAt: r.started_at,
    ...(r.finished_at === null ? {} : { finishedAt: r.finished_at }),
    actor: r.actor,
    result: r.result,
    ...(r.error === null ? {} : { error: r.error }),
    services: JSON.parse(r.services) as string[],
    ...(r.ref_before === null ? {} : { refBefore: r.ref_before }),
    ...(r.ref_after === null ? {} : { refAfter: r.ref_after }),
    envBefore: r.env_before_id,
    envAfter: r.env_after_id,
    envKeys: JSON.parse(r.env_keys) as string[],
    envChanges: JSON.parse(r.env_changes) as EnvChange[],
    imageRefs: JSON.parse(r.image_refs) as DeployRecord['imageRefs'],
    imagesBefore: JSON.parse(r.images_before) as Record<string, string>,
    ...(r.images_after === null ? {} : { imagesAfter: JSON.parse(r.images_after) as Record<string, string> }),
    steps: JSON.parse(r.steps) as StepRecord[],
    ...(r.target_id === null ? {} : { targetId: r.target_id }),
    ...(r.goal === null ? {} : { goal: JSON.parse(r.goal) as StackState }),
    ...(r.failures === null || r.failures === undefined ? {} : { failures: JSON.parse(r.failures) as ServiceFailure[] }),
  };
}
