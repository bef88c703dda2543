// The whole method table: each configured duty's operations as methods,
// plus the agent-wide ones (status, events, tokens, stream.cancel). A method
// of a duty that is not configured is absent, and dispatch says so.
import type { BackupsDuty } from '../../duties/backups/duty.js';
import type { CertsDuty } from '../../duties/certs/duty.js';
import type { DeployDuty } from '../../duties/deploy/duty.js';
import type { MetricsDuty } from '../../duties/metrics/duty.js';
import type { StackDuty } from '../../duties/stack/duty.js';
import { ERROR } from '../protocol.js';
import { RpcFailure, type MethodTable } from '../rpc.js';
import type { TokenStore } from '../tokens.js';
import { backupMethods } from './backups.js';
import { certMethods } from './certs.js';
import { deployMethods } from './deploy.js';
import { eventMethods } from './events.js';
import { metricsMethods } from './metrics.js';
import { stackMethods } from './stack.js';
import { statusMethods, type StatusSources } from './status.js';
import { tokenMethods } from './tokens.js';

export interface MethodSources extends StatusSources {
  stack?: StackDuty;
  deploy?: DeployDuty;
  backups?: BackupsDuty;
  certs?: CertsDuty;
  metrics: MetricsDuty;
  tokens: TokenStore;
  closeSessionsOf: (tokenId: number) => void;
}

export function agentMethods(src: MethodSources): MethodTable {
  return {
    ...(src.stack ? stackMethods(src.stack) : {}),
    ...(src.deploy ? deployMethods(src.deploy) : {}),
    ...(src.backups ? backupMethods(src.backups) : {}),
    ...(src.certs ? certMethods(src.certs) : {}),
    ...metricsMethods(src.metrics),
    ...statusMethods(src),
    ...eventMethods(src.events),
    ...tokenMethods(src.tokens, src.closeSessionsOf),
    'stream.cancel': ({ stream }, call) => {
      if (!call.cancelStream(stream)) throw new RpcFailure(ERROR.notFound, `no open stream ${stream} on this connection`);
      return { ok: true };
    },
  };
}
