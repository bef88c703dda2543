import { absolutePath, listenAddress, safeName } from '../config/primitives.js';
import * as z from '../validation.js';

const tlsFiles = z.strictObject({ cert: absolutePath, key: absolutePath });
const tlsAcme = z.strictObject({ acme: safeName });

export const apiConfigSchema = z.strictObject({
  listen: z.prefault(listenAddress, '0.0.0.0:7443'),
  tls: z.union([tlsFiles, tlsAcme], {
    error: 'expected either { cert, key } file paths or { acme: NAME } naming a managed certificate',
  }),
});

export type ApiConfig = z.output<typeof apiConfigSchema>;
