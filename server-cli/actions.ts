// What the operator asked for, in their words: messages say "cannot restart
// web on web-1", not "stack.restart failed".
import type { MethodName } from '../agent/api/protocol.js';

type Phrase = (params: Record<string, unknown>) => string;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined);

const PHRASES: Record<MethodName, Phrase> = {
  'status.get': () => 'read the status',
  'stack.ps': () => 'list the services',
  'stack.logs': (p) => (str(p.service) ? `read the logs of ${str(p.service)}` : 'read the logs of the stack'),
  'stack.restart': (p) => `restart ${str(p.service) ?? 'the service'}`,
  'stack.stop': (p) => `stop ${str(p.service) ?? 'the service'}`,
  'stack.start': (p) => `start ${str(p.service) ?? 'the service'}`,
  'deploy.start': () => 'start a deploy',
  'deploy.list': () => 'list the deploys',
  'deploy.rollback': (p) => (str(p.id) ? `roll back to deploy ${str(p.id)}` : 'roll back'),
  'backup.list': (p) => (str(p.name) ? `list the backups of ${str(p.name)}` : 'list the backups'),
  'backup.run': (p) => `run the backup ${str(p.name) ?? ''}`.trim(),
  'backup.restore': (p) => (str(p.id) ? `restore backup ${str(p.id)}${str(p.to) ? ` into ${str(p.to)}` : ''}` : 'restore a backup'),
  'cert.list': () => 'list the certificates',
  'cert.renew': (p) => `renew the certificate ${str(p.name) ?? ''}`.trim(),
  'metrics.series': () => 'list the metric series',
  'metrics.query': (p) => (str(p.series) ? `read the metric ${str(p.series)}` : 'read a metric'),
  'events.list': () => 'list the events',
  'token.list': () => 'list the tokens',
  'token.create': (p) => (str(p.name) ? `create the token ${str(p.name)}` : 'create a token'),
  'token.revoke': (p) => (str(p.name) ? `revoke the token ${str(p.name)}` : 'revoke a token'),
  'stream.cancel': () => 'stop a stream',
};

/** "restart web", "read the logs of the stack"; an unknown method falls back to its name. */
export function describeCall(method: string, params: unknown): string {
  const phrase = Object.hasOwn(PHRASES, method) ? PHRASES[method as MethodName] : undefined;
  const p = params !== null && typeof params === 'object' ? (params as Record<string, unknown>) : {};
  return phrase ? phrase(p) : `call ${method}`;
}
