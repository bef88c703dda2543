// deploy.*: the deploy duty's operations as JSON-RPC methods and streams.
import type { DeployDuty } from '../../duties/deploy/duty.js';
import type { DeployRecord } from '../../duties/deploy/records.js';
import type { DeployInfo } from '../protocol.js';
import { mapped, takePage } from '../paging.js';
import type { MethodTable } from '../rpc.js';
import { streamOperation } from './streams.js';

const finalRecord = (r: DeployRecord) => ({ ok: r.result === 'succeeded', deploy: deployInfo(r) });

export function deployMethods(deploy: DeployDuty): MethodTable {
  return {
    'deploy.list': ({ limit, cursor }) => {
      const page = takePage(mapped(deploy.history(cursor ? Number(cursor) : undefined), deployInfo), limit ?? 20, (d) => String(d.id));
      return { deploys: page.items, ...(page.next ? { next: page.next } : {}) };
    },
    'deploy.start': ({ ref, env, services }, call) =>
      streamOperation(call, (send) => deploy.deploy({ ...(ref ? { ref } : {}), ...(env ? { env } : {}), ...(services ? { services } : {}) }, call.actor, send), finalRecord),
    'deploy.rollback': ({ id }, call) => streamOperation(call, (send) => deploy.rollback(id, call.actor, send), finalRecord),
  };
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
  };
}
