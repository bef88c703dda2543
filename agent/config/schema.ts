// The whole agent.yaml: each duty contributes its own section's schema; this
// file only assembles them and checks the references between sections.
import { hostname } from 'node:os';
import { apiConfigSchema } from '../api/config.js';
import { alertsConfigSchema } from '../duties/alerts/config.js';
import { backupsConfigSchema } from '../duties/backups/config.js';
import { certsConfigSchema } from '../duties/certs/config.js';
import { metricsConfigSchema } from '../duties/metrics/config.js';
import { stackConfigSchema } from '../duties/stack/config.js';
import { healthConfigSchema } from '../http/config.js';
import * as z from '../validation.js';
import { absolutePath, quote } from './primitives.js';

export const DEFAULT_DATA_DIR = '/var/lib/deckhand';

const sections = z
  .strictObject({
    host: z.prefault(
      z.strictObject({
        name: z.optional(z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, { error: (i) => `invalid host name ${quote(String(i.input))}` }))),
      }),
      {},
    ),
    dataDir: z._default(absolutePath, DEFAULT_DATA_DIR),
    health: healthConfigSchema,
    api: z.optional(apiConfigSchema),
    stack: z.optional(stackConfigSchema),
    certs: z.optional(certsConfigSchema),
    backups: z._default(backupsConfigSchema, []),
    metrics: metricsConfigSchema,
    alerts: alertsConfigSchema,
  })
  .check(
    z.superRefine((cfg, ctx) => {
      const backupNames = new Set(cfg.backups.map((b) => b.name));
      cfg.backups.forEach((b, i) => {
        if (b.source.service && !cfg.stack) {
          ctx.addIssue({ code: 'custom', message: `backup source service ${quote(b.source.service)} needs a stack section (or use source.url)`, path: ['backups', i, 'source', 'service'] });
        }
        if (b.verify === 'restore' && !b.source.service) {
          // The throwaway restore runs in a container of the service's own image: a URL names no image.
          ctx.addIssue({ code: 'custom', message: 'verify: restore needs source.service (the restore runs in a throwaway container of its image); use verify: read with source.url', path: ['backups', i, 'verify'] });
        }
      });
      const backupFirst = cfg.stack?.deploy.backupFirst;
      if (backupFirst && !backupNames.has(backupFirst)) {
        ctx.addIssue({ code: 'custom', message: `no backup named ${quote(backupFirst)} in backups`, path: ['stack', 'deploy', 'backupFirst'] });
      }
      cfg.certs?.certificates.forEach((c, i) => {
        if (c.reload && 'service' in c.reload && !cfg.stack) {
          ctx.addIssue({ code: 'custom', message: `reload of service ${quote(c.reload.service)} needs a stack section (or use reload.command)`, path: ['certs', 'certificates', i, 'reload', 'service'] });
        }
      });
      const certNames = new Set(cfg.certs?.certificates.map((c) => c.name) ?? []);
      if (cfg.api && 'acme' in cfg.api.tls && !certNames.has(cfg.api.tls.acme)) {
        ctx.addIssue({ code: 'custom', message: `no certificate named ${quote(cfg.api.tls.acme)} in certs.certificates`, path: ['api', 'tls', 'acme'] });
      }
    }),
  );

export const agentConfigSchema = z.pipe(
  sections,
  z.transform((cfg: z.output<typeof sections>) => ({ ...cfg, host: { name: cfg.host.name ?? hostname() } })),
);

export type AgentConfig = z.output<typeof agentConfigSchema>;
