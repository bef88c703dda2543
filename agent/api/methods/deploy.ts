// deploy.*: the deploy duty's operations as JSON-RPC methods and streams.
import type { DeployDuty, NothingToRollBack } from '../../duties/deploy/duty.js';
import type { DeployRecord } from '../../duties/deploy/records.js';
import type { DeployInfo } from '../protocol.js';
import { mapped, takePage } from '../paging.js';
import type { MethodTable } from '../rpc.js';
import { streamOperation } from './streams.js';

const finalRecord = (r: DeployRecord) => ({ ok: r.result === 'succeeded', deploy: deployInfo(r) });

/** A rollback to what already runs ends ok, with no record: `{ok: true, unchanged: true, running: ID}`. */
const finalRollback = (r: DeployRecord | NothingToRollBack) => ('unchanged' in r ? { ok: true, unchanged: true, running: r.running } : finalRecord(r));

export function deployMethods(deploy: DeployDuty): MethodTable {
  return {
    'deploy.list': ({ limit, cursor }) => {
      const page = takePage(mapped(deploy.history(cursor ? Number(cursor) : undefined), (r) => listed(deployInfo(r))), limit ?? 20, (d) => String(d.id));
      return { deploys: page.items, ...(page.next ? { next: page.next } : {}) };
    },
    'deploy.start': ({ ref, env, services }, call) =>
      streamOperation(call, (send) => deploy.deploy({ ...(ref ? { ref } : {}), ...(env ? { env } : {}), ...(services ? { services } : {}) }, call.actor, send), finalRecord),
    'deploy.rollback': ({ id }, call) => streamOperation(call, (send) => deploy.rollback(id, call.actor, send), finalRollback),
  };
}

/** The longest error and step detail a list shows: records written by older agents could hold megabytes. */
const LISTED = { error: 4000, detail: 2000, bytes: 256 << 10 };

/** A record as a list shows it: long texts cut, and a record still too large reduced to what it was. */
function listed(d: DeployInfo): DeployInfo {
  const cut = (t: string, max: number) => (t.length <= max ? t : `${t.slice(0, max)}… (${t.length} characters)`);
  const short: DeployInfo = {
    ...d,
    ...(d.error ? { error: cut(d.error, LISTED.error) } : {}),
    steps: d.steps.map((st) => (st.detail ? { ...st, detail: cut(st.detail, LISTED.detail) } : st)),
  };
  const size = Buffer.byteLength(JSON.stringify(short));
  if (size <= LISTED.bytes) return short;
  const { id, kind, actor, startedAt, finishedAt, durationMs, result } = short;
  return { id, kind, actor, startedAt, ...(finishedAt ? { finishedAt, durationMs } : {}), result, error: `${short.error ?? ''} [this record is ${size} bytes: its steps, images and env changes are left out of the list]`.trim(), services: [], ref: short.ref, envKeys: [], images: { before: {} }, steps: [] };
}

export function deployInfo(r: DeployRecord): DeployInfo {
  return {
    id: r.id,
    kind: r.kind,
    actor: r.actor,
    startedAt: new Date(r.startedAt).toISOString(),
    ...(r.finishedAt ? { finishedAt: new Date(r.finishedAt).toISOString(), durationMs: r.finishedAt - r.startedAt } : {}),
    result: r.result,
    ...(r.error ? { error: r.error } : {}),
    services: r.services,
    ref: { ...(r.refBefore ? { before: r.refBefore } : {}), ...(r.refAfter ? { after: r.refAfter } : {}) },
    envKeys: r.envKeys,
    ...(r.envChanges.length ? { envChanges: r.envChanges } : {}),
    images: { before: r.imagesBefore, ...(r.imagesAfter ? { after: r.imagesAfter } : {}) },
    steps: r.steps.map((s) => ({ ...s, at: new Date(s.at).toISOString() })),
    ...(r.targetId !== undefined ? { targetId: r.targetId } : {}),
    ...(r.failures?.length ? { failures: r.failures } : {}),
  };
}
