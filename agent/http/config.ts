import * as z from 'zod';
import { listenAddress } from '../config/primitives.js';

export const healthConfigSchema = z
  .strictObject({
    listen: listenAddress.prefault('127.0.0.1:7070'),
  })
  .prefault({});

export type HealthConfig = z.output<typeof healthConfigSchema>;
