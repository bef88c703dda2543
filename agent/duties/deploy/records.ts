// Deploy records: one row per deploy, rollback or recovery, written at every
// step, so a killed agent finds the unfinished one and knows exactly what to
// put back (images by ID, .env content, git commit).
import type { Db, Migration } from '../../store/db.js';
import { migrate } from '../../store/db.js';

const MIGRATIONS: Migration[] = [
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
  envBefore: string | null;
  envAfter: string | null;
  /** Names of the .env keys changed (values stay out of listings). */
  envKeys: string[];
  /** service -> the image reference compose uses for it, before and after */
  imageRefs: { before: Record<string, string>; after?: Record<string, string> };
  /** service -> image ID before the deploy / after it */
  imagesBefore: Record<string, string>;
  imagesAfter?: Record<string, string>;
  steps: StepRecord[];
  /** For a rollback: the deploy whose state it went back to. */
  targetId?: number;
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
  env_before: string | null;
  env_after: string | null;
  env_keys: string;
  image_refs: string;
  images_before: string;
  images_after: string | null;
  steps: string;
  target_id: number | null;
}

export class DeployRecords {
  constructor(private readonly db: Db) {
    migrate(db, 'deploy', MIGRATIONS);
  }

  create(r: Omit<DeployRecord, 'id'>): DeployRecord {
    const info = this.db
      .prepare(
        `INSERT INTO deploys (kind, started_at, actor, result, services, ref_before, env_before, env_after, env_keys, image_refs, images_before, steps, target_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(r.kind, r.startedAt, r.actor, r.result, JSON.stringify(r.services), r.refBefore ?? null, r.envBefore, r.envAfter, JSON.stringify(r.envKeys), JSON.stringify(r.imageRefs), JSON.stringify(r.imagesBefore), JSON.stringify(r.steps), r.targetId ?? null);
    return { ...r, id: Number(info.lastInsertRowid) };
  }

  /** Writes the record's current state (called at every step). */
  save(r: DeployRecord): void {
    this.db
      .prepare(
        `UPDATE deploys SET finished_at = ?, result = ?, error = ?, ref_before = ?, ref_after = ?, env_before = ?, env_after = ?, image_refs = ?, images_before = ?, images_after = ?, steps = ? WHERE id = ?`,
      )
      .run(r.finishedAt ?? null, r.result, r.error ?? null, r.refBefore ?? null, r.refAfter ?? null, r.envBefore, r.envAfter, JSON.stringify(r.imageRefs), JSON.stringify(r.imagesBefore), r.imagesAfter ? JSON.stringify(r.imagesAfter) : null, JSON.stringify(r.steps), r.id);
  }

  get(id: number): DeployRecord | undefined {
    const row = this.db.prepare('SELECT * FROM deploys WHERE id = ?').get(id) as Row | undefined;
    return row && toRecord(row);
  }

  list(limit: number): DeployRecord[] {
    return (this.db.prepare('SELECT * FROM deploys ORDER BY id DESC LIMIT ?').all(limit) as Row[]).map(toRecord);
  }

  recentIds(n: number): number[] {
    return this.db.prepare('SELECT id FROM deploys ORDER BY id DESC LIMIT ?').pluck().all(n) as number[];
  }

  unfinished(): DeployRecord[] {
    return (this.db.prepare("SELECT * FROM deploys WHERE result = 'running' ORDER BY id").all() as Row[]).map(toRecord);
  }

  /** The newest deploy that ended well, before `beforeId` if given. */
  lastGood(beforeId?: number): DeployRecord | undefined {
    const row = this.db
      .prepare("SELECT * FROM deploys WHERE result = 'succeeded' AND images_after IS NOT NULL AND id < ? ORDER BY id DESC LIMIT 1")
      .get(beforeId ?? Number.MAX_SAFE_INTEGER) as Row | undefined;
    return row && toRecord(row);
  }
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
    envBefore: r.env_before,
    envAfter: r.env_after,
    envKeys: JSON.parse(r.env_keys) as string[],
    imageRefs: JSON.parse(r.image_refs) as DeployRecord['imageRefs'],
    imagesBefore: JSON.parse(r.images_before) as Record<string, string>,
    ...(r.images_after === null ? {} : { imagesAfter: JSON.parse(r.images_after) as Record<string, string> }),
    steps: JSON.parse(r.steps) as StepRecord[],
    ...(r.target_id === null ? {} : { targetId: r.target_id }),
  };
}
