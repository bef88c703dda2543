import * as z from 'zod';
import { absolutePath, cronExpression, safeName } from '../../config/primitives.js';

const pgIdentifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/, { error: (i) => `invalid PostgreSQL name "${String(i.input)}"` });

const sourceSchema = z
  .strictObject({
    service: safeName.optional(),
    url: z.string().refine((u) => {
      try {
        return ['postgres:', 'postgresql:'].includes(new URL(u).protocol);
      } catch {
        return false;
      }
    }, { error: 'invalid PostgreSQL URL (expected postgres://user@host:port/db)' }).optional(),
    database: pgIdentifier,
    user: pgIdentifier.optional(),
  })
  .superRefine((s, ctx) => {
    if (!s.service === !s.url) ctx.addIssue({ code: 'custom', message: 'set exactly one of service (pg_dump inside a compose service) or url (pg_dump on the host)' });
  });

export const backupSchema = z.strictObject({
  name: safeName,
  schedule: cronExpression,
  source: sourceSchema,
  dir: absolutePath.optional(),
  retention: z
    .strictObject({ days: z.int().min(1).max(3650).default(30), minKeep: z.int().min(1).max(1000).default(3) })
    .prefault({}),
  verify: z.enum(['read', 'restore']).default('read'),
});

export const backupsConfigSchema = z.array(backupSchema).superRefine((list, ctx) => {
  const seen = new Set<string>();
  list.forEach((b, i) => {
    if (seen.has(b.name)) ctx.addIssue({ code: 'custom', message: `duplicate backup name "${b.name}"`, path: [i, 'name'] });
    seen.add(b.name);
  });
});

export type BackupConfig = z.output<typeof backupSchema>;
