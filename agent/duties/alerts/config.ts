import * as z from 'zod';
import { httpUrl, percent } from '../../config/primitives.js';
import { EVENT_TYPES } from '../../events/catalog.js';

const eventName = z.string().refine((name) => EVENT_TYPES.includes(name), {
  error: (i) => `unknown event "${String(i.input)}" (known: ${EVENT_TYPES.filter((t) => !t.endsWith('.resolved')).join(', ')}, and each condition's ".resolved")`,
});

export const webhookSchema = z.strictObject({
  url: httpUrl(),
  /** Absent: every event. */
  events: z.array(eventName).min(1, { error: 'must list at least one event, or be left out to receive every event' }).optional(),
});

export const alertsConfigSchema = z
  .strictObject({
    webhooks: z.array(webhookSchema).default([]),
    diskLowPercent: percent.default(90),
  })
  .prefault({});

export type AlertsConfig = z.output<typeof alertsConfigSchema>;
export type WebhookConfig = z.output<typeof webhookSchema>;
