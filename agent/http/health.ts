// The /health document (draft-inadarei-api-health-check): every duty's
// checks, from the state it keeps; the worst one is the overall status.
import type { CheckStatus, Duty, HealthChecks } from '../duty.js';
import { worstStatus } from '../duty.js';

export interface HealthDocument {
  status: CheckStatus;
  version: string;
  serviceId: string;
  checks: HealthChecks;
}

export function healthDocument(duties: readonly Duty[], version: string, serviceId: string): HealthDocument {
  const checks: HealthChecks = {};
  for (const duty of duties) Object.assign(checks, duty.checks?.());
  const status = worstStatus(Object.values(checks).flatMap((list) => list.map((c) => c.status)));
  return { status, version, serviceId, checks };
}
