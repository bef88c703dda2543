import { httpUrl, percent } from '../../config/primitives.js';
import { EVENT_TYPES } from '../../events/catalog.js';
import * as z from '../../validation.js';

const eventName = z.string().check(
  z.refine((name: string) => EVENT_TYPES.includes(name), {
    error: (i) => `unknown event "${String(i.input)}" (known: ${EVENT_TYPES.filter((t) => !t.endsWith('.resolved')).join(', ')}, and each condition's ".resolved")`,
  }),
);

export const webhookSchema = z.strictObject({
  url: httpUrl(),
  /** Absent: every event. */
  events: z.optional(z.array(eventName).check(z.minLength(1, { error: 'must list at least one event, or be left out to receive every event' }))),
});

export const alertsConfigSchema = z.prefault(
  z.strictObject({
    webhooks: z._default(z.array(webhookSchema), []),
    diskLowPercent: z._default(percent, 90),
  }),
  {},
);

export type AlertsConfig = z.output<typeof alertsConfigSchema>;
export type WebhookConfig = z.output<typeof webhookSchema>;
