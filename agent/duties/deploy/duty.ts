// The deploy duty: deploys and rollbacks as recorded steps (machine.ts), one
// at a time; the list of records; and, at start, the recovery of whatever
// the agent was stopped or killed in the middle of.
import { getEventListeners } from 'node:events';
import type { Duty, DutyContext } from '../../duty.js';
import { conflict, failed, notFound, type Progress } from '../../errors.js';
import type { BackupControl, StackControl } from '../faces.js';
import type { StackConfig } from '../stack/config.js';
import { EnvSnapshots } from './env-snapshots.js';
import { Interrupted, KEEP_DEPLOYS, runDeploy, type DeployProgress, type MachineDeps, type Target } from './machine.js';
import { DeployRecords, KEEP_RECORDS, type DeployRecord, type StackState } from './records.js';
import { chooseRollbackTarget } from './rollback-target.js';

/** How long stop() waits for a run to reach its next safe point (the daemon allows 5 s in all). */
const STOP_WAIT_MS = 3000;

/**
 * Failpoint for the crash-recovery tests: the agent kills itself (SIGKILL, no
 * cleanup) as the named step starts: `STEP` in any run, or `KIND:STEP` in a
 * deploy, rollback or recovery only (`recovery:up`). Unset in production.
 */
const KILL_AT_STEP = process.env.DECKHAND_FAILPOINT_KILL_AT_STEP;
const failpoint = (step: string, kind: string) => {
  if (step === KILL_AT_STEP || `${kind}:${step}` === KILL_AT_STEP) process.kill(process.pid, 'SIGKILL');
};

/** A rollback to the state that already runs: nothing was started. */
export interface NothingToRollBack {
  unchanged: true;
  /** The deploy whose state runs. */
  running: number;
}

export interface DeployRequest {
  ref?: string;
  env?: Record<string, string>;
  services?: string[];
}

export class DeployDuty implements Duty {
  readonly name = 'deploy';
  readonly records: DeployRecords;
  private readonly snapshots: EnvSnapshots;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly config: StackConfig,
    private readonly stack: StackControl,
    private readonly ctx: DutyContext,
    private readonly backups?: BackupControl,
  ) {
    this.snapshots = new EnvSnapshots(ctx.config.dataDir);
    this.records = new DeployRecords(ctx.db, this.snapshots);
  }

  async start(): Promise<void> {
    const unfinished = this.records.unfinished();
    if (unfinished.length === 0) return this.prune();
    // Recovery runs in the background (it may wait for a health gate); it holds the deploy lock.
    this.running = this.recover(unfinished)
      .catch((err: unknown) => {
        if (!(err instanceof Interrupted)) this.ctx.reportError('deploy', err);
      })
      .finally(() => {
        this.running = undefined;
        this.afterRun();
      });
  }

  /**
   * The run in flight has been ending since the agent began to stop
   * (ctx.stopping): wait for it to reach its safe point; its record stays
   * unfinished and the next start completes it.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, STOP_WAIT_MS)))]);
    clearTimeout(timer);
  }

  list(limit: number): DeployRecord[] {
    return this.records.list(limit);
  }

  /** Every kept record, newest first, from below `before` on (the API pages through these). */
  history(before?: number): Iterable<DeployRecord> {
    return this.records.iterate(before);
  }

  /**
   * Starts a deploy. Refusals (a deploy already running, an unknown service)
   * are thrown at once, before any work; the promise carries the outcome,
   * which is a record whatever happened (a rolled-back deploy resolves too).
   */
  deploy(req: DeployRequest, actor: string, progress: Progress<DeployProgress>): Promise<DeployRecord> {
    const services = req.services ?? [];
    this.checkServices(services);
    return this.launch({ kind: 'deploy', ...(req.ref ? { ref: req.ref } : {}), ...(req.env ? { env: req.env } : {}) }, actor, services, progress);
  }

  /**
   * Goes back to the given good deploy, or by default to the good one before
   * the deploy running now (rollback-target.ts). When that state already
   * runs, nothing is started and the outcome says which deploy runs.
   */
  rollback(id: number | undefined, actor: string, progress: Progress<DeployProgress>): Promise<DeployRecord | NothingToRollBack> {
    if (this.running) throw conflict('a deploy or rollback is already running; wait for it (deckhand deploys)');
    const choice = chooseRollbackTarget(this.records.list(KEEP_RECORDS), id, KEEP_DEPLOYS);
    if (choice.kind === 'refused') throw choice.missing ? notFound(choice.why) : failed(choice.why);
    if (choice.kind === 'unchanged') return Promise.resolve({ unchanged: true, running: choice.running });
    const target = choice.record;
    const state: StackState = {
      ...(target.refAfter ?? target.refBefore ? { ref: (target.refAfter ?? target.refBefore)! } : {}),
      env: target.envAfter,
      refs: target.imageRefs.after ?? target.imageRefs.before,
      images: target.imagesAfter!,
    };
    return this.launch({ kind: 'rollback', state, targetId: choice.targetId }, actor, target.services, progress);
  }

  private checkServices(services: readonly string[]): void {
    const known = this.stack.serviceNames();
    const unknown = services.filter((s) => !known.includes(s));
    if (unknown.length) throw notFound(`no service ${unknown.join(', ')} in stack ${this.config.project} (services: ${known.join(', ')})`);
  }

  private launch(target: Target, actor: string, services: readonly string[], progress: Progress<DeployProgress>): Promise<DeployRecord> {
    if (this.running) throw conflict('a deploy or rollback is already running; wait for it (deckhand deploys)');
    this.ctx.events.record({ type: 'deploy.started', severity: 'info', subject: this.config.project, message: `${target.kind} started by ${actor}`, data: { kind: target.kind, services } });
    const run = runDeploy(target, actor, services, this.machineDeps(progress))
      .then((record) => {
        this.announce(record);
        return record;
      })
      .catch((err: unknown) => {
        if (err instanceof Interrupted) throw new Error('the agent is stopping; its next start completes this deploy (deckhand deploys)');
        this.ctx.reportError('deploy', err);
        throw err;
      });
    this.running = run.finally(() => {
      this.running = undefined;
      this.afterRun();
    });
    this.running.catch(() => undefined);
    return run;
  }

  private machineDeps(progress: Progress<DeployProgress>): MachineDeps {
    const backups = this.backups;
    return {
      records: this.records,
      snapshots: this.snapshots,
      stack: this.stack,
      config: this.config,
      progress,
      signal: this.ctx.stopping,
      onStep: failpoint,
      ...(backups ? { backupFirst: (name: string, actor: string) => backups.backupFirst(name, actor) } : {}),
    };
  }

  /** After each run: records beyond the last 200 go, and .env snapshots no deploy in the rollback window needs. */
  private afterRun(): void {
    if (this.ctx.stopping.aborted) return;
    this.prune();
    // Each run's listeners on the daemon-long signal must be gone by now (a leak shows here first).
    this.ctx.log.debug({ abortListeners: getEventListeners(this.ctx.stopping, 'abort').length, heapUsed: process.memoryUsage().heapUsed }, 'deploy lock released');
  }

  private prune(): void {
    try {
      const records = this.records.prune();
      const snapshots = this.snapshots.prune(this.records.snapshotsInUse(KEEP_DEPLOYS));
      if (records || snapshots) this.ctx.log.info({ records, snapshots }, 'old deploy records and .env snapshots removed');
    } catch (err) {
      this.ctx.reportError('deploy', err);
    }
  }

  /**
   * Finishes what a stop or kill interrupted. Each interrupted record resumes
   * towards the state that was good before it began (resumeGoal): a recovery
   * interrupted in turn keeps its goal, however many times the agent dies.
   */
  private async recover(unfinished: DeployRecord[]): Promise<void> {
    for (const r of unfinished) {
      const last = r.steps.filter((s) => s.step !== 'stopped').at(-1)?.step ?? 'record';
      const stopped = r.steps.at(-1)?.step === 'stopped';
      r.result = 'interrupted';
      r.finishedAt = Date.now();
      r.error = `the agent ${stopped ? 'was stopped' : 'died'} during step ${last}`;
      this.records.save(r);
      const goal = resumeGoal(r);
      const changed = r.kind === 'recovery' || r.steps.some((s) => s.step !== 'record');
      this.ctx.events.record({
        type: 'deploy.failed',
        severity: 'critical',
        subject: this.config.project,
        message: `${r.kind} ${r.id} was interrupted (${r.error}); ${changed ? 'restoring the last good state' : 'nothing had changed'}`,
        data: { id: r.id },
      });
      if (!changed) continue;
      const note = `finishing ${r.kind} ${r.id} (interrupted at ${last})`;
      const done = await runDeploy({ kind: 'recovery', state: goal, targetId: r.id, note }, 'agent', r.services, this.machineDeps(() => {}));
      this.announce(done);
    }
  }

  private announce(r: DeployRecord): void {
    const what = `${r.kind} ${r.id} by ${r.actor}`;
    if (r.result === 'succeeded') this.ctx.events.record({ type: 'deploy.succeeded', severity: 'info', subject: this.config.project, message: `${what} succeeded`, data: { id: r.id } });
    else if (r.result === 'rolled_back') this.ctx.events.record({ type: 'deploy.rolled_back', severity: 'critical', subject: this.config.project, message: `${what} failed and was rolled back: ${r.error}`, data: { id: r.id } });
    else this.ctx.events.record({ type: 'deploy.failed', severity: 'critical', subject: this.config.project, message: `${what} ${r.result === 'rollback_failed' ? 'failed, and so did its rollback' : 'failed'}: ${r.error}`, data: { id: r.id, result: r.result } });
  }
}

/** The state an interrupted record must end in: the last one known good before it began. */
export function resumeGoal(r: DeployRecord): StackState {
  const before: StackState = { ...(r.refBefore ? { ref: r.refBefore } : {}), env: r.envBefore, refs: r.imageRefs.before, images: r.imagesBefore };
  if (r.kind === 'deploy' || !r.goal) return before;
  // A rollback whose own target failed its gate was going back to what ran before it.
  if (r.kind === 'rollback' && r.steps.some((s) => s.step === 'rollback')) return before;
  // A recovery (or a rollback on its way): its goal, never the half-applied state it found.
  return r.goal;
}
