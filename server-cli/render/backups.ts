// How backups read on screen: the `backup list` table, the progress line of
// a running dump, verify or restore, and the line each command ends with.
// A failed or interrupted run is red and says why on the line under it, so
// it cannot be taken for a good one; a deleted file says so.
import type { BackupEvent, BackupInfo, BackupListResult, RestoreInfo } from '../../agent/api/protocol.js';
import type { Palette } from './colour.js';
import { formatBytes, formatRate } from './size.js';
import { renderTable } from './table.js';
import { relativeTime } from './time.js';

/** "950", "12.3k", "1.2M": row counts at a glance. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const units: [number, string][] = [
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [size, unit] of units) {
    if (Math.abs(n) >= size) {
      const v = n / size;
      const fixed = v.toFixed(1);
      // 999.96k would read "1000.0k": one unit up instead.
      if (Number(fixed) >= 1000 && unit !== 'G') return formatCount(Math.sign(n) * 1000 * size);
      return `${Number(fixed) < 100 ? fixed.replace(/\.0$/, '') : Math.round(v)}${unit}`;
    }
  }
  return String(Math.round(n));
}

/** "12 tables, 1.2M rows" from a restore-verified backup's row counts. */
export function describeRows(rows: Record<string, number>): string {
  const tables = Object.keys(rows).length;
  const total = Object.values(rows).reduce((a, b) => a + b, 0);
  return `${tables} ${tables === 1 ? 'table' : 'tables'}, ${formatCount(total)} ${total === 1 ? 'row' : 'rows'}`;
}

/** The VERIFIED cell: "yes", "yes (12 tables, 1.2M rows)" when restored into a throwaway database, "no"; "-" while running or with the file gone. */
export function verifiedCell(p: Palette, b: BackupInfo): string {
  if (b.status === 'running' || b.status === 'missing') return p.dim('-');
  if (!b.verified && b.status !== 'verified') return p.dim('no');
  return b.verify === 'restore' && b.rows ? `yes (${describeRows(b.rows)})` : 'yes';
}

/** The STATUS cell. */
export function statusCell(p: Palette, b: BackupInfo): string {
  switch (b.status) {
    case 'verified':
      return b.sizeDrop ? `${p.green('verified')} ${p.yellow('(size drop)')}` : p.green('verified');
    case 'running':
      return p.cyan('running');
    case 'missing':
      return p.yellow('missing (file deleted)');
    case 'failed':
      return p.red(p.bold('FAILED'));
    case 'interrupted':
      return p.red(p.bold('INTERRUPTED'));
    default:
      return String(b.status);
  }
}

function failedRun(b: BackupInfo): boolean {
  return b.status === 'failed' || b.status === 'interrupted';
}

/** Newest first, as the agent answers; a failed run's error on the line under it, indented. */
export function renderBackups(p: Palette, result: BackupListResult, now: number): string {
  const rows: string[][] = [];
  for (const b of result.backups) {
    const failed = failedRun(b);
    const id = failed ? p.red(String(b.id)) : String(b.id);
    rows.push([id, b.name, relativeTime(b.startedAt, now), b.size !== undefined ? formatBytes(b.size) : '-', verifiedCell(p, b), statusCell(p, b)]);
    // A row of two cells: the second runs on under the rest of the columns.
    if (failed) rows.push(['', p.red(b.error ? `error: ${oneLine(b.error)}` : b.status === 'interrupted' ? 'the run was cut short (the agent stopped?)' : 'error: the agent gave no reason')]);
  }
  return renderTable(rows, { header: ['ID', 'NAME', 'STARTED', 'SIZE', 'VERIFIED', 'STATUS'], headerStyle: p.bold, align: ['right', , , 'right'] });
}

function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, ' | ');
}

/**
 * "dump 412 MiB at 95 MiB/s", "restore 412 MiB of 1.2 GiB (33%) at 95 MiB/s".
 * `step`: the step running, when it is not the one the bytes are counted for
 * (a restore's checksum reads the file as a verify does).
 */
export function progressLine(e: Extract<BackupEvent, { type: 'progress' }>, step: string = e.step): string {
  const of = e.total !== undefined && e.total > 0 ? ` of ${formatBytes(e.total)} (${Math.min(100, Math.floor((e.bytes / e.total) * 100))}%)` : '';
  return `${step} ${formatBytes(e.bytes)}${of} at ${formatRate(e.bytesPerSecond)}`;
}

/**
 * Progress lines for a log: the first, then at most one every `everyMs`.
 * Returns whether to print this one.
 */
export function progressThrottle(everyMs: number): (now: number, step: string) => boolean {
  let last: { at: number; step: string } | undefined;
  return (now, step) => {
    if (last && last.step === step && now - last.at < everyMs) return false;
    last = { at: now, step };
    return true;
  };
}

/** "14.2 s", "31 s", "2 min 5 s", "1 h 3 min": how long a run took, in the end lines. */
export function formatTook(ms: number): string {
  const sec = Math.max(0, ms) / 1000;
  if (sec < 59.95) return `${sec.toFixed(1).replace(/\.0$/, '')} s`;
  const whole = Math.round(sec);
  if (whole < 3600) return `${Math.floor(whole / 60)} min${whole % 60 ? ` ${whole % 60} s` : ''}`;
  const m = Math.floor((whole % 3600) / 60);
  return `${Math.floor(whole / 3600)} h${m ? ` ${m} min` : ''}`;
}

/** "ab12cd34ef56…" */
export function shortSha(sha: string): string {
  return sha.length > 12 ? `${sha.slice(0, 12)}…` : sha;
}

/**
 * The line `backup run` ends with: "backup db 17 verified: 1.2 GiB in 14.2 s
 * (sha256 ab12…)", or "backup db 18 FAILED: <error>"; a size drop adds a
 * warning line.
 */
export function renderRunEnd(p: Palette, b: BackupInfo): string {
  const head = `backup ${b.name} ${b.id}`;
  if (b.status === 'verified') {
    const size = b.size !== undefined ? formatBytes(b.size) : 'size unknown';
    const took = b.durationMs !== undefined ? ` in ${formatTook(b.durationMs)}` : '';
    const sha = b.sha256 ? ` (sha256 ${shortSha(b.sha256)})` : '';
    const rows = b.verify === 'restore' && b.rows ? `; restored for the check: ${describeRows(b.rows)}` : '';
    const lines = [`${head} ${p.green('verified')}: ${size}${took}${sha}${rows}`];
    if (b.sizeDrop) lines.push(`${p.yellow('warning:')} it is under half the size of the verified backup before it; it is kept, but check that the database did not lose data (deckhand backup list ${b.name})`);
    return `${lines.join('\n')}\n`;
  }
  const word = b.status === 'interrupted' ? 'INTERRUPTED' : b.status === 'running' ? 'still running' : 'FAILED';
  return `${head} ${p.red(word)}: ${b.error ? oneLine(b.error) : 'the agent gave no reason'}\n`;
}

export interface RestoreContext {
  /** -H NAME, when given: repeated in the undo command. */
  hostFlag: string;
  /** The restore step had started (for --to: the new database had been created). */
  touched: boolean;
}

function undoCommand(safety: number, c: RestoreContext): string {
  return `deckhand backup restore ${safety} --yes${c.hostFlag}`;
}

/**
 * The line `backup restore` ends with: what went where, how long, and how to
 * undo it; on failure, whether the database was left as it was and which
 * backup holds it as it was before. pg_restore runs in one transaction, so a
 * failed restore leaves the database it replaces as it was; with --to, the
 * new database may be left behind, empty.
 */
export function renderRestoreEnd(p: Palette, r: RestoreInfo, c: RestoreContext): string {
  const took = r.durationMs !== undefined ? ` in ${formatTook(r.durationMs)}` : '';
  const safetyId = r.safetyBackupId;
  if (r.status === 'succeeded') {
    if (r.newDatabase) return `${p.green('restored')} backup ${r.backupId} into the new database ${r.database}${took}; nothing was replaced (to undo, drop ${r.database})\n`;
    const after = safetyId !== undefined ? `; the database before it is backup ${safetyId}: to undo, ${undoCommand(safetyId, c)}` : `; ${p.yellow('no safety backup was taken')}`;
    return `${p.green('restored')} backup ${r.backupId} into ${r.database}${took}${after}\n`;
  }
  const word = r.status === 'interrupted' ? 'INTERRUPTED' : 'FAILED';
  const why = r.error ? oneLine(r.error) : 'the agent gave no reason';
  const into = r.newDatabase ? `the new database ${r.database}` : r.database;
  let state: string;
  if (!r.newDatabase) state = `${r.database} was left as it was`;
  else if (c.touched) state = `no database was replaced; ${r.database} may be left behind, empty: drop it before trying again`;
  else state = `no database was touched`;
  const safety = safetyId !== undefined ? `; the safety backup taken before it is backup ${safetyId}` : '';
  return `restore of backup ${r.backupId} into ${into} ${p.red(word)}: ${why}\n${state}${safety}\n`;
}

export interface RefusalFacts {
  id: number;
  host: string;
  /** --to DATABASE. */
  to?: string;
  /** The backup's configured name and the database it restores into, when the agent said. */
  name?: string;
  database?: string;
  startedAt?: string;
  now?: number;
}

/** Without --yes: what would be replaced, and how to go on. */
export function restoreRefusal(f: RefusalFacts): string {
  const which = f.name ? ` (${f.name}${f.startedAt && f.now !== undefined ? `, ${relativeTime(f.startedAt, f.now)}` : ''})` : '';
  const what = f.to
    ? `restoring backup ${f.id}${which} creates the database ${f.to} on ${f.host} (it must not exist yet) and takes a safety backup first`
    : f.database
      ? `restoring backup ${f.id}${which} replaces database ${f.database} on ${f.host}`
      : `restoring backup ${f.id}${which} replaces its database on ${f.host}`;
  return `${what}; run again with --yes`;
}
