// What the certificates duty shows, from kept state only: /health
// `certificate:NAME`, the Prometheus gauges, cert.list and status.get.
import type { CertificateInfo } from '../../api/protocol.js';
import type { CheckResult, GaugeSpec, HealthChecks } from '../../duty.js';
import { certificateCheck, daysLeft } from './checks.js';
import type { StoredPair } from './pair.js';
import type { RenewalPlan } from './plan.js';
import type { CertState } from './state.js';

export interface CertView {
  name: string;
  domains: readonly string[];
  keyType: string;
  current: StoredPair | null;
  plan?: RenewalPlan;
  backoffUntil?: number;
  state: CertState;
  renewing: boolean;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function checkOf(v: CertView, now: number): CheckResult {
  const c = v.current;
  return certificateCheck({
    ...(c ? { current: { notBefore: c.notBefore.getTime(), notAfter: c.notAfter.getTime() } } : {}),
    ...(v.plan ? { plannedAt: Math.max(v.plan.at, v.backoffUntil ?? 0) } : {}),
    ...(v.state.lastAttempt ? { lastAttempt: v.state.lastAttempt } : {}),
    now,
  });
}

export function certChecks(views: readonly CertView[], now: number): HealthChecks {
  const out: HealthChecks = {};
  for (const v of views) out[`certificate:${v.name}`] = [checkOf(v, now)];
  return out;
}

export function certInfo(v: CertView, now: number): CertificateInfo {
  const c = v.current;
  const check = checkOf(v, now);
  const next = v.plan ? Math.max(v.plan.at, v.backoffUntil ?? 0) : undefined;
  const s = v.state;
  const sameDomains = c && [...c.domains].sort().join(',') === [...v.domains].map((d) => d.toLowerCase()).sort().join(',');
  return {
    name: v.name,
    domains: [...v.domains],
    ...(c && !sameDomains ? { issuedFor: c.domains } : {}),
    keyType: v.keyType,
    ...(c
      ? {
          issuer: c.issuer,
          serial: c.serial,
          fingerprint256: c.fingerprint256,
          notBefore: iso(c.notBefore.getTime()),
          notAfter: iso(c.notAfter.getTime()),
          daysLeft: daysLeft({ notBefore: c.notBefore.getTime(), notAfter: c.notAfter.getTime() }, now),
        }
      : {}),
    ...(next !== undefined ? { nextRenewal: iso(next) } : {}),
    ...(v.plan ? { reason: v.plan.reason, explanation: v.plan.explanation } : {}),
    ...(v.plan?.window ? { ariWindow: { start: iso(v.plan.window.start), end: iso(v.plan.window.end) } } : {}),
    check: check.status,
    ...(check.output ? { output: check.output } : {}),
    renewing: v.renewing,
    ...(s.lastAttempt ? { lastAttempt: { at: iso(s.lastAttempt.at), ok: s.lastAttempt.ok, trigger: s.lastAttempt.trigger, ...(s.lastAttempt.error ? { error: s.lastAttempt.error } : {}) } } : {}),
    ...(s.lastAttempt && !s.lastAttempt.ok && s.lastAttempt.error ? { lastError: s.lastAttempt.error } : {}),
    failures: s.failures.length,
    ...(v.backoffUntil !== undefined && v.backoffUntil > now ? { backoffUntil: iso(v.backoffUntil) } : {}),
    ...(s.probe ? { probe: { at: iso(s.probe.at), ok: s.probe.ok, detail: s.probe.detail } } : {}),
  };
}

export function certGauges(views: () => readonly CertView[]): GaugeSpec[] {
  return [
    {
      name: 'deckhand_certificate_expiry_timestamp_seconds',
      help: 'When the stored certificate expires (notAfter), Unix seconds.',
      labelNames: ['name'],
      samples: () => views().flatMap((v) => (v.current ? [{ labels: { name: v.name }, value: Math.floor(v.current.notAfter.getTime() / 1000) }] : [])),
    },
    {
      name: 'deckhand_certificate_next_renewal_timestamp_seconds',
      help: 'When the next renewal attempt is due (the plan, or the backoff after failures when later), Unix seconds.',
      labelNames: ['name'],
      samples: () => views().flatMap((v) => (v.plan ? [{ labels: { name: v.name }, value: Math.floor(Math.max(v.plan.at, v.backoffUntil ?? 0) / 1000) }] : [])),
    },
    {
      name: 'deckhand_certificate_renewal_failures',
      help: 'Failed renewal attempts since the last success.',
      labelNames: ['name'],
      samples: () => views().map((v) => ({ labels: { name: v.name }, value: v.state.failures.length })),
    },
  ];
}
