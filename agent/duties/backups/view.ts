// What the backups duty shows: the `backup:NAME` health checks, the
// Prometheus gauges and its part of status.get, all from the summaries the
// duty keeps in memory (never a query on a scrape).
import type { BackupStatusInfo } from '../../api/protocol.js';
import type { CheckResult, GaugeSpec, HealthChecks } from '../../duty.js';
import { backupCheck } from './checks.js';
import { redactUrl } from './commands.js';
import type { BackupConfig } from './config.js';
import { backupInfo } from './info.js';
import { nextRunAfter } from './schedule.js';
import type { StoredBackup } from './store.js';

/** Per backup: what the duty last recorded. */
export interface Summary {
  lastRun?: StoredBackup;
  lastVerified?: StoredBackup;
  expectedSince: number;
  failuresTotal: number;
}

type Summaries = ReadonlyMap<string, Summary>;

/** SPEC 4 by age of the last verified backup; the output also names a failed run since. */
export function healthChecks(configs: readonly BackupConfig[], summaries: Summaries, now: number): HealthChecks {
  const out: HealthChecks = {};
  for (const c of configs) {
    const s = summaries.get(c.name);
    if (!s) continue;
    const v = s.lastVerified;
    const check: CheckResult = backupCheck({
      schedule: c.schedule,
      ...(v ? { lastVerified: { startedAt: v.startedAt, ...(v.finishedAt ? { finishedAt: v.finishedAt } : {}) } } : {}),
      expectedSince: s.expectedSince,
      now,
    });
    const last = s.lastRun;
    if (last && last.status !== 'verified' && last.status !== 'running' && last.id > (v?.id ?? 0)) {
      check.output = `${check.output ?? ''}; the last run (${last.id}) failed: ${last.error ?? last.status}`.replace(/^; /, '');
    }
    out[`backup:${c.name}`] = [check];
  }
  return out;
}

/** The gauges as data; their samples read the summaries at scrape time. */
export function backupGauges(configs: readonly BackupConfig[], summaries: Summaries): GaugeSpec[] {
  const per = (f: (s: Summary) => number | undefined) => () =>
    configs.flatMap((c) => {
      const s = summaries.get(c.name);
      const v = s ? f(s) : undefined;
      return v === undefined ? [] : [{ labels: { backup: c.name }, value: v }];
    });
  const finished = (s: Summary) => s.lastVerified?.finishedAt ?? s.lastVerified?.startedAt;
  return [
    { name: 'deckhand_backup_last_success_timestamp_seconds', help: 'When the last verified backup finished (unix seconds)', labelNames: ['backup'], samples: per((s) => (finished(s) === undefined ? undefined : finished(s)! / 1000)) },
    { name: 'deckhand_backup_last_size_bytes', help: 'Size of the last verified backup', labelNames: ['backup'], samples: per((s) => s.lastVerified?.size) },
    {
      name: 'deckhand_backup_last_duration_seconds',
      help: 'Duration of the last verified backup, verification included',
      labelNames: ['backup'],
      samples: per((s) => (s.lastVerified?.finishedAt === undefined ? undefined : (s.lastVerified.finishedAt - s.lastVerified.startedAt) / 1000)),
    },
    { name: 'deckhand_backup_failures_total', help: 'Backup runs that failed or were interrupted', kind: 'counter', labelNames: ['backup'], samples: per((s) => s.failuresTotal) },
  ];
}

export function backupStatus(configs: readonly BackupConfig[], summaries: Summaries, running: (name: string) => boolean, now: number): BackupStatusInfo[] {
  const checks = healthChecks(configs, summaries, now);
  return configs.map((c) => {
    const s = summaries.get(c.name);
    const check = checks[`backup:${c.name}`]?.[0];
    const next = nextRunAfter(c.schedule, now);
    return {
      name: c.name,
      schedule: c.schedule,
      source: c.source.service ? `service ${c.source.service}` : redactUrl(c.source.url!),
      database: c.source.database,
      check: check?.status ?? 'pass',
      ...(check?.output ? { output: check.output } : {}),
      running: running(c.name),
      ...(next !== null ? { nextRunAt: new Date(next).toISOString() } : {}),
      ...(s?.lastRun ? { lastRun: backupInfo(s.lastRun) } : {}),
      ...(s?.lastVerified ? { lastVerified: backupInfo(s.lastVerified) } : {}),
      failuresTotal: s?.failuresTotal ?? 0,
    };
  });
}
