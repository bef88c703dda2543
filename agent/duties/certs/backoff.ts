// How long to wait after failed renewal attempts. Pure: the duty keeps, per
// certificate, the list of failed attempts since its last success (oldest
// first, cleared on success), and asks here when the next attempt may start.
// The list is persisted, so a restart keeps the wait: restarting never
// hammers the CA.
//
// The rules:
//  1. Backoff: after n consecutive failed attempts, wait 2^(n−1) minutes
//     from the newest, capped at 6 h: 1, 2, 4, 8, 16, 32, 64, 128, 256 min,
//     then 6 h for the 10th failure and every one after it.
//  2. Failed validations: Let's Encrypt allows 5 failed authorizations per
//     domain per account per hour. An attempt is held while it could be the
//     6th failed validation within a sliding hour for any of the
//     certificate's domains: until the 5th newest failed validation of that
//     domain is an hour old. (Let's Encrypt refills that limit one every 12
//     minutes; a sliding hour is stricter, so it never trips it.) Domains
//     compare case-insensitively.
//  3. A Retry-After the CA sent with the newest failure (rate limited, 503)
//     is honoured, up to 7 days from that failure. (An older one has passed:
//     the newest attempt waited for it.)
//  4. "Newest" is the last entry of the list (the order attempts were made),
//     not the largest timestamp; an entry dated after now (the clock moved
//     back) counts as made now, so a clock jump never stretches a wait.
//  5. pruneFailures keeps what can still change an answer: the 10 newest
//     entries (rule 1 no longer grows after 10, rule 3 reads the newest) and
//     entries with a failed validation inside the last hour (rule 2).
import { HOUR_MS, MINUTE_MS } from './plan.js';

export const BACKOFF_FIRST_MS = MINUTE_MS;
export const BACKOFF_MAX_MS = 6 * HOUR_MS;
/** The failure count from which the backoff stays at its cap. */
export const BACKOFF_CAPPED_AFTER = 10;
export const VALIDATION_FAILURES_PER_HOUR = 5;
export const VALIDATION_WINDOW_MS = HOUR_MS;
export const RETRY_AFTER_MAX_MS = 7 * 24 * HOUR_MS;

export interface FailedAttempt {
  at: number;
  /** The domains whose validation (authorization) failed in this attempt; empty or absent when it failed elsewhere. */
  failedValidations?: readonly string[];
  /** A Retry-After the CA answered with, in milliseconds from `at`. */
  retryAfterMs?: number;
}

/** Rule 1's wait after `failures` consecutive failures (0 for none). */
export function backoffDelay(failures: number): number {
  if (failures <= 0) return 0;
  if (failures >= BACKOFF_CAPPED_AFTER) return BACKOFF_MAX_MS;
  return Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (failures - 1));
}

const clampAt = (a: FailedAttempt, now: number) => Math.min(a.at, now);

/**
 * Rule 2 alone: when the next attempt stops risking a 6th failed validation
 * within an hour for one of `domains` (every domain in the history when
 * omitted); at or before now when nothing holds it.
 */
export function validationLimitUntil(history: readonly FailedAttempt[], now: number, domains?: readonly string[]): number {
  const wanted = domains ? new Set(domains.map((d) => d.toLowerCase())) : undefined;
  const byDomain = new Map<string, number[]>();
  for (const a of history) {
    for (const d of a.failedValidations ?? []) {
      const name = d.toLowerCase();
      if (wanted && !wanted.has(name)) continue;
      const list = byDomain.get(name) ?? [];
      list.push(clampAt(a, now));
      byDomain.set(name, list);
    }
  }
  let until = -Infinity;
  for (const times of byDomain.values()) {
    if (times.length < VALIDATION_FAILURES_PER_HOUR) continue;
    times.sort((x, y) => y - x);
    until = Math.max(until, times[VALIDATION_FAILURES_PER_HOUR - 1]! + VALIDATION_WINDOW_MS);
  }
  return until;
}

/**
 * When the next attempt may start after the failures in `history` (rules
 * 1-4); `now` when nothing holds it. `domains`: the certificate's domains for
 * rule 2 (default: every domain in the history).
 */
export function nextAttemptAfterFailure(history: readonly FailedAttempt[], now: number, domains?: readonly string[]): number {
  const newest = history[history.length - 1];
  if (!newest) return now;
  const from = clampAt(newest, now);
  let until = from + backoffDelay(history.length);
  if (newest.retryAfterMs !== undefined && Number.isFinite(newest.retryAfterMs)) {
    until = Math.max(until, from + Math.min(RETRY_AFTER_MAX_MS, Math.max(0, newest.retryAfterMs)));
  }
  until = Math.max(until, validationLimitUntil(history, now, domains));
  return Math.max(now, until);
}

/** The entries that can still change nextAttemptAfterFailure's answer (rule 5), in their order. */
export function pruneFailures(history: readonly FailedAttempt[], now: number): FailedAttempt[] {
  const firstKept = Math.max(0, history.length - BACKOFF_CAPPED_AFTER);
  return history.filter((a, i) => {
    if (i >= firstKept) return true;
    return (a.failedValidations?.length ?? 0) > 0 && clampAt(a, now) + VALIDATION_WINDOW_MS > now;
  });
}
