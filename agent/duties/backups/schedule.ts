// Run times of a backup's cron schedule in host local time, computed from
// node-cron's own parse of the fields, so the agent's idea of "when is the
// next run" agrees with the scheduler's. node-cron matches day-of-month AND
// day-of-week (not Vixie cron's OR); so do we. A local time that does not
// exist (the skipped hour of a DST change) is no run time, as in node-cron.
import { parse as parseCron } from 'node-cron';

const MAX_DAYS = 366 * 8; // `0 0 29 2 1` (Feb 29 on a Monday) recurs every 28 years at worst; 8 years covers every leap day.

interface Fields {
  seconds: number[];
  minutes: number[];
  hours: number[];
  days: (number | string)[];
  months: number[];
  weekdays: (number | string)[];
}

function fieldsOf(expr: string): Fields {
  const f = parseCron(expr);
  const asc = (v: number[]) => [...v].sort((a, b) => a - b);
  return { seconds: asc(f.second), minutes: asc(f.minute), hours: asc(f.hour), days: f.dayOfMonth, months: f.month, weekdays: f.dayOfWeek };
}

const lastDayOfMonth = (y: number, m: number) => new Date(Date.UTC(y, m, 0)).getUTCDate();
const weekdayOf = (y: number, m: number, d: number) => new Date(Date.UTC(y, m - 1, d)).getUTCDay();

function nearestWeekday(y: number, m: number, target: number): number {
  const last = lastDayOfMonth(y, m);
  if (target < 1 || target > last) return -1;
  const wd = weekdayOf(y, m, target);
  if (wd === 6) return target === 1 ? target + 2 : target - 1;
  if (wd === 0) return target === last ? target - 2 : target + 1;
  return target;
}

function dayOfMonthMatches(field: readonly (number | string)[], y: number, m: number, d: number): boolean {
  return field.some((v) => {
    if (typeof v === 'number') return v === d;
    if (v === 'L') return d === lastDayOfMonth(y, m);
    const w = /^(\d{1,2}|L)W$/.exec(v);
    if (w) return nearestWeekday(y, m, w[1] === 'L' ? lastDayOfMonth(y, m) : Number(w[1])) === d;
    const off = /^L-(\d{1,2})$/.exec(v);
    if (off) return lastDayOfMonth(y, m) - Number(off[1]) === d;
    return false;
  });
}

function dayOfWeekMatches(field: readonly (number | string)[], y: number, m: number, d: number): boolean {
  const wd = weekdayOf(y, m, d);
  return field.some((v) => {
    if (typeof v === 'number') return v % 7 === wd;
    const nth = /^([0-7])#([1-5])$/.exec(v);
    if (nth) return Number(nth[1]) % 7 === wd && Math.floor((d - 1) / 7) + 1 === Number(nth[2]);
    const last = /^([0-7])L$/i.exec(v);
    if (last) return Number(last[1]) % 7 === wd && d + 7 > lastDayOfMonth(y, m);
    return false;
  });
}

/** The local time, or null when that wall-clock time does not exist on this day (DST gap). */
function localTime(y: number, m: number, d: number, h: number, mi: number, s: number): number | null {
  const t = new Date(y, m - 1, d, h, mi, s, 0);
  const same = t.getFullYear() === y && t.getMonth() === m - 1 && t.getDate() === d && t.getHours() === h && t.getMinutes() === mi && t.getSeconds() === s;
  return same ? t.getTime() : null;
}

/** Run times of one local day, ascending. */
function timesOnDay(f: Fields, y: number, m: number, d: number): number[] {
  if (!f.months.includes(m) || !dayOfMonthMatches(f.days, y, m, d) || !dayOfWeekMatches(f.weekdays, y, m, d)) return [];
  const out: number[] = [];
  for (const h of f.hours) for (const mi of f.minutes) for (const s of f.seconds) {
    const t = localTime(y, m, d, h, mi, s);
    if (t !== null) out.push(t);
  }
  return out.sort((a, b) => a - b);
}

function walk(f: Fields, from: number, direction: 1 | -1): number | null {
  const start = new Date(from);
  for (let i = 0; i < MAX_DAYS; i++) {
    // Local calendar day `i` days from the start (constructed at noon so DST shifts never skip or repeat a day).
    const day = new Date(start.getFullYear(), start.getMonth(), start.getDate() + direction * i, 12);
    const times = timesOnDay(f, day.getFullYear(), day.getMonth() + 1, day.getDate());
    const found = direction === 1 ? times.find((t) => t > from) : times.reverse().find((t) => t <= from);
    if (found !== undefined) return found;
  }
  return null;
}

/** The first run strictly after `from`; null if the schedule never fires (e.g. `0 0 31 2 *`). */
export function nextRunAfter(expr: string, from: number): number | null {
  return walk(fieldsOf(expr), from, 1);
}

/** The last run at or before `at`; null if none within the search range. */
export function previousRunAtOrBefore(expr: string, at: number): number | null {
  return walk(fieldsOf(expr), at, -1);
}

/**
 * The gap between the two consecutive run times around `at`: the last one at
 * or before it and the next one after that. This is the interval a backup
 * taken at `at` is expected to last: for `0 2 * * 1-5`, a Friday backup's is
 * 72 h (to Monday), a Monday backup's 24 h. Null if the schedule never fires.
 */
export function scheduleIntervalAt(expr: string, at: number): number | null {
  const f = fieldsOf(expr);
  const prev = walk(f, at, -1);
  if (prev !== null) {
    const next = walk(f, prev, 1);
    return next === null ? null : next - prev;
  }
  const first = walk(f, at, 1);
  if (first === null) return null;
  const second = walk(f, first, 1);
  return second === null ? null : second - first;
}
