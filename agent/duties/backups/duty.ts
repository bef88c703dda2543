// The backups duty: each configured backup on its node-cron schedule (host
// local time), a catch-up run at start for one missed while the agent was
// down, runs on demand (backup.run, a deploy's backupFirst), restores, the
// rotation after every run, and what /health, /metrics and status.get show.
// One run of a backup at a time: a second is refused (conflict), a schedule
// tick during a run is skipped. Restores are one at a time across backups.
import { existsSync } from 'node:fs';
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { schedule as cronSchedule, type ScheduledTask } from 'node-cron';
import type { BackupEvent } from '../../api/protocol.js';
import type { Duty, DutyContext, GaugeSpec, HealthChecks, StatusContribution } from '../../duty.js';
import { conflict, notFound, type Progress } from '../../errors.js';
import { partialPath } from './commands.js';
import { Periodic } from '../../periodic.js';
import type { BackupConfig } from './config.js';
import { planRotation } from './rotation.js';
import { restoreRefusal, runRestore, type RestoreTools } from './restore.js';
import { runBackup, type RunTools } from './run.js';
import { scheduleIntervalAt } from './schedule.js';
import { BackupStore, type StoredBackup, type StoredRestore, type Trigger } from './store.js';
import { backupGauges, backupStatus, healthChecks, type Summary } from './view.js';

/** How long stop() waits for runs to end after the agent began stopping. */
const STOP_WAIT_MS = 3000;
/** How often the directories are looked at between runs: a file deleted by hand is marked missing within this. */
const SWEEP_MS = 10 * 60_000;

export type BackupTools = RunTools & RestoreTools;


export class BackupsDuty implements Duty {
  readonly name = 'backups';
  readonly store: BackupStore;
  private readonly byName = new Map<string, BackupConfig>();
  private readonly running = new Map<string, Promise<StoredBackup>>();
  private restoring: Promise<StoredRestore> | undefined;
  private readonly tasks: ScheduledTask[] = [];
  private readonly summaries = new Map<string, Summary>();
  private catchUp: Promise<unknown> | undefined;
  private readonly sweep: Periodic;
  /** Dumps a dead agent left running are being ended: no run of ours starts before that is done. */
  private leftoversEnded: Promise<void> = Promise.resolve();

  constructor(
    private readonly configs: readonly BackupConfig[],
    private readonly toolsFor: (config: BackupConfig) => BackupTools,
    private readonly ctx: DutyContext,
  ) {
    this.store = new BackupStore(ctx.db);
    for (const c of configs) this.byName.set(c.name, c);
    this.sweep = new Periodic(SWEEP_MS, async () => {
      for (const c of this.configs) if (!this.running.has(c.name) && !this.restoring) await this.rotate(c);
    }, (err) => ctx.reportError(this.name, err));
  }

  dirOf(c: BackupConfig): string {
    return c.dir ?? join(this.ctx.config.dataDir, 'backups', c.name);
  }

  async start(): Promise<void> {
    // Whatever the last agent was doing when it died did not finish.
    const died = new Set<string>();
    for (const r of this.store.running()) {
      this.store.finish({ ...r, status: 'interrupted', finishedAt: Date.now(), error: 'the agent stopped or died during the run; nothing was kept' });
      this.afterRun(this.store.get(r.id)!, false);
      died.add(r.name);
    }
    // In the background (start() never waits on Docker); every run waits for it, since it ends connections by name prefix.
    this.leftoversEnded = Promise.all(this.configs.filter((x) => died.has(x.name)).map((c) => this.endLeftoverDumps(c))).then(() => undefined);
    for (const r of this.store.runningRestores()) {
      this.store.saveRestore({ ...r, status: 'interrupted', finishedAt: Date.now(), error: 'the agent stopped or died during the restore; pg_restore runs in one transaction, so the database was left as it was' });
    }
    const now = Date.now();
    for (const c of this.configs) {
      this.refreshSummary(c.name, now);
      await this.rotate(c).catch((err: unknown) => this.ctx.reportError(this.name, err));
    }
    for (const c of this.configs) {
      const task = cronSchedule(c.schedule, () => this.tick(c), { name: `backup:${c.name}`, noOverlap: false, suppressMissedWarning: true, logger: this.cronLogger() });
      this.tasks.push(task);
    }
    if (this.configs.length) this.sweep.start(SWEEP_MS);
    const missed = this.configs.filter((c) => this.missedRun(c, now));
    if (missed.length) {
      // In the background: start() must not wait for a dump.
      this.catchUp = (async () => {
        for (const c of missed) {
          if (this.ctx.stopping.aborted) return;
          this.ctx.log.info({ backup: c.name }, 'the last verified backup is older than its interval: running it now');
          await this.startRun(c, 'catchup', 'agent', () => {})?.catch(() => undefined);
        }
      })();
    }
  }

  async stop(): Promise<void> {
    await this.sweep.stop();
    for (const t of this.tasks.splice(0)) await t.destroy();
    const inFlight = [...this.running.values(), ...(this.restoring ? [this.restoring] : []), ...(this.catchUp ? [this.catchUp] : [])];
    if (!inFlight.length) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(inFlight), new Promise((r) => (timer = setTimeout(r, STOP_WAIT_MS)))]);
    clearTimeout(timer);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  /** Newest first from below `before` on (backup.list pages through these). */
  history(name: string | undefined, before?: number): Iterable<StoredBackup> {
    if (name !== undefined && !this.byName.has(name) && this.store.all(name).length === 0) throw notFound(this.unknownBackup(name));
    return this.store.iterate(name, before);
  }

  /**
   * Starts a run of `name`. Refusals are thrown at once (an unknown backup, a
   * run of it already going); the promise carries the finished record,
   * verified or failed.
   */
  run(name: string, actor: string, progress: Progress<BackupEvent>, trigger: Trigger = 'manual'): Promise<StoredBackup> {
    const c = this.byName.get(name);
    if (!c) throw notFound(this.unknownBackup(name));
    if (this.restoring) throw conflict('a restore is running; back up once it has finished (its safety backup is already being taken)');
    const run = this.startRun(c, trigger, actor, progress);
    if (!run) throw conflict(`backup ${name} is already running; wait for it (deckhand backup list ${name})`);
    return run;
  }

  /** A restore: refused at once when the backup is unknown, not verified, or another restore or a run of it is going. */
  restore(id: number, to: string | undefined, actor: string, progress: Progress<BackupEvent>): Promise<StoredRestore> {
    const backup = this.store.get(id);
    const refused = restoreRefusal(backup, id);
    if (refused) throw refused;
    const c = this.byName.get(backup!.name);
    if (!c) throw notFound(`backup ${id} belongs to ${backup!.name}, which is no longer configured: restore it by hand (pg_restore ${backup!.file})`);
    if (this.restoring) throw conflict('a restore is already running; wait for it (deckhand events)');
    if (this.running.has(c.name)) throw conflict(`backup ${c.name} is running; restore once it has finished`);
    if (!existsSync(backup!.file)) {
      this.store.setStatus([id], 'missing');
      this.refreshSummary(c.name);
      throw notFound(`backup ${id}'s file ${backup!.file} is gone; choose another (deckhand backup list ${c.name})`);
    }
    const tools = this.toolsFor(c);
    const database = c.source.database;
    const restore = runRestore(
      { backup: backup!, database, ...(to !== undefined ? { to } : {}), actor },
      {
        store: this.store,
        tools,
        progress,
        signal: this.ctx.stopping,
        safetyBackup: () => this.startRun(c, 'safety', actor, progress) ?? Promise.reject(new Error(`backup ${c.name} is already running`)),
      },
    ).then((r) => {
      this.announceRestore(r, backup!);
      return r;
    });
    this.restoring = restore;
    void restore.finally(() => (this.restoring = undefined)).catch(() => undefined);
    return restore;
  }

  /** For a deploy's backupFirst: runs the backup and rejects unless it was verified. */
  async backupFirst(name: string, actor: string): Promise<string> {
    const r = await this.run(name, actor, () => {}, 'deploy');
    if (r.status !== 'verified') throw new Error(`backup ${name} failed (${r.error ?? r.status}); nothing was deployed`);
    return `backup ${name} ${r.id} verified, ${r.size} bytes`;
  }

  checks(): HealthChecks {
    return healthChecks(this.configs, this.summaries, Date.now());
  }

  gauges(): GaugeSpec[] {
    return backupGauges(this.configs, this.summaries);
  }

  status(): StatusContribution {
    return { backups: backupStatus(this.configs, this.summaries, (name) => this.running.has(name), Date.now()) };
  }

  // ---------------------------------------------------------------------------

  /** Starts a run unless one of this backup is going (then undefined). */
  private startRun(c: BackupConfig, trigger: Trigger, actor: string, progress: Progress<BackupEvent>): Promise<StoredBackup> | undefined {
    if (this.running.has(c.name)) return undefined;
    const run = (async () => {
      await this.leftoversEnded;
      const record = await runBackup(
        { config: c, dir: this.dirOf(c), trigger, actor },
        { store: this.store, tools: this.toolsFor(c), progress, signal: this.ctx.stopping },
      );
      this.afterRun(record, true);
      if (!this.ctx.stopping.aborted) {
        progress({ type: 'step', step: 'rotate', status: 'started' });
        const t0 = performance.now();
        try {
          const deleted = await this.rotate(c);
          progress({ type: 'step', step: 'rotate', status: 'ok', ms: Math.round(performance.now() - t0), detail: deleted ? `${deleted} old file${deleted === 1 ? '' : 's'} removed` : 'nothing to remove' });
        } catch (err) {
          this.ctx.reportError(this.name, err);
          progress({ type: 'step', step: 'rotate', status: 'failed', detail: (err as Error).message });
        }
      }
      return this.store.get(record.id) ?? record;
    })();
    this.running.set(c.name, run);
    void run.finally(() => this.running.delete(c.name)).catch(() => undefined);
    return run;
  }

  private tick(c: BackupConfig): void {
    if (this.running.has(c.name)) {
      this.ctx.log.warn({ backup: c.name }, 'scheduled backup skipped: the previous run is still going');
      return;
    }
    if (this.restoring) {
      // A dump taken while a restore replaces the data would be of neither the old nor the new state.
      this.ctx.log.warn({ backup: c.name }, 'scheduled backup skipped: a restore is running');
      return;
    }
    this.startRun(c, 'schedule', 'schedule', () => {})?.catch((err: unknown) => this.ctx.reportError(this.name, err));
  }

  /** SPEC: a run missed while the agent was down runs once at start when the last success is older than the interval. */
  private missedRun(c: BackupConfig, now: number): boolean {
    const s = this.summaries.get(c.name);
    if (!s) return false;
    const from = s.lastVerified ? (s.lastVerified.finishedAt ?? s.lastVerified.startedAt) : s.expectedSince;
    const interval = scheduleIntervalAt(c.schedule, s.lastVerified?.startedAt ?? s.expectedSince);
    return interval !== null && now - from > interval;
  }

  /** Alerts and the kept summary after a run. */
  private afterRun(r: StoredBackup, fresh: boolean): void {
    const { conditions, events } = this.ctx;
    const name = r.name;
    if (r.status === 'verified') {
      events.record({ type: 'backup.succeeded', severity: 'info', subject: name, message: `backup ${name} ${r.id} verified (${r.size} bytes)`, data: { id: r.id, size: r.size, sha256: r.sha256, trigger: r.trigger } });
      conditions.clear('backup.failed', name, `backup ${name} succeeded again (${r.id})`, { id: r.id });
      if (r.sizeDrop) conditions.raise('backup.size_drop', name, 'warning', `backup ${name} ${r.id} is under half the size of the one before it (${r.size} bytes): kept, but check what the database lost`, { id: r.id, size: r.size });
      else conditions.clear('backup.size_drop', name, `backup ${name} ${r.id} is back to a normal size`, { id: r.id, size: r.size });
    } else if (fresh || r.status === 'interrupted') {
      conditions.raise('backup.failed', name, 'critical', `backup ${name} ${r.id} ${r.status === 'interrupted' ? 'was interrupted' : 'failed'}: ${r.error ?? r.status}`, { id: r.id, error: r.error });
    }
    this.refreshSummary(name);
  }

  private announceRestore(r: StoredRestore, b: StoredBackup): void {
    const into = r.newDatabase ? `into the new database ${r.database}` : `into ${r.database}`;
    if (r.status === 'succeeded') {
      this.ctx.events.record({ type: 'backup.restored', severity: 'warning', subject: b.name, message: `backup ${b.id} restored ${into} by ${r.actor}; the database before it is backup ${r.safetyBackupId}`, data: { restore: r.id, backup: b.id, safetyBackup: r.safetyBackupId } });
    } else {
      this.ctx.events.record({ type: 'backup.restore_failed', severity: 'critical', subject: b.name, message: `restore of backup ${b.id} ${into} by ${r.actor} failed: ${r.error}`, data: { restore: r.id, backup: b.id, ...(r.safetyBackupId ? { safetyBackup: r.safetyBackupId } : {}) } });
    }
  }

  private refreshSummary(name: string, now = Date.now()): void {
    const records = this.store.all(name);
    const lastRun = records.find((r) => r.trigger !== 'safety' || r.status === 'verified') ?? records[0];
    const lastVerified = records.find((r) => r.status === 'verified');
    this.summaries.set(name, {
      ...(lastRun ? { lastRun } : {}),
      ...(lastVerified ? { lastVerified } : {}),
      expectedSince: this.store.expectedSince(name, now),
      failuresTotal: this.store.failuresTotal(name),
    });
  }

  /** A pg_dump the dead agent started may still be running: end it, or say that it could not be. */
  private async endLeftoverDumps(c: BackupConfig): Promise<void> {
    try {
      const ended = (await this.toolsFor(c).source.endLeftovers?.()) ?? 0;
      if (ended) this.ctx.log.warn({ backup: c.name, ended }, 'ended the dump an earlier agent left running');
    } catch (err) {
      this.ctx.log.warn({ backup: c.name, err: (err as Error).message }, 'could not end a dump an earlier agent may have left running');
    }
  }

  /** Applies the rotation plan; returns the number of files deleted. */
  private async rotate(c: BackupConfig): Promise<number> {
    const dir = this.dirOf(c);
    const records = this.store.all(c.name).filter((r) => r.status !== 'running');
    const present = new Set<string>();
    try {
      for (const f of await readdir(dir)) present.add(join(dir, f));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // Records of an earlier `dir` point elsewhere: look at their files one by one.
    for (const r of records) for (const p of [r.file, partialPath(r.file)]) if (!p.startsWith(`${dir}/`) && existsSync(p)) present.add(p);
    const latest = records[0];
    const plan = planRotation({
      name: c.name,
      records: records.map((r) => ({ ...r, status: r.status === 'running' ? 'partial' : r.status })),
      present,
      retention: c.retention,
      now: Date.now(),
      latestRunFailed: latest !== undefined && latest.status !== 'verified' && latest.status !== 'missing',
    });
    let deleted = 0;
    for (const d of plan.delete) {
      try {
        await unlink(d.path);
        deleted++;
        this.ctx.log.info({ backup: c.name, path: d.path, reason: d.reason, id: d.id }, 'backup file removed');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.ctx.reportError(this.name, err);
      }
    }
    if (plan.markMissing.length) {
      this.store.setStatus(plan.markMissing, 'missing');
      this.ctx.log.warn({ backup: c.name, ids: plan.markMissing }, 'backup files deleted outside deckhand: marked missing');
    }
    if (plan.dropRecords.length) this.store.drop(plan.dropRecords);
    if (plan.heldBack) this.ctx.log.info({ backup: c.name }, 'the last run failed: no verified backup deleted');
    this.refreshSummary(c.name);
    return deleted;
  }

  private unknownBackup(name: string): string {
    return `no backup named ${name} (configured: ${this.names().join(', ') || 'none'})`;
  }

  private cronLogger() {
    const log = this.ctx.log;
    return {
      info: (m: string) => log.debug({ cron: true }, m),
      warn: (m: string) => log.warn({ cron: true }, m),
      error: (m: string | Error) => log.error({ cron: true }, String(m)),
      debug: (m: string | Error) => log.debug({ cron: true }, String(m)),
    };
  }
}
