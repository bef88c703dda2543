import { isIP } from 'node:net';
import { absolutePath, httpUrl, listenAddress, positiveDuration, safeName } from '../../config/primitives.js';
import * as z from '../../validation.js';

const hostname = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

const domainName = z.string().check(z.refine((d: string) => d.length <= 253 && hostname.test(d), { error: (i) => `invalid domain name "${String(i.input)}"` }));

const certificateSchema = z.strictObject({
  name: safeName,
  domains: z.array(domainName).check(z.minLength(1, { error: 'must list at least one domain' })),
  keyType: z._default(z.enum(['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-4096']), 'ecdsa-p256'),
  copyTo: z.optional(absolutePath),
  reload: z.optional(
    z.union(
      [
        z.strictObject({ service: safeName, signal: z._default(z.string().check(z.regex(/^(SIG)?[A-Z0-9]+$/)), 'HUP') }),
        z.strictObject({ command: z.array(z.string()).check(z.minLength(1)) }),
      ],
      { error: 'expected { service, signal } or { command: [...] }' },
    ),
  ),
  probe: z.optional(listenAddress),
});

// A DNS server is asked by IP address (node:dns takes no names there), and an
// unspecified address (0.0.0.0, ::) is a listen address, not a server.
const dnsServer = listenAddress.check(
  z.refine((a: { host: string }) => isIP(a.host) !== 0 && a.host !== '0.0.0.0' && a.host !== '::', {
    error: 'must be a DNS server as ip:port, e.g. 127.0.0.1:53 or [::1]:53',
  }),
);

const challengeSchema = z
  .prefault(
    z.strictObject({
      type: z._default(z.enum(['http-01', 'dns-01']), 'http-01'),
      listen: z.optional(listenAddress),
      webroot: z.optional(absolutePath),
      hook: z.optional(absolutePath),
      // dns-01: how long to wait for the hook's TXT record to be visible
      // before the CA is asked to validate (default 2m), and the DNS server
      // asked while waiting (default: the system's resolvers).
      propagationTimeout: z.optional(positiveDuration('2m')),
      resolver: z.optional(dnsServer),
    }),
    {},
  )
  .check(
    z.superRefine((c, ctx) => {
      if (c.type === 'http-01' && c.listen && c.webroot) ctx.addIssue({ code: 'custom', message: 'set either listen or webroot for http-01, not both', path: ['webroot'] });
      if (c.type === 'http-01' && c.hook) ctx.addIssue({ code: 'custom', message: 'hook is for dns-01 only', path: ['hook'] });
      if (c.type === 'http-01' && c.propagationTimeout !== undefined) ctx.addIssue({ code: 'custom', message: 'propagationTimeout is for dns-01 only', path: ['propagationTimeout'] });
      if (c.type === 'http-01' && c.resolver) ctx.addIssue({ code: 'custom', message: 'resolver is for dns-01 only', path: ['resolver'] });
      if (c.type === 'dns-01' && !c.hook) ctx.addIssue({ code: 'custom', message: 'dns-01 needs a hook program', path: ['hook'] });
    }),
  );

export const certsConfigSchema = z
  .strictObject({
    email: z.email({ error: (i) => `invalid email address "${String(i.input)}"` }),
    directory: z._default(
      z.union([z.enum(['letsencrypt', 'letsencrypt-staging']), httpUrl(['https:', 'http:'])], {
        error: (i) => `must be letsencrypt, letsencrypt-staging or an ACME directory URL, got ${JSON.stringify(i.input)}`,
      }),
      'letsencrypt',
    ),
    caBundle: z.optional(absolutePath),
    challenge: challengeSchema,
    renewBefore: z._default(z.union([z.literal('auto'), positiveDuration('30d')], { error: 'must be auto or a duration more than 0, like 30d' }), 'auto'),
    profile: z.optional(z.string().check(z.regex(/^[A-Za-z0-9._-]{1,64}$/))),
    certificates: z._default(z.array(certificateSchema), []),
  })
  .check(
    z.superRefine((certs, ctx) => {
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
    }),
  );

export type CertsConfig = z.output<typeof certsConfigSchema>;
