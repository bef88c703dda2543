// Where `rollback` goes. What runs is not the newest good record: after a
// deploy that rolled back, the one before it runs again, and going "back" to
// it would change nothing (and say it succeeded). So the records are read to
// find the deploy whose state runs now, and the target is the good one
// before it; a target that already runs is reported, not re-applied.
import type { DeployRecord } from './records.js';

export type RollbackChoice =
  /** Restore `record`'s resulting state; `targetId` is the deploy that state is (a rollback record stands for its target). */
  | { kind: 'target'; record: DeployRecord; targetId: number }
  | { kind: 'unchanged'; running: number }
  | { kind: 'refused'; why: string; missing: boolean };

/** The operator's words for a result (the API keeps the enum values). */
export const RESULT_WORDS: Record<DeployRecord['result'], string> = {
  running: 'running',
  succeeded: 'succeeded',
  failed: 'failed',
  rolled_back: 'rolled back',
  rollback_failed: 'rollback failed',
  interrupted: 'interrupted',
};

/** The deploy a good record's state is: a rollback's is its target's. */
export function standsFor(r: DeployRecord): number {
  return r.kind === 'rollback' && r.targetId !== undefined ? r.targetId : r.id;
}

/**
 * The id of the deploy whose state runs now, from the records newest first;
 * undefined when it predates every record. A deploy that failed or rolled
 * back left the state before it running; a recovery put back the state that
 * was good before the record it finished (a rollback's own goal, unless the
 * rollback had already failed its gate and was on its way back).
 */
export function runningDeploy(records: readonly DeployRecord[]): number | undefined {
  const undone = new Set<number>();
  for (const r of records) {
    if (r.kind === 'recovery') {
      if (r.targetId !== undefined) undone.add(r.targetId);
      continue;
    }
    if (undone.has(r.id)) {
      if (r.kind === 'rollback' && r.targetId !== undefined && !r.steps.some((s) => s.step === 'rollback')) return r.targetId;
      continue;
    }
    if (r.result === 'succeeded') return standsFor(r);
  }
  return undefined;
}

const isGood = (r: DeployRecord) => r.result === 'succeeded' && r.imagesAfter !== undefined;

/**
 * Chooses what `rollback [id]` restores. `records` newest first (all kept);
 * only the newest `keep` still have their images and .env kept. Without an
 * id: the newest good deploy before the one running now.
 */
export function chooseRollbackTarget(records: readonly DeployRecord[], id: number | undefined, keep: number): RollbackChoice {
  const running = runningDeploy(records);
  const recent = records.slice(0, keep);
  if (id !== undefined) {
    const r = records.find((x) => x.id === id);
    if (!r) return { kind: 'refused', why: `no deploy ${id}`, missing: true };
    if (!isGood(r)) return { kind: 'refused', why: `deploy ${id} did not succeed (${RESULT_WORDS[r.result] ?? r.result}); roll back to a good one (deckhand deploys)`, missing: false };
    if (running !== undefined && standsFor(r) === running) return { kind: 'unchanged', running };
    if (!recent.includes(r)) return { kind: 'refused', why: `deploy ${id} is older than the last ${keep} deploys: its images and .env are no longer kept`, missing: false };
    return { kind: 'target', record: r, targetId: standsFor(r) };
  }
  const earlier = recent.filter((r) => isGood(r) && r.kind !== 'recovery' && (running === undefined || (r.id < running && standsFor(r) !== running)));
  const r = earlier[0];
  if (r) return { kind: 'target', record: r, targetId: standsFor(r) };
  const where = running !== undefined ? `before deploy ${running} (which is running)` : '';
  return { kind: 'refused', why: `no earlier good deploy ${where ? `${where} ` : ''}among the last ${keep} to roll back to`, missing: true };
}
