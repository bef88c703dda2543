import * as z from 'zod';
import { absolutePath, duration, httpUrl, safeName } from '../../config/primitives.js';

const relativeFile = z.string().refine((p) => p.length > 0 && !p.startsWith('/') && !p.split('/').includes('..') && !p.includes('\0'), {
  error: (i) => `must be a file name relative to stack.dir, got "${String(i.input)}"`,
});

export const composeProjectName = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, {
  error: (i) => `invalid compose project name "${String(i.input)}" (lowercase letters, digits, "_" and "-", starting with a letter or digit)`,
});

export const stackConfigSchema = z.strictObject({
  project: composeProjectName,
  dir: absolutePath,
  files: z.array(relativeFile).min(1).optional(),
  compose: z.enum(['auto', 'docker compose', 'docker-compose'], {
    error: (i) => `must be auto, "docker compose" or docker-compose, got ${JSON.stringify(i.input)}`,
  }).default('auto'),
  restart: z
    .strictObject({
      backoff: duration.prefault('2s'),
      maxBackoff: duration.prefault('5m'),
      crashloop: z
        .strictObject({
          restarts: z.int().min(1).max(1000).default(5),
          within: duration.prefault('10m'),
        })
        .prefault({}),
    })
    .prefault({})
    .refine((r) => r.maxBackoff >= r.backoff, { error: 'maxBackoff must not be shorter than backoff', path: ['maxBackoff'] }),
  deploy: z
    .strictObject({
      healthTimeout: duration.prefault('120s'),
      stableFor: duration.prefault('10s'),
      probe: z.strictObject({ url: httpUrl(), expect: z.int().min(100).max(599).default(200) }).optional(),
      backupFirst: safeName.optional(),
      migrate: z.strictObject({ service: safeName, command: z.array(z.string()).min(1, { error: 'must be a non-empty argument list' }) }).optional(),
      watch: duration.prefault('2m'),
    })
    .prefault({}),
});

export type StackConfig = z.output<typeof stackConfigSchema>;
