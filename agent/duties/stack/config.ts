import { absolutePath, duration, httpUrl, positiveDuration, safeName } from '../../config/primitives.js';
import * as z from '../../validation.js';

const relativeFile = z.string().check(
  z.refine((p: string) => p.length > 0 && !p.startsWith('/') && !p.split('/').includes('..') && !p.includes('\0'), {
    error: (i) => `must be a file name relative to stack.dir, got "${String(i.input)}"`,
  }),
);

export const composeProjectName = z.string().check(
  z.regex(/^[a-z0-9][a-z0-9_-]*$/, {
    error: (i) => `invalid compose project name "${String(i.input)}" (lowercase letters, digits, "_" and "-", starting with a letter or digit)`,
  }),
);

const restartSchema = z
  .prefault(
    z.strictObject({
      backoff: z.prefault(positiveDuration('2s'), '2s'),
      maxBackoff: z.prefault(positiveDuration('5m'), '5m'),
      crashloop: z.prefault(
        z.strictObject({
          restarts: z._default(z.int().check(z.gte(1), z.lte(1000)), 5),
          within: z.prefault(positiveDuration('10m'), '10m'),
        }),
        {},
      ),
    }),
    {},
  )
  // A zero is already refused on its own key; saying it is shorter too would be noise.
  .check(z.refine((r) => r.maxBackoff === 0 || r.maxBackoff >= r.backoff, { error: 'maxBackoff must not be shorter than backoff', path: ['maxBackoff'] }));

const deploySchema = z.prefault(
  z.strictObject({
    healthTimeout: z.prefault(positiveDuration('120s'), '120s'),
    // 0s: a service without a healthcheck passes the gate once it runs.
    stableFor: z.prefault(duration, '10s'),
    probe: z.optional(z.strictObject({ url: httpUrl(), expect: z._default(z.int().check(z.gte(100), z.lte(599)), 200) })),
    backupFirst: z.optional(safeName),
    migrate: z.optional(
      z.strictObject({ service: safeName, command: z.array(z.string()).check(z.minLength(1, { error: 'must be a non-empty argument list' })) }),
    ),
    // 0s: no watch window; the deploy is good once the gate passes.
    watch: z.prefault(duration, '2m'),
  }),
  {},
);

export const stackConfigSchema = z.strictObject({
  project: composeProjectName,
  dir: absolutePath,
  files: z.optional(z.array(relativeFile).check(z.minLength(1))),
  compose: z._default(
    z.enum(['auto', 'docker compose', 'docker-compose'], {
      error: (i) => `must be auto, "docker compose" or docker-compose, got ${JSON.stringify(i.input)}`,
    }),
    'auto',
  ),
  restart: restartSchema,
  deploy: deploySchema,
});

export type StackConfig = z.output<typeof stackConfigSchema>;
