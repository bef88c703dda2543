import type { EventLog, StoredEvent } from '../../events/log.js';
import { mapped, takePage } from '../paging.js';
import { ERROR, parseTimeParam, type EventInfo } from '../protocol.js';
import { RpcFailure, type MethodTable } from '../rpc.js';

export function eventMethods(events: EventLog): MethodTable {
  return {
    'events.list': ({ since, type, limit, cursor }) => {
      const from = since === undefined ? 0 : parseTimeParam(since);
      if (from === null) throw new RpcFailure(ERROR.invalidParams, `invalid params: since: expected an ISO time or a duration like 24h, got "${since}"`);
      const rows = events.iterate({ since: from, ...(type ? { type } : {}), ...(cursor ? { before: Number(cursor) } : {}) });
      const page = takePage(mapped(rows, eventInfo), limit ?? 100, (e) => String(e.id));
      return { events: page.items, ...(page.next ? { next: page.next } : {}) };
    },
  };
}

function eventInfo(e: StoredEvent): EventInfo {
  return {
    id: e.id,
    ts: new Date(e.ts).toISOString(),
    type: e.type,
    severity: e.severity,
    ...(e.subject === undefined ? {} : { subject: e.subject }),
    message: e.message,
    ...(e.data === undefined ? {} : { data: e.data }),
    ...(e.actor === undefined ? {} : { actor: e.actor }),
    ...(e.address === undefined ? {} : { address: e.address }),
  };
}
