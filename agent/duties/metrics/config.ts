import { duration } from '../../config/primitives.js';
import * as z from '../../validation.js';

const within = (min: number, max: number, error: string) => duration.check(z.refine((ms: number) => ms >= min && ms <= max, { error }));
const atLeast = (min: number, label: string) => within(min, Infinity, `must be at least ${label}`);

export const metricsConfigSchema = z.prefault(
  z.strictObject({
    interval: z.prefault(within(1000, 3_600_000, 'must be from 1s to 1h'), '10s'),
    retention: z.prefault(
      z.strictObject({
        raw: z.prefault(atLeast(120_000, '2m'), '24h'),
        minute: z.prefault(atLeast(7_200_000, '2h'), '7d'),
        hour: z.prefault(atLeast(172_800_000, '2d'), '90d'),
      }),
      {},
    ),
  }),
  {},
);

export type MetricsConfig = z.output<typeof metricsConfigSchema>;
