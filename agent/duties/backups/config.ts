import { absolutePath, cronExpression, safeName } from '../../config/primitives.js';
import * as z from '../../validation.js';

const pgIdentifier = z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/, { error: (i) => `invalid PostgreSQL name "${String(i.input)}"` }));

const postgresUrl = z.string().check(
  z.refine(
    (u: string) => {
      try {
        return ['postgres:', 'postgresql:'].includes(new URL(u).protocol);
      } catch {
        return false;
      }
    },
    { error: 'invalid PostgreSQL URL (expected postgres://user@host:port/db)' },
  ),
);

const sourceSchema = z
  .strictObject({
    service: z.optional(safeName),
    url: z.optional(postgresUrl),
    database: pgIdentifier,
    user: z.optional(pgIdentifier),
  })
  .check(
    z.superRefine((s, ctx) => {
      if (!s.service === !s.url) ctx.addIssue({ code: 'custom', message: 'set exactly one of service (pg_dump inside a compose service) or url (pg_dump on the host)' });
    }),
  );

export const backupSchema = z.strictObject({
  name: safeName,
  schedule: cronExpression,
  source: sourceSchema,
  dir: z.optional(absolutePath),
  retention: z.prefault(
    z.strictObject({
      days: z._default(z.int().check(z.gte(1), z.lte(3650)), 30),
      minKeep: z._default(z.int().check(z.gte(1), z.lte(1000)), 3),
    }),
    {},
  ),
  verify: z._default(z.enum(['read', 'restore']), 'read'),
});

export const backupsConfigSchema = z.array(backupSchema).check(
  z.superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((b, i) => {
      if (seen.has(b.name)) ctx.addIssue({ code: 'custom', message: `duplicate backup name "${b.name}"`, path: [i, 'name'] });
      seen.add(b.name);
    });
  }),
);

export type BackupConfig = z.output<typeof backupSchema>;
