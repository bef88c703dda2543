import { listenAddress } from '../config/primitives.js';
import * as z from '../validation.js';

export const healthConfigSchema = z.prefault(
  z.strictObject({
    listen: z.prefault(listenAddress, '127.0.0.1:7070'),
  }),
  {},
);

export type HealthConfig = z.output<typeof healthConfigSchema>;
