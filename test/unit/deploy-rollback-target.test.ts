// Where `rollback [ID]` goes, from the records and what they say runs: the
// good deploy before the running one, "nothing to roll back" when the
// target already runs, and the refusals.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeployRecord } from '../../agent/duties/deploy/records.js';
import { chooseRollbackTarget, runningDeploy } from '../../agent/duties/deploy/rollback-target.js';

type Spec = [id: number, kind: DeployRecord['kind'], result: DeployRecord['result'], targetId?: number, steps?: string[]];

/** Records newest first, from [id, kind, result, targetId?, steps?] oldest first. */
function history(...specs: Spec[]): DeployRecord[] {
  return specs
    .map(([id, kind, result, targetId, steps]) => ({
      id,
      kind,
      startedAt: id * 1000,
      actor: 'ci',
      result,
      services: [],
      envBefore: null,
      envAfter: null,
      envKeys: [],
      envChanges: [],
      imageRefs: { before: {} },
      imagesBefore: {},
      ...(result === 'succeeded' ? { imagesAfter: { web: `sha256:${id}` } } : {}),
      steps: (steps ?? []).map((step) => ({ step, status: 'ok' as const, at: id * 1000 })),
      ...(targetId !== undefined ? { targetId } : {}),
    }))
    .reverse();
}

const pick = (records: DeployRecord[], id?: number) => {
  const c = chooseRollbackTarget(records, id, 10);
  return c.kind === 'target' ? { to: c.targetId, record: c.record.id } : c.kind === 'unchanged' ? { unchanged: c.running } : { refused: c.why };
};

describe('which deploy runs', () => {
  it('the newest good deploy; one that failed or rolled back leaves the one before it running', () => {
    assert.equal(runningDeploy(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'succeeded'])), 2);
    assert.equal(runningDeploy(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'rolled_back'], [3, 'deploy', 'failed'])), 1);
    assert.equal(runningDeploy(history([1, 'deploy', 'rolled_back'])), undefined, 'what runs predates the records');
  });

  it('a good rollback: the deploy it went to', () => {
    assert.equal(runningDeploy(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'succeeded'], [3, 'rollback', 'succeeded', 1])), 1);
    assert.equal(runningDeploy(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'succeeded'], [3, 'rollback', 'rolled_back', 1])), 2);
  });

  it('after a recovery: what ran before the interrupted deploy, or the goal of the interrupted rollback', () => {
    assert.equal(runningDeploy(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'interrupted'], [3, 'recovery', 'succeeded', 2])), 1);
    assert.equal(runningDeploy(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'succeeded'], [3, 'rollback', 'interrupted', 1, ['record', 'restore-files']], [4, 'recovery', 'succeeded', 3])), 1);
    assert.equal(runningDeploy(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'succeeded'], [3, 'rollback', 'interrupted', 1, ['record', 'health', 'rollback']], [4, 'recovery', 'succeeded', 3])), 2);
    assert.equal(runningDeploy(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'interrupted'], [3, 'recovery', 'interrupted', 2], [4, 'recovery', 'succeeded', 3])), 1, 'a recovery of a recovery');
  });
});

describe('the rollback target', () => {
  it('without an ID: the good deploy before the running one', () => {
    assert.deepEqual(pick(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'succeeded'])), { to: 1, record: 1 });
    assert.deepEqual(pick(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'succeeded'], [3, 'deploy', 'succeeded'], [4, 'deploy', 'rolled_back'])), { to: 2, record: 2 }, 'not 3, which runs');
  });

  it('after an automatic rollback of the only deploy since the first: nothing earlier, however often asked', () => {
    const records = history([1, 'deploy', 'succeeded'], [2, 'deploy', 'rolled_back']);
    assert.deepEqual(pick(records), { refused: 'no earlier good deploy before deploy 1 (which is running) among the last 10 to roll back to' });
  });

  it('a rollback does not bounce: after going back to 1, the next goes further back or nowhere', () => {
    assert.deepEqual(pick(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'succeeded'], [3, 'deploy', 'succeeded'], [4, 'rollback', 'succeeded', 2])), { to: 1, record: 1 });
    assert.match(pick(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'succeeded'], [3, 'rollback', 'succeeded', 1])).refused!, /^no earlier good deploy before deploy 1/);
  });

  it('an earlier good rollback stands for the deploy it went to', () => {
    assert.deepEqual(pick(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'succeeded'], [3, 'rollback', 'succeeded', 1], [4, 'deploy', 'succeeded'])), { to: 1, record: 3 });
  });

  it('with an ID: that deploy, or "unchanged" when it is the one running', () => {
    const records = history([1, 'deploy', 'succeeded'], [2, 'deploy', 'succeeded'], [3, 'deploy', 'rolled_back']);
    assert.deepEqual(pick(records, 1), { to: 1, record: 1 });
    assert.deepEqual(pick(records, 2), { unchanged: 2 });
    assert.deepEqual(pick(history([1, 'deploy', 'succeeded'], [2, 'deploy', 'succeeded'], [3, 'rollback', 'succeeded', 1]), 3), { unchanged: 1 }, 'a rollback record stands for its target');
  });

  it('refuses a deploy that did not succeed (in the operator\'s words), one not kept, one too old', () => {
    const records = history([1, 'deploy', 'succeeded'], [2, 'deploy', 'rolled_back'], ...Array.from({ length: 11 }, (_, i): Spec => [i + 3, 'deploy', 'succeeded']));
    assert.deepEqual(pick(records, 2), { refused: 'deploy 2 did not succeed (rolled back); roll back to a good one (deckhand deploys)' });
    assert.deepEqual(pick(records, 99), { refused: 'no deploy 99' });
    assert.deepEqual(pick(records, 1), { refused: 'deploy 1 is older than the last 10 deploys: its images and .env are no longer kept' });
    assert.equal(chooseRollbackTarget(records, 99, 10).kind === 'refused' && (chooseRollbackTarget(records, 99, 10) as { missing: boolean }).missing, true);
  });

  it('with no record of what runs: the newest good deploy', () => {
    assert.deepEqual(pick(history([1, 'deploy', 'failed'])), { refused: 'no earlier good deploy among the last 10 to roll back to' });
    assert.deepEqual(pick(history([1, 'recovery', 'succeeded'])), { refused: 'no earlier good deploy among the last 10 to roll back to' }, 'a recovery is no deploy to go back to');
  });
});
