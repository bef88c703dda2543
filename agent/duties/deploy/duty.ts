// The deploy duty: deploy.start / deploy.rollback as streams of recorded
// steps (machine.ts), one at a time; deploy.list; and, at start, the recovery
// of a deploy the agent was killed in the middle of.
import { ERROR, type DeployInfo } from '../../api/protocol.js';
import { RpcFailure, type MethodTable, type StreamHandle } from '../../api/rpc.js';
import type { Duty, DutyContext } from '../../duty.js';
import type { StackConfig } from '../stack/config.js';
import { runDeploy, type StackControl, type Target } from './machine.js';
import { DeployRecords, type DeployRecord } from './records.js';

/**
 * Failpoint for the crash-recovery tests: the agent kills itself (SIGKILL, no
 * cleanup) as the named deploy step starts. Unset in production.
 */
const KILL_AT_STEP = process.env.DECKHAND_FAILPOINT_KILL_AT_STEP;
const failpoint = (step: string) => {
  if (step === KILL_AT_STEP) process.kill(process.pid, 'SIGKILL');
};

export class DeployDuty implements Duty {
  readonly name = 'deploy';
  readonly records: DeployRecords;
  private running: Promise<DeployRecord> | undefined;
  private readonly abort = new AbortController();

  constructor(
    private readonly config: StackConfig,
    private readonly stack: StackControl,
    private readonly ctx: DutyContext,
  ) {
    this.records = new DeployRecords(ctx.db);
  }

  async start(): Promise<void> {
    const unfinished = this.records.unfinished();
    if (unfinished.length === 0) return;
    // Recovery runs in the background (it may wait for a health gate); it holds the deploy lock.
    this.running = this.recover(unfinished).finally(() => (this.running = undefined));
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running?.catch(() => undefined);
  }

  methods(): MethodTable {
    return {
      'deploy.list': ({ limit }) => ({ deploys: this.records.list(limit ?? 20).map(toInfo) }),
      'deploy.start': ({ ref, env, services }, call) => {
        this.checkServices(services ?? []);
        return this.launch({ kind: 'deploy', ...(ref ? { ref } : {}), ...(env ? { env } : {}) }, call.actor, services ?? [], call.openStream);
      },
      'deploy.rollback': ({ id }, call) => {
        const current = this.records.list(1)[0];
        const target = id === undefined ? this.records.lastGood(current?.result === 'succeeded' ? current.id : undefined) : this.records.get(id);
        if (!target) throw new RpcFailure(ERROR.notFound, id === undefined ? 'no earlier good deploy to roll back to' : `no deploy ${id}`);
        if (target.result !== 'succeeded' || !target.imagesAfter) {
          throw new RpcFailure(ERROR.failed, `deploy ${target.id} did not succeed (${target.result}); roll back to a good one (deckhand deploys)`);
        }
        const state = {
          ...(target.refAfter ?? target.refBefore ? { ref: (target.refAfter ?? target.refBefore)! } : {}),
          env: target.envAfter ?? target.envBefore,
          refs: target.imageRefs.after ?? target.imageRefs.before,
          images: target.imagesAfter,
        };
        return this.launch({ kind: 'rollback', state, targetId: target.id }, call.actor, target.services, call.openStream);
      },
    };
  }

  private checkServices(services: readonly string[]): void {
    const known = this.stack.serviceNames();
    const unknown = services.filter((s) => !known.includes(s));
    if (unknown.length) throw new RpcFailure(ERROR.notFound, `no service ${unknown.join(', ')} in stack ${this.config.project} (services: ${known.join(', ')})`);
  }

  private launch(target: Target, actor: string, services: readonly string[], openStream: () => StreamHandle): { stream: number } {
    if (this.running) throw new RpcFailure(ERROR.conflict, 'a deploy or rollback is already running; wait for it (deckhand deploys)');
    const stream = openStream();
    this.ctx.events.record({ type: 'deploy.started', severity: 'info', subject: this.config.project, message: `${target.kind} started by ${actor}`, data: { kind: target.kind, services } });
    this.running = runDeploy(target, actor, services, {
      records: this.records,
      stack: this.stack,
      config: this.config,
      progress: (e) => stream.send({ ...e }),
      signal: this.abort.signal,
      onStep: failpoint,
    })
      .then((record) => {
        this.announce(record);
        stream.end({ ok: record.result === 'succeeded', deploy: toInfo(record) });
        return record;
      })
      .catch((err: Error) => {
        this.ctx.reportError('deploy', err);
        stream.end({ ok: false, error: err.message });
        throw err;
      })
      .finally(() => (this.running = undefined));
    this.running.catch(() => undefined);
    return { stream: stream.id };
  }

  private async recover(unfinished: DeployRecord[]): Promise<DeployRecord> {
    let last = unfinished[0]!;
    for (const r of unfinished) {
      r.result = 'interrupted';
      r.finishedAt = Date.now();
      r.error = `the agent stopped during step ${r.steps.at(-1)?.step ?? 'record'}`;
      this.records.save(r);
      this.ctx.events.record({ type: 'deploy.failed', severity: 'critical', subject: this.config.project, message: `deploy ${r.id} was interrupted (${r.error}); restoring the state before it`, data: { id: r.id } });
      const changed = r.steps.some((s) => s.step !== 'record');
      if (!changed) continue;
      const state = {
        ...(r.refBefore ? { ref: r.refBefore } : {}),
        env: r.envBefore,
        refs: r.imageRefs.before,
        images: r.imagesBefore,
      };
      last = await runDeploy({ kind: 'recovery', state, targetId: r.id }, 'agent', r.services, {
        records: this.records,
        stack: this.stack,
        config: this.config,
        progress: () => {},
        signal: this.abort.signal,
      });
      this.announce(last);
    }
    return last;
  }

  private announce(r: DeployRecord): void {
    const what = `${r.kind} ${r.id} by ${r.actor}`;
    if (r.result === 'succeeded') this.ctx.events.record({ type: 'deploy.succeeded', severity: 'info', subject: this.config.project, message: `${what} succeeded`, data: { id: r.id } });
    else if (r.result === 'rolled_back') this.ctx.events.record({ type: 'deploy.rolled_back', severity: 'critical', subject: this.config.project, message: `${what} failed and was rolled back: ${r.error}`, data: { id: r.id } });
    else this.ctx.events.record({ type: 'deploy.failed', severity: 'critical', subject: this.config.project, message: `${what} ${r.result === 'rollback_failed' ? 'failed, and so did its rollback' : 'failed'}: ${r.error}`, data: { id: r.id, result: r.result } });
  }
}

export function toInfo(r: DeployRecord): DeployInfo {
  return {
    id: r.id,
    kind: r.kind,
    actor: r.actor,
    startedAt: new Date(r.startedAt).toISOString(),
    ...(r.finishedAt ? { finishedAt: new Date(r.finishedAt).toISOString(), durationMs: r.finishedAt - r.startedAt } : {}),
    result: r.result,
    ...(r.error ? { error: r.error } : {}),
    services: r.services,
    ref: { ...(r.refBefore ? { before: r.refBefore } : {}), ...(r.refAfter ? { after: r.refAfter } : {}) },
    envKeys: r.envKeys,
    images: { before: r.imagesBefore, ...(r.imagesAfter ? { after: r.imagesAfter } : {}) },
    steps: r.steps.map((s) => ({ ...s, at: new Date(s.at).toISOString() })),
    ...(r.targetId !== undefined ? { targetId: r.targetId } : {}),
  };
}
