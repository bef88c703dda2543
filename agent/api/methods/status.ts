// status.get: what an operator wants first, assembled from every duty's kept
// state (never by calling Docker or PostgreSQL).
import { readFileSync } from 'node:fs';
import { arch, cpus, release, totalmem, uptime } from 'node:os';
import type { Duty } from '../../duty.js';
import type { Conditions } from '../../events/conditions.js';
import type { EventLog } from '../../events/log.js';
import { healthDocument } from '../../http/health.js';
import type { StatusResult } from '../protocol.js';
import type { MethodTable } from '../rpc.js';

export interface StatusSources {
  duties: () => readonly Duty[];
  conditions: Conditions;
  events: EventLog;
  version: string;
  hostName: string;
  startedAt: number;
}

/** PRETTY_NAME from os-release: read once, it does not change while we run. */
export function osName(text = safeRead('/etc/os-release')): string {
  const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text);
  return m?.[1] ?? 'Linux';
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export function statusMethods(src: StatusSources): MethodTable {
  const os = osName();
  return {
    'status.get': (): StatusResult => {
      const duties = src.duties();
      const merged = Object.assign({}, ...duties.map((d) => d.status?.() ?? {})) as Partial<StatusResult>;
      const health = healthDocument(duties, src.version, src.hostName);
      const open = src.conditions.list();
      const raisedBy = new Map(src.events.byIds(open.map((c) => c.eventId)).map((e) => [e.id, e]));
      return {
        host: { name: src.hostName, os, kernel: release(), arch: arch(), cpus: cpus().length, memTotal: totalmem(), uptimeSec: Math.round(uptime()) },
        agent: { version: src.version, startedAt: new Date(src.startedAt).toISOString(), uptimeSec: Math.round((Date.now() - src.startedAt) / 1000) },
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
