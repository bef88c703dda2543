// Every event type the agent can emit. Webhook filters are checked against
// this list at config load, so a typo is a start-up error, not a silent gap.

/** Conditions: raised on a change of state, and cleared with `<type>.resolved`. */
export const CONDITION_TYPES = [
  'backup.failed',
  'backup.size_drop',
  'cert.renew_failed',
  'cert.expiring',
  'cert.served_mismatch',
  'service.crashloop',
  'service.down',
  'disk.low',
  'docker.unreachable',
] as const;

/** One-off happenings. */
export const HAPPENING_TYPES = [
  'agent.started',
  'agent.stopping',
  'agent.error',
  'deploy.started',
  'deploy.succeeded',
  'deploy.failed',
  'deploy.rolled_back',
  'backup.succeeded',
  'backup.restored',
  'backup.restore_failed',
  'cert.renewed',
  'service.restarted',
  'audit',
] as const;

export type ConditionType = (typeof CONDITION_TYPES)[number];
export type EventType = ConditionType | `${ConditionType}.resolved` | (typeof HAPPENING_TYPES)[number];

export const EVENT_TYPES: readonly string[] = [
  ...CONDITION_TYPES,
  ...CONDITION_TYPES.map((t) => `${t}.resolved`),
  ...HAPPENING_TYPES,
];

export type Severity = 'info' | 'warning' | 'critical';
