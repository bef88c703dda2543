// The whole method table: what every duty serves, plus the agent-wide
// methods (status, events, tokens, stream.cancel).
import type { Duty } from '../../duty.js';
import { ERROR } from '../protocol.js';
import { RpcFailure, type MethodTable } from '../rpc.js';
import type { TokenStore } from '../tokens.js';
import { eventMethods } from './events.js';
import { statusMethods, type StatusSources } from './status.js';
import { tokenMethods } from './tokens.js';

export interface MethodSources extends StatusSources {
  allDuties: readonly Duty[];
  tokens: TokenStore;
  closeSessionsOf: (tokenName: string) => void;
}

export function agentMethods(src: MethodSources): MethodTable {
  return {
    ...Object.assign({}, ...src.allDuties.map((d) => d.methods?.() ?? {})),
    ...statusMethods(src),
    ...eventMethods(src.events),
    ...tokenMethods(src.tokens, src.closeSessionsOf),
    'stream.cancel': ({ stream }, call) => {
      if (!call.cancelStream(stream)) throw new RpcFailure(ERROR.notFound, `no open stream ${stream} on this connection`);
      return { ok: true };
    },
  };
}
