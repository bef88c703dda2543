// A duty is the unit of the agent: it owns a config section, its tables, its
// timers and its tests. The daemon only builds, starts and stops duties.
//
// Lifecycle, in order:
//   1. construct: given its validated config section and the shared context;
//      may open tables (migrations) but starts no timers and no I/O loops.
//   2. start(): begins its work. Resolves once the duty is serving (that is
//      what /readyz waits for). A component that is down (Docker, PostgreSQL)
//      is not a start failure: the duty reports it in checks() and retries.
//   3. stop(): ends timers and in-flight work promptly (the daemon allows 5 s
//      for all duties together). Must be safe after a failed or partial start,
//      and safe to call twice.
// Between start and stop, checks() answers from kept state only: it is called
// by /health and must never wait on Docker, PostgreSQL or the network.
//
// A duty's operations (deploy, restart, backup...) are plain methods of its
// own: they raise domain errors (errors.ts) and report progress through a
// callback. Only agent/api/ turns them into JSON-RPC methods and streams, so
// a schedule or another duty can call the same operation.
import type { Logger } from 'pino';
import type { StatusResult } from './api/protocol.js';
import type { AgentConfig } from './config/schema.js';
import type { Conditions } from './events/conditions.js';
import type { EventLog } from './events/log.js';
import type { Db } from './store/db.js';

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface CheckResult {
  status: CheckStatus;
  observedValue?: number | string;
  observedUnit?: string;
  output?: string;
  [extra: string]: unknown;
}

export type HealthChecks = Record<string, CheckResult[]>;

export type StatusContribution = Partial<Pick<StatusResult, 'services' | 'resources' | 'backups' | 'certificates'>>;

export interface GaugeSample {
  labels?: Record<string, string>;
  value: number;
}

/** A Prometheus gauge described as data, so duties need not load prom-client. */
export interface GaugeSpec {
  name: string;
  help: string;
  /** 'counter' for a figure that only goes up (named `..._total`); a gauge otherwise. */
  kind?: 'gauge' | 'counter';
  labelNames?: string[];
  samples: () => GaugeSample[];
}

export interface DutyContext {
  config: AgentConfig;
  log: Logger;
  db: Db;
  events: EventLog;
  conditions: Conditions;
  /** Report an error a duty survived (logged, and kept as an agent.error event). */
  reportError(duty: string, err: unknown): void;
  /**
   * Aborted as the agent begins to stop, before any duty's stop(): long work
   * (a deploy, a backup) ends at its next safe point while the API can still
   * tell its caller so.
   */
  stopping: AbortSignal;
}

export interface Duty {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  checks?(): HealthChecks;
  /** The duty's Prometheus gauges, as data; values come from kept state at scrape time. */
  gauges?(): GaugeSpec[];
  /** Its part of status.get, from kept state. */
  status?(): StatusContribution;
}

export function worstStatus(statuses: Iterable<CheckStatus>): CheckStatus {
  let worst: CheckStatus = 'pass';
  for (const s of statuses) {
    if (s === 'fail') return 'fail';
    if (s === 'warn') worst = 'warn';
  }
  return worst;
}
