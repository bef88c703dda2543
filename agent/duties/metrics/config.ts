import * as z from 'zod';
import { duration } from '../../config/primitives.js';

const atLeast = (min: number, label: string) => duration.refine((ms) => ms >= min, { error: `must be at least ${label}` });

export const metricsConfigSchema = z
  .strictObject({
    interval: duration.refine((ms) => ms >= 1000 && ms <= 3_600_000, { error: 'must be from 1s to 1h' }).prefault('10s'),
    retention: z
      .strictObject({
        raw: atLeast(120_000, '2m').prefault('24h'),
        minute: atLeast(7_200_000, '2h').prefault('7d'),
        hour: atLeast(172_800_000, '2d').prefault('90d'),
      })
      .prefault({}),
  })
  .prefault({});

export type MetricsConfig = z.output<typeof metricsConfigSchema>;
