// When a certificate is renewed, and when the CA is asked about it again.
// Pure: the duty passes the stored certificate, the CA's answers, the clock
// and a random source; it stores what it is told to keep (the chosen ARI
// point) and sets its timers from the answers.
//
// The rules (SPEC 3 "certs" and "Certificates renew...", plus where it is silent):
//  1. No certificate yet: renew now ('missing'). The configured domains
//     (compared as a set, case-insensitively, order and duplicates ignored)
//     or key type differ from the stored certificate's: renew now ('changed').
//  2. `renewBefore` an explicit duration: renew at notAfter − duration
//     ('override'). A duration not shorter than the certificate's whole
//     lifetime would renew every new certificate at once, forever; it is
//     ignored for that certificate and rule 4 applies, saying so.
//  3. `renewBefore: auto` and an ARI window fetched for this certificate (the
//     directory offers renewalInfo): a uniformly random point inside the
//     window, chosen once per window and kept by the caller. The same window
//     again keeps the kept point; a moved window gets a new point. A point is
//     drawn from the part of the window still ahead (RFC 9773 says a point in
//     the past means renew at once; drawing from what is left spreads those
//     renewals over it instead and keeps the plan in the future). A window
//     whose end has passed: renew now, unless a point was kept for it (then
//     that point, already past). A window whose end is not after its start is
//     invalid (RFC 9773 4.2) and ignored: rule 4.
//  4. Otherwise: renew when a third of the lifetime (notAfter − notBefore) is
//     left, half of it for lifetimes of 10 days or less ('lifetime').
//  5. Always, whatever rules 2 and 3 say: under 1/20 of the lifetime left
//     means now ('urgent'; the plan's own time when that is earlier, so an
//     overdue plan still shows as overdue); a planned time later than the point where 1/20 is
//     left is brought forward to that point ('urgent').
//  6. Clock jumps: plans are points on the certificate's own timeline
//     (notBefore/notAfter, the window), so a clock that jumps only changes
//     whether they are due, never where they are; a kept point is never
//     moved by a jump.
//
// The ARI refresh (how often renewalInfo is asked for):
//  - never fetched: now;
//  - otherwise 6 h after the last answer, or the answer's Retry-After,
//    clamped to [1 min, 12 h] so the window is checked at least twice a day
//    (SPEC) and a zero or tiny Retry-After never makes the agent poll;
//  - a fetch that failed (no usable answer): again after 1 h, or its
//    Retry-After with the same clamps;
//  - a last fetch dated after now (the clock moved back) counts as now.
import type { CertsConfig } from './config.js';

export type KeyType = CertsConfig['certificates'][number]['keyType'];

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** Lifetimes up to this renew with half of them left instead of a third. */
export const SHORT_RENEW_LIFETIME_MS = 10 * DAY_MS;

export interface Window {
  start: number;
  end: number;
}

export interface StoredCertificate {
  domains: readonly string[];
  keyType: KeyType;
  notBefore: number;
  notAfter: number;
}

/** An ARI point chosen inside `window`; the caller keeps it with the certificate. */
export interface ChosenPoint {
  window: Window;
  at: number;
}

export interface RenewalPlanInput {
  /** What the config asks for. */
  wanted: { domains: readonly string[]; keyType: KeyType };
  /** The stored certificate; undefined when there is none yet. */
  current?: StoredCertificate;
  /** `certs.renewBefore`: 'auto' or milliseconds. */
  renewBefore: 'auto' | number;
  /** Only when the directory offers renewalInfo and a window was fetched for `current`. */
  ari?: { window: Window; chosen?: ChosenPoint };
  now: number;
  /** In [0, 1). */
  random: () => number;
}

export type RenewalReason = 'ari' | 'lifetime' | 'override' | 'urgent' | 'missing' | 'changed';

export interface RenewalPlan {
  at: number;
  reason: RenewalReason;
  /** The ARI window the plan follows (also when rule 5 overrode it). */
  window?: Window;
  /** The point to keep for the window; equal to the input's when it was kept. */
  chosen?: ChosenPoint;
  explanation: string;
}

// ---------------------------------------------------------------------------
// formatting

const pad = (n: number) => String(n).padStart(2, '0');

/** "2026-03-01 10:00" (UTC). */
export function formatUtc(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

const sameUtcDay = (a: number, b: number) => formatUtc(a).slice(0, 10) === formatUtc(b).slice(0, 10);
/** `ms` as "HH:MM" when on the same UTC day as `ref`, else in full. */
const formatNear = (ms: number, ref: number) => (sameUtcDay(ms, ref) ? formatUtc(ms).slice(11) : formatUtc(ms));

/** "90-day", "160-hour", "6.5-day": whole days when within an hour of one, else hours under 10 days. */
export function formatLifetime(ms: number): string {
  const days = ms / DAY_MS;
  const whole = Math.round(days);
  if (whole > 0 && Math.abs(ms - whole * DAY_MS) <= HOUR_MS) return `${whole}-day`;
  if (ms < SHORT_RENEW_LIFETIME_MS) return `${Math.round(ms / HOUR_MS)}-hour`;
  return `${days.toFixed(1)}-day`;
}

export function formatWindow(w: Window): string {
  return `${formatUtc(w.start)}–${formatNear(w.end, w.start)} UTC`;
}

/** "3d 4h", "5h 12m", "40m", for a span of time. */
export function formatSpan(ms: number): string {
  const m = Math.max(0, Math.round(ms / MINUTE_MS));
  const d = Math.floor(m / 1440);
  const h = Math.floor((m % 1440) / 60);
  const min = m % 60;
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return min > 0 ? `${h}h ${min}m` : `${h}h`;
  return `${min}m`;
}

// ---------------------------------------------------------------------------
// the rules

const domainSet = (ds: readonly string[]) => [...new Set(ds.map((d) => d.toLowerCase()))].sort();

/** Whether the configured domains or key type differ from the certificate's. */
export function certificateChanged(wanted: RenewalPlanInput['wanted'], current: StoredCertificate): boolean {
  const a = domainSet(wanted.domains);
  const b = domainSet(current.domains);
  return wanted.keyType !== current.keyType || a.length !== b.length || a.some((d, i) => d !== b[i]);
}

export const lifetimeOf = (c: { notBefore: number; notAfter: number }) => c.notAfter - c.notBefore;

/** Rule 4: the fraction of the lifetime left at which to renew. */
export const renewFraction = (lifetime: number) => (lifetime <= SHORT_RENEW_LIFETIME_MS ? 1 / 2 : 1 / 3);

/** Rule 5: the point from which under 1/20 of the lifetime is left. */
export const urgentPoint = (c: { notBefore: number; notAfter: number }) => c.notAfter - lifetimeOf(c) / 20;

export const sameWindow = (a: Window, b: Window) => a.start === b.start && a.end === b.end;
export const validWindow = (w: Window) => Number.isFinite(w.start) && Number.isFinite(w.end) && w.end > w.start;

/**
 * Rule 3's point: the kept one when the window is the same (and the point
 * inside it), else a uniform draw from [max(start, now), end). Undefined when the window ended before
 * any point was kept for it.
 */
export function chooseAriPoint(window: Window, kept: ChosenPoint | undefined, now: number, random: () => number): ChosenPoint | undefined {
  if (kept && sameWindow(kept.window, window) && kept.at >= window.start && kept.at < window.end) return kept;
  const from = Math.max(window.start, now);
  if (from >= window.end) return undefined;
  const r = Math.min(Math.max(random(), 0), 1);
  const at = Math.min(window.end - 1, from + Math.floor(r * (window.end - from)));
  return { window: { start: window.start, end: window.end }, at };
}

function lifetimePlan(c: StoredCertificate, prefix = ''): RenewalPlan {
  const lifetime = lifetimeOf(c);
  const fraction = renewFraction(lifetime);
  const at = c.notAfter - lifetime * fraction;
  const share = fraction === 1 / 2 ? 'half' : 'a third';
  return { at, reason: 'lifetime', explanation: `${prefix}${share} of its ${formatLifetime(lifetime)} lifetime left, at ${formatUtc(at)} UTC` };
}

function rulePlan(i: RenewalPlanInput, c: StoredCertificate): RenewalPlan {
  if (typeof i.renewBefore === 'number') {
    const lifetime = lifetimeOf(c);
    const span = formatSpan(i.renewBefore);
    if (i.renewBefore >= lifetime) return lifetimePlan(c, `renewBefore ${span} is not shorter than the ${formatLifetime(lifetime)} lifetime, so: `);
    const at = c.notAfter - i.renewBefore;
    return { at, reason: 'override', explanation: `${span} before expiry (renewBefore), at ${formatUtc(at)} UTC` };
  }
  if (i.ari && validWindow(i.ari.window)) {
    const window = i.ari.window;
    const chosen = chooseAriPoint(window, i.ari.chosen, i.now, i.random);
    if (!chosen) return { at: i.now, reason: 'ari', window, explanation: `ARI window ${formatWindow(window)} has ended, renew now` };
    return { at: chosen.at, reason: 'ari', window, chosen, explanation: `ARI window ${formatWindow(window)}, chosen ${formatNear(chosen.at, window.start)}` };
  }
  return lifetimePlan(c);
}

export function renewalPlan(i: RenewalPlanInput): RenewalPlan {
  const c = i.current;
  if (!c) return { at: i.now, reason: 'missing', explanation: 'no certificate yet, issue now' };
  if (certificateChanged(i.wanted, c)) {
    const what = i.wanted.keyType !== c.keyType ? `key type ${c.keyType} → ${i.wanted.keyType}` : `domains ${domainSet(c.domains).join(', ')} → ${domainSet(i.wanted.domains).join(', ')}`;
    return { at: i.now, reason: 'changed', explanation: `configuration changed (${what}), renew now` };
  }
  const plan = rulePlan(i, c);
  const urgent = urgentPoint(c);
  const lifetime = formatLifetime(lifetimeOf(c));
  if (i.now > urgent) {
    return { ...plan, at: Math.min(plan.at, i.now), reason: 'urgent', explanation: `under 1/20 of its ${lifetime} lifetime left, renew now (was: ${plan.explanation})` };
  }
  if (plan.at > urgent) {
    return { ...plan, at: urgent, reason: 'urgent', explanation: `when 1/20 of its ${lifetime} lifetime is left, at ${formatUtc(urgent)} UTC (earlier than: ${plan.explanation})` };
  }
  return plan;
}

// ---------------------------------------------------------------------------
// renewalInfo refresh

export const ARI_DEFAULT_REFRESH_MS = 6 * HOUR_MS;
export const ARI_MIN_REFRESH_MS = MINUTE_MS;
export const ARI_MAX_REFRESH_MS = 12 * HOUR_MS;
export const ARI_ERROR_REFRESH_MS = HOUR_MS;

export interface AriRefreshInput {
  /** When the last renewalInfo request was answered (or failed); undefined when never. */
  lastFetchAt?: number;
  /** Whether that request failed (network error, non-2xx, unparseable body). */
  lastFailed?: boolean;
  /** Its Retry-After, in milliseconds from the answer (see parseRetryAfter). */
  retryAfterMs?: number;
  now: number;
}

/** When to ask the CA for renewalInfo again (see the header for the clamps). */
export function ariRefresh(i: AriRefreshInput): number {
  if (i.lastFetchAt === undefined) return i.now;
  const from = Math.min(i.lastFetchAt, i.now);
  const base = i.lastFailed ? ARI_ERROR_REFRESH_MS : ARI_DEFAULT_REFRESH_MS;
  const wanted = i.retryAfterMs !== undefined && Number.isFinite(i.retryAfterMs) ? i.retryAfterMs : base;
  return from + Math.min(ARI_MAX_REFRESH_MS, Math.max(ARI_MIN_REFRESH_MS, wanted));
}

/**
 * A Retry-After header (delay-seconds or an HTTP-date, RFC 9110 10.2.3) as
 * milliseconds from `now`; undefined when absent or malformed. A date in the
 * past is 0 (the clamps above then apply).
 */
export function parseRetryAfter(header: string | null | undefined, now: number): number | undefined {
  if (header === null || header === undefined) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/[a-z]/i.test(text)) return undefined;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

// ---------------------------------------------------------------------------
// the next step

/** Whether to start a renewal now: the plan is due and no failure backoff holds it. */
export function dueNow(plan: Pick<RenewalPlan, 'at'>, backoffUntil: number | undefined, now: number): boolean {
  return plan.at <= now && (backoffUntil === undefined || backoffUntil <= now);
}

/** When the next renewal attempt may start: the later of the plan and the backoff. */
export function nextAttemptAt(plan: Pick<RenewalPlan, 'at'>, backoffUntil: number | undefined): number {
  return backoffUntil === undefined ? plan.at : Math.max(plan.at, backoffUntil);
}
