// The certificates duty's judgements, pure: the `certificate:NAME` health
// check (SPEC 4) and the `cert.expiring` state (SPEC 3).
//
// certificate:NAME, first rule that holds:
//  1. No certificate yet: fail when the last attempt to issue one failed
//     (nothing valid can be served), else warn (the first issuance is on its
//     way). No observedValue.
//  2. Expired (now at or past notAfter): fail.
//  3. Under 7 days left, or under 1/20 of the lifetime for certificates that
//     live less than 42 days: fail. Exactly 7 days (or 1/20) left is not under.
//  4. notBefore more than 5 minutes after now: the clock moved back (or the
//     certificate is not valid yet); warn, since clients with a right clock
//     accept it but this host's judgement of it is off.
//  5. Renewal overdue: the last attempt failed, or the planned time passed
//     more than an hour ago (exactly an hour is not overdue): warn.
//  6. Otherwise pass.
// observedValue is the days left, rounded down to one decimal (so a
// certificate that fails for under 7 days never reads 7.0), negative once
// expired; observedUnit "d".
//
// cert.expiring: under 14 days left, or under a third of the lifetime for
// short certificates, "short" being a lifetime under 42 days as in SPEC 4
// (where a third of the lifetime is under 14 days; the two rules meet at 42).
// An expired certificate is expiring; no certificate is not (rule 1 above
// reports that).
import type { CheckResult } from '../../duty.js';
import { DAY_MS, formatLifetime, formatSpan, formatUtc, HOUR_MS, lifetimeOf, MINUTE_MS } from './plan.js';

export const FAIL_DAYS_LEFT_MS = 7 * DAY_MS;
/** Certificates living less than this fail under 1/20 of their lifetime left instead of 7 days. */
export const SHORT_LIFETIME_MS = 42 * DAY_MS;
export const EXPIRING_DAYS_LEFT_MS = 14 * DAY_MS;
export const OVERDUE_GRACE_MS = HOUR_MS;
export const CLOCK_SKEW_TOLERANCE_MS = 5 * MINUTE_MS;

export interface Validity {
  notBefore: number;
  notAfter: number;
}

export interface CertificateCheckInput {
  current?: Validity;
  /** The renewal plan's time (renewalPlan().at). */
  plannedAt?: number;
  /** The newest renewal (or issuance) attempt, if any. */
  lastAttempt?: { at: number; ok: boolean; error?: string };
  now: number;
}

/** Days left, rounded down to one decimal. */
export function daysLeft(c: Validity, now: number): number {
  const v = Math.floor(((c.notAfter - now) / DAY_MS) * 10) / 10;
  return v === 0 ? 0 : v;
}

/** Rule 3's threshold for this certificate. */
export function failThreshold(c: Validity): number {
  const lifetime = lifetimeOf(c);
  return lifetime < SHORT_LIFETIME_MS ? lifetime / 20 : FAIL_DAYS_LEFT_MS;
}

const days = (v: number) => `${v.toFixed(1)} days`;

export function certificateCheck(i: CertificateCheckInput): CheckResult {
  const failed = i.lastAttempt && !i.lastAttempt.ok ? i.lastAttempt : undefined;
  const failure = failed ? `last attempt failed at ${formatUtc(failed.at)} UTC${failed.error ? `: ${failed.error}` : ''}` : '';
  const c = i.current;
  if (!c) {
    return failed ? { status: 'fail', output: `no certificate: ${failure}` } : { status: 'warn', output: 'no certificate issued yet' };
  }
  const left = c.notAfter - i.now;
  const value = daysLeft(c, i.now);
  const observed = { observedValue: value, observedUnit: 'd' };
  const withFailure = failure ? `; ${failure}` : '';
  if (left <= 0) {
    return { status: 'fail', ...observed, output: `expired ${formatSpan(-left)} ago (${formatUtc(c.notAfter)} UTC)${withFailure}` };
  }
  const threshold = failThreshold(c);
  if (left < threshold) {
    const rule = lifetimeOf(c) < SHORT_LIFETIME_MS ? `under 1/20 of its ${formatLifetime(lifetimeOf(c))} lifetime` : 'under 7 days';
    return { status: 'fail', ...observed, output: `${days(value)} left, ${rule}, expires ${formatUtc(c.notAfter)} UTC${withFailure}` };
  }
  if (c.notBefore - i.now > CLOCK_SKEW_TOLERANCE_MS) {
    return { status: 'warn', ...observed, output: `valid only from ${formatUtc(c.notBefore)} UTC, ${formatSpan(c.notBefore - i.now)} from now: the clock moved back?` };
  }
  if (failed) {
    return { status: 'warn', ...observed, output: `renewal overdue: ${failure}; ${days(value)} left` };
  }
  if (i.plannedAt !== undefined && i.now - i.plannedAt > OVERDUE_GRACE_MS) {
    return { status: 'warn', ...observed, output: `renewal overdue: planned for ${formatUtc(i.plannedAt)} UTC, ${formatSpan(i.now - i.plannedAt)} ago; ${days(value)} left` };
  }
  const planned = i.plannedAt !== undefined ? `, renewal planned ${formatUtc(i.plannedAt)} UTC` : '';
  return { status: 'pass', ...observed, output: `${days(value)} left, valid until ${formatUtc(c.notAfter)} UTC${planned}` };
}

/** The `cert.expiring` condition (see the header). */
export function expiringState(i: { current?: Validity; now: number }): boolean {
  const c = i.current;
  if (!c) return false;
  const left = c.notAfter - i.now;
  const lifetime = lifetimeOf(c);
  return lifetime < SHORT_LIFETIME_MS ? left < lifetime / 3 : left < EXPIRING_DAYS_LEFT_MS;
}
