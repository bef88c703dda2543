import type { EventLog } from '../../events/log.js';
import { ERROR, parseTimeParam, type EventInfo } from '../protocol.js';
import { RpcFailure, type MethodTable } from '../rpc.js';

export function eventMethods(events: EventLog): MethodTable {
  return {
    'events.list': ({ since, type, limit }) => {
      const from = since === undefined ? 0 : parseTimeParam(since);
      if (from === null) throw new RpcFailure(ERROR.invalidParams, `invalid params: since: expected an ISO time or a duration like 24h, got "${since}"`);
      const list = events.list({ since: from, ...(type ? { type } : {}), limit: limit ?? 100 });
      return {
        events: list.map(
          (e): EventInfo => ({
            id: e.id,
            ts: new Date(e.ts).toISOString(),
            type: e.type,
            severity: e.severity,
            ...(e.subject === undefined ? {} : { subject: e.subject }),
            message: e.message,
            ...(e.data === undefined ? {} : { data: e.data }),
            ...(e.actor === undefined ? {} : { actor: e.actor }),
            ...(e.address === undefined ? {} : { address: e.address }),
          }),
        ),
      };
    },
  };
}
