// cert.*: the certificates duty's operations as JSON-RPC methods and streams.
import type { CertificateInfo } from '../protocol.js';
import type { CertsDuty } from '../../duties/certs/duty.js';
import type { MethodTable } from '../rpc.js';
import { streamOperation } from './streams.js';

export function certMethods(certs: CertsDuty): MethodTable {
  return {
    'cert.list': () => ({ certificates: certs.list() }),
    'cert.renew': ({ name, force }, call) =>
      streamOperation(call, (send) => certs.renew(name, force ?? false, call.actor, send), (c: CertificateInfo) => ({ ok: true, certificate: c })),
  };
}
