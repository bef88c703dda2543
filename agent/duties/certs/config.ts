import * as z from 'zod';
import { absolutePath, duration, httpUrl, listenAddress, safeName } from '../../config/primitives.js';

const hostname = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

const certificateSchema = z.strictObject({
  name: safeName,
  domains: z
    .array(z.string().refine((d) => d.length <= 253 && hostname.test(d), { error: (i) => `invalid domain name "${String(i.input)}"` }))
    .min(1, { error: 'must list at least one domain' }),
  keyType: z.enum(['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-4096']).default('ecdsa-p256'),
  copyTo: absolutePath.optional(),
  reload: z
    .union([
      z.strictObject({ service: safeName, signal: z.string().regex(/^(SIG)?[A-Z0-9]+$/).default('HUP') }),
      z.strictObject({ command: z.array(z.string()).min(1) }),
    ], { error: 'expected { service, signal } or { command: [...] }' })
    .optional(),
  probe: listenAddress.optional(),
});

export const certsConfigSchema = z
  .strictObject({
    email: z.email({ error: (i) => `invalid email address "${String(i.input)}"` }),
    directory: z
      .union([z.enum(['letsencrypt', 'letsencrypt-staging']), httpUrl(['https:', 'http:'])], {
        error: (i) => `must be letsencrypt, letsencrypt-staging or an ACME directory URL, got ${JSON.stringify(i.input)}`,
      })
      .default('letsencrypt'),
    caBundle: absolutePath.optional(),
    challenge: z
      .strictObject({
        type: z.enum(['http-01', 'dns-01']).default('http-01'),
        listen: listenAddress.optional(),
        webroot: absolutePath.optional(),
        hook: absolutePath.optional(),
      })
      .prefault({})
      .superRefine((c, ctx) => {
        if (c.type === 'http-01' && c.listen && c.webroot) ctx.addIssue({ code: 'custom', message: 'set either listen or webroot for http-01, not both', path: ['webroot'] });
        if (c.type === 'http-01' && c.hook) ctx.addIssue({ code: 'custom', message: 'hook is for dns-01 only', path: ['hook'] });
        if (c.type === 'dns-01' && !c.hook) ctx.addIssue({ code: 'custom', message: 'dns-01 needs a hook program', path: ['hook'] });
      }),
    renewBefore: z.union([z.literal('auto'), duration], { error: 'must be auto or a duration like 30d' }).default('auto'),
    profile: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional(),
    certificates: z.array(certificateSchema).default([]),
  })
  .superRefine((certs, ctx) => {
    const seen = new Set<string>();
    certs.certificates.forEach((c, i) => {
      if (seen.has(c.name)) ctx.addIssue({ code: 'custom', message: `duplicate certificate name "${c.name}"`, path: ['certificates', i, 'name'] });
      seen.add(c.name);
      if (certs.challenge.type === 'http-01') {
        c.domains.forEach((d, j) => {
          if (d.startsWith('*.')) ctx.addIssue({ code: 'custom', message: `wildcard "${d}" needs challenge.type dns-01`, path: ['certificates', i, 'domains', j] });
        });
      }
    });
  });

export type CertsConfig = z.output<typeof certsConfigSchema>;
