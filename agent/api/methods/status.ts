// status.get: what an operator wants first, assembled from every duty's kept
// state (never by calling Docker or PostgreSQL).
import { arch, release, totalmem, uptime } from 'node:os';
import type { Duty } from '../../duty.js';
import type { Conditions } from '../../events/conditions.js';
import type { EventLog } from '../../events/log.js';
import { healthDocument } from '../../http/health.js';
import type { HostFactsInfo, StatusResult } from '../protocol.js';
import type { MethodTable } from '../rpc.js';

export interface StatusSources {
  duties: () => readonly Duty[];
  conditions: Conditions;
  events: EventLog;
  version: string;
  hostName: string;
  startedAt: number;
  /** The host duty's kept facts (collected in the background, never on a request). */
  hostFacts: () => HostFactsInfo;
}

export function statusMethods(src: StatusSources): MethodTable {
  return {
    'status.get': (): StatusResult => {
      const duties = src.duties();
      const merged = Object.assign({}, ...duties.map((d) => d.status?.() ?? {})) as Partial<StatusResult>;
      const health = healthDocument(duties, src.version, src.hostName);
      const open = src.conditions.list();
      const raisedBy = new Map(src.events.byIds(open.map((c) => c.eventId)).map((e) => [e.id, e]));
      return {
        host: hostInfo(src.hostName, src.hostFacts()),
        agent: { version: src.version, runtime: process.version, startedAt: new Date(src.startedAt).toISOString(), uptimeSec: Math.round((Date.now() - src.startedAt) / 1000) },
        health: { status: health.status, checks: health.checks },
        services: merged.services ?? [],
        backups: merged.backups ?? [],
        certificates: merged.certificates ?? [],
        resources: merged.resources ?? null,
        alerts: open.map((c) => ({
          type: c.type,
          subject: c.subject,
          since: new Date(c.since).toISOString(),
          message: raisedBy.get(c.eventId)?.message ?? c.type,
        })),
      };
    },
  };
}

function hostInfo(name: string, facts: HostFactsInfo): StatusResult['host'] {
  return {
    name,
    os: facts.distribution?.pretty ?? 'Linux',
    kernel: release(),
    arch: arch(),
    cpus: facts.cpu.cores,
    memTotal: totalmem(),
    uptimeSec: Math.round(uptime()),
    ...facts,
  };
}
