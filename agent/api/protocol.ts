// The WebSocket API's contract, shared by the agent (which validates every
// request with these schemas) and the CLI (which builds requests and reads
// results with the same types). JSON-RPC 2.0, one object per text frame.
import { ENV_KEY, envValueProblem } from '../duties/deploy/dotenv.js';
import * as z from '../validation.js';

export const API_PATH = '/v1';
export const MAX_MESSAGE_BYTES = 1 << 20;

export const ERROR = {
  parse: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internal: -32603,
  notFound: -32001,
  conflict: -32002,
  forbidden: -32003,
  failed: -32004,
} as const;

export const SCOPES = ['read', 'operate', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export function scopeAllows(have: Scope, need: Scope): boolean {
  return SCOPES.indexOf(have) >= SCOPES.indexOf(need);
}

/** Names used in params: the same rule as config names (no paths, no shell surprises). */
export const nameParam = z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, { error: 'must be a name: letters, digits, "_", "-", "." (at most 63)' }));

/** A git ref: branch, tag or commit; never an option, never a path escape. */
export const gitRefParam = z.string().check(
  z.regex(/^[A-Za-z0-9][A-Za-z0-9._/@{}^~-]{0,199}$/, { error: 'must be a git branch, tag or commit' }),
  z.refine((r: string) => !r.includes('..') && !r.endsWith('.lock'), { error: 'must be a git branch, tag or commit' }),
);

export const envParam = z
  .record(
    z.string().check(z.regex(ENV_KEY, { error: 'must be an environment variable name' })),
    // The reason names no part of the value: values are often secrets, and
    // the message goes back to the caller and into the audit log.
    z.string().check(z.maxLength(65_536), z.superRefine((v: string, ctx) => {
      const problem = envValueProblem(v);
      if (problem !== null) ctx.addIssue({ code: 'custom', message: problem, input: '' });
    })),
  )
  .check(z.refine((r) => Object.keys(r).length <= 200, { error: 'at most 200 variables at once' }));

/** Where a list's next page starts: the `next` of the page before (opaque to callers). */
export const cursorParam = z.string().check(z.regex(/^[1-9][0-9]{0,15}$/, { error: 'must be the `next` of a previous page' }));

/** A PostgreSQL database name for `backup.restore`'s `to`: a plain identifier, never an option or a connection string. */
export const pgDatabaseParam = z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/, { error: 'must be a database name: a letter or "_", then letters, digits, "_", "$", "-" (at most 63)' }));

/** An ISO time or a duration back from now ("24h"). */
export const timeParam = z.string().check(z.maxLength(64));

/** An integer from min (to max). */
const intIn = (min: number, max?: number) => z.int().check(z.gte(min), ...(max === undefined ? [] : [z.lte(max)]));

export const paramsSchemas = {
  'status.get': z.strictObject({}),
  'stack.ps': z.strictObject({}),
  'stack.logs': z.strictObject({
    service: z.optional(nameParam),
    tail: z.optional(intIn(0, 10_000)),
    follow: z.optional(z.boolean()),
  }),
  'stack.restart': z.strictObject({ service: nameParam }),
  'stack.stop': z.strictObject({ service: nameParam }),
  'stack.start': z.strictObject({ service: nameParam }),
  'deploy.start': z.strictObject({
    ref: z.optional(gitRefParam),
    env: z.optional(envParam),
    services: z.optional(z.array(nameParam).check(z.maxLength(100))),
  }),
  'deploy.list': z.strictObject({ limit: z.optional(intIn(1, 1000)), cursor: z.optional(cursorParam) }),
  'deploy.rollback': z.strictObject({ id: z.optional(intIn(1)) }),
  'backup.list': z.strictObject({ name: z.optional(nameParam), limit: z.optional(intIn(1, 1000)), cursor: z.optional(cursorParam) }),
  'backup.run': z.strictObject({ name: nameParam }),
  'backup.restore': z.strictObject({
    id: intIn(1),
    confirm: z.literal(true, { error: 'a restore replaces the database: pass confirm: true' }),
    to: z.optional(pgDatabaseParam),
  }),
  'cert.list': z.strictObject({}),
  'cert.renew': z.strictObject({ name: nameParam, force: z.optional(z.boolean()) }),
  'metrics.series': z.strictObject({}),
  'metrics.query': z.strictObject({
    series: z.string().check(
      z.minLength(1),
      z.maxLength(200),
      z.regex(/^[A-Za-z0-9_.:/-]+$/, { error: 'must be a series name such as host.cpu or service.mem:web' }),
    ),
    from: z.optional(timeParam),
    to: z.optional(timeParam),
    step: z.optional(z.enum(['raw', '1m', '1h'])),
  }),
  'events.list': z.strictObject({
    since: z.optional(timeParam),
    type: z.optional(z.string().check(z.maxLength(64), z.regex(/^[a-z_.]+$/, { error: 'must be an event type such as disk.low' }))),
    limit: z.optional(intIn(1, 1000)),
    cursor: z.optional(cursorParam),
  }),
  'token.list': z.strictObject({}),
  'token.create': z.strictObject({ name: nameParam, scope: z.enum(SCOPES) }),
  'token.revoke': z.strictObject({ name: nameParam }),
  'stream.cancel': z.strictObject({ stream: intIn(1) }),
} as const;

export type MethodName = keyof typeof paramsSchemas;
export type Params<M extends MethodName> = z.input<(typeof paramsSchemas)[M]>;

export const METHOD_SCOPES: Record<MethodName, Scope> = {
  'status.get': 'read',
  'stack.ps': 'read',
  'stack.logs': 'read',
  'stack.restart': 'operate',
  'stack.stop': 'operate',
  'stack.start': 'operate',
  'deploy.start': 'operate',
  'deploy.list': 'read',
  'deploy.rollback': 'operate',
  'backup.list': 'read',
  'backup.run': 'operate',
  'backup.restore': 'admin',
  'cert.list': 'read',
  'cert.renew': 'operate',
  'metrics.series': 'read',
  'metrics.query': 'read',
  'events.list': 'read',
  'token.list': 'admin',
  'token.create': 'admin',
  'token.revoke': 'admin',
  'stream.cancel': 'read',
};

// ---- results ---------------------------------------------------------------

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface ServiceInfo {
  service: string;
  state: string;
  health: 'healthy' | 'unhealthy' | 'starting' | 'none';
  image?: string;
  imageId?: string;
  containerId?: string;
  /** Times the supervisor brought the service back (it died or turned unhealthy) since the agent started; deploys and operator actions are not counted. */
  restarts: number;
  startedAt?: string;
  /** Set while an operator's stack.stop holds the service down: the token's name, and when (ISO time). */
  stoppedBy?: string;
  stoppedAt?: string;
}

export interface DiskInfo {
  mount: string;
  usedPercent: number;
  freeBytes: number;
  totalBytes: number;
}

export interface AlertInfo {
  type: string;
  subject: string;
  since: string;
  message: string;
}

/** From os-release(5). */
export interface DistributionInfo {
  id: string | null;
  name: string;
  version: string | null;
  codename: string | null;
  pretty: string;
}

export interface HostCpuInfo {
  /** null: unknown. */
  model: string | null;
  /** Logical CPUs, what the scheduler runs on. */
  cores: number;
  physicalCores: number | null;
  sockets: number | null;
}

/** As systemd-detect-virt names them ("kvm", "docker"); "none" when there is none, null when unknown. */
export interface VirtualizationInfo {
  vm: string | null;
  container: string | null;
}

/** Versions of the Docker engine and the compose CLI the stack uses; null where unknown. */
export interface HostDockerInfo {
  engine: string | null;
  api: string | null;
  compose: string | null;
  composeCli: 'docker compose' | 'docker-compose' | null;
}

/**
 * The host's facts, collected once in the background after start (Docker and
 * compose again when the engine comes back). Every fact that is missing is
 * null, never an error; `factsCollectedAt` is null while the first
 * collection is still under way.
 */
export interface HostFactsInfo {
  distribution: DistributionInfo | null;
  cpu: HostCpuInfo;
  virtualization: VirtualizationInfo;
  /** null: the agent has no stack, so it does not talk to Docker at all. */
  docker: HostDockerInfo | null;
  factsCollectedAt: string | null;
}

export interface HostInfo extends HostFactsInfo {
  name: string;
  /** The distribution's PRETTY_NAME ("Debian GNU/Linux 12 (bookworm)"), or "Linux". */
  os: string;
  kernel: string;
  arch: string;
  cpus: number;
  memTotal: number;
  uptimeSec: number;
}

export interface StatusResult {
  host: HostInfo;
  /** runtime: the Node.js the agent runs on, e.g. "v24.22.3" (the release's own); absent from agents before 0.1.0. */
  agent: { version: string; runtime?: string; startedAt: string; uptimeSec: number };
  health: { status: CheckStatus; checks: Record<string, { status: CheckStatus; observedValue?: number | string; observedUnit?: string; output?: string }[]> };
  services: ServiceInfo[];
  backups: BackupStatusInfo[];
  certificates: CertificateInfo[];
  resources: {
    cpuPercent: number;
    load1: number;
    memUsed: number;
    memTotal: number;
    swapUsed: number;
    netRxPerSec: number;
    netTxPerSec: number;
    disks: DiskInfo[];
    sampledAt: string;
  } | null;
  alerts: AlertInfo[];
}

export interface PsResult {
  services: ServiceInfo[];
}

export interface SeriesResult {
  series: string[];
}

export interface QueryResult {
  series: string;
  step: 'raw' | '1m' | '1h';
  from: string;
  to: string;
  /** [ts (unix ms), min, avg, max] */
  points: [number, number, number, number][];
}

export interface EventInfo {
  id: number;
  ts: string;
  type: string;
  severity: string;
  subject?: string;
  message: string;
  data?: Record<string, unknown>;
  actor?: string;
  address?: string;
}

/** A list reply: at most `limit` items and 4 MiB; `next`, when more remain, is the next call's `cursor`. */
export interface Paged {
  next?: string;
}

export interface EventsResult extends Paged {
  events: EventInfo[];
}

export interface TokenInfo {
  name: string;
  scope: Scope;
  createdAt: string;
  lastUsedAt?: string;
  /** The token this connection authenticated with. */
  current?: true;
}

export interface TokenListResult {
  tokens: TokenInfo[];
}

export interface TokenCreateResult {
  name: string;
  scope: Scope;
  /** Shown once; only its hash is kept. */
  token: string;
}

export interface DeployInfo {
  id: number;
  kind: 'deploy' | 'rollback' | 'recovery';
  actor: string;
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  result: 'running' | 'succeeded' | 'failed' | 'rolled_back' | 'rollback_failed' | 'interrupted';
  error?: string;
  services: string[];
  ref: { before?: string; after?: string };
  /** Names of the .env keys changed; values are never listed. */
  envKeys: string[];
  /** Per key set: a keyed hash of its value (tells two values apart; reveals neither). */
  envChanges?: { key: string; hash: string }[];
  images: { before: Record<string, string>; after?: Record<string, string> };
  steps: { step: string; status: 'started' | 'ok' | 'failed' | 'skipped'; at: string; ms?: number; detail?: string }[];
  /** For a rollback: the deploy whose state it went to; for a recovery: the record it finished. */
  targetId?: number;
  /** Each service that failed the health gate or watch window, read before the rollback replaced its container. */
  failures?: DeployFailure[];
}

/** Why one service failed the gate; log lines and health output have every .env value of 4+ characters masked as `***`. */
export interface DeployFailure {
  service: string;
  /** The container had exited (or was restarting after a crash) with this code. */
  exitCode?: number;
  /** Docker's health status at the time (unhealthy, starting). */
  health?: string;
  /** The last healthcheck run's output (at most 2000 characters). */
  healthOutput?: string;
  /** The container's last log lines, oldest first (at most 50, each at most 500 characters). */
  logs: string[];
}

/**
 * The end event of `deploy.rollback` when the target's state already runs:
 * nothing was started and no record written. Otherwise the end carries `deploy`.
 */
export interface DeployRollbackUnchanged {
  ok: true;
  unchanged: true;
  /** The deploy whose state runs. */
  running: number;
}

export interface DeployListResult extends Paged {
  deploys: DeployInfo[];
}

/** Deploy progress on the stream, before the end event (which carries `deploy: DeployInfo`). */
export type DeployEvent =
  | { type: 'step'; step: string; status: 'started' | 'ok' | 'failed' | 'skipped'; ms?: number; detail?: string; failures?: DeployFailure[] }
  | { type: 'waiting'; detail: string };

export type BackupStatus = 'running' | 'verified' | 'failed' | 'interrupted' | 'missing';

/** One backup run (backup.list, the end event of backup.run). */
export interface BackupInfo {
  id: number;
  name: string;
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  status: BackupStatus;
  /** True only for a finished, verified backup whose file is present: the only kind a restore accepts. */
  verified: boolean;
  /** What started it: the schedule, a catch-up run at agent start, an operator, a deploy's backupFirst, or a restore's safety backup. */
  trigger: 'schedule' | 'catchup' | 'manual' | 'deploy' | 'safety';
  actor: string;
  file: string;
  size?: number;
  sha256?: string;
  /** How it was verified: `read` (pg_restore read every byte) or `restore` (restored into a throwaway container). */
  verify: 'read' | 'restore';
  /** `restore` verification: rows of every table, by `schema.table`. */
  rows?: Record<string, number>;
  timings?: { dumpMs?: number; verifyMs?: number };
  /** Why it failed, in pg_dump's (or the disk's) own words. */
  error?: string;
  /** Under half the size of the verified backup before it (kept; backup.size_drop raised). */
  sizeDrop?: boolean;
}

export interface BackupListResult extends Paged {
  backups: BackupInfo[];
}

/** backup.run and backup.restore progress on the stream, before the end event. */
export type BackupEvent =
  | { type: 'step'; step: BackupStep; status: 'started' | 'ok' | 'failed' | 'skipped'; ms?: number; detail?: string }
  | { type: 'progress'; step: 'dump' | 'verify' | 'restore'; bytes: number; bytesPerSecond: number; elapsedMs: number; total?: number };

export type BackupStep = 'space' | 'dump' | 'verify' | 'commit' | 'rotate' | 'checksum' | 'safety' | 'restore';

/** One managed certificate, as cert.list and status.get show it. */
export interface CertificateInfo {
  name: string;
  domains: string[];
  /** What the stored certificate is for: differs from `domains` until a changed config is issued. */
  issuedFor?: string[];
  keyType: string;
  issuer?: string;
  serial?: string;
  /** SHA-256 of the leaf, lowercase hex. */
  fingerprint256?: string;
  notBefore?: string;
  notAfter?: string;
  daysLeft?: number;
  /** When the next renewal is due (the plan, or a backoff after failures when later). */
  nextRenewal?: string;
  /** Why then: 'ari' (the CA's window), 'lifetime', 'override' (renewBefore), 'urgent', 'missing', 'changed'. */
  reason?: string;
  /** The plan in words. */
  explanation?: string;
  ariWindow?: { start: string; end: string };
  check: CheckStatus;
  output?: string;
  renewing: boolean;
  lastAttempt?: { at: string; ok: boolean; error?: string; trigger: string };
  lastError?: string;
  failures: number;
  backoffUntil?: string;
  probe?: { at: string; ok: boolean; detail: string };
}

export interface CertListResult {
  certificates: CertificateInfo[];
}

/** Steps of cert.renew: the order's own (order, present, validate, finalize, download, cleanup), then install, copy, reload, probe. */
export type CertEvent = { type: 'step'; step: string; status: 'started' | 'ok' | 'failed' | 'skipped'; detail?: string };

/** The end event of backup.restore carries `restore`. */
export interface RestoreInfo {
  id: number;
  /** The backup restored. */
  backupId: number;
  name: string;
  /** The database restored into: the backup's own, or `to`. */
  database: string;
  /** True when `to` named a new database (created by the restore). */
  newDatabase: boolean;
  actor: string;
  startedAt: string;
  finishedAt?: string;
  durationMs?: number;
  status: 'running' | 'succeeded' | 'failed' | 'interrupted';
  /** The backup of the database taken just before: restore it to undo this restore. */
  safetyBackupId?: number;
  error?: string;
}

/** One configured backup in status.get. */
export interface BackupStatusInfo {
  name: string;
  schedule: string;
  /** `service db` or the URL without its password. */
  source: string;
  database: string;
  check: CheckStatus;
  output?: string;
  running: boolean;
  nextRunAt?: string;
  lastRun?: BackupInfo;
  lastVerified?: BackupInfo;
  failuresTotal: number;
}

export interface OkResult {
  ok: true;
}

export interface StreamStarted {
  stream: number;
}

export interface LogLine {
  type: 'line';
  service: string;
  stream: 'stdout' | 'stderr';
  ts: string;
  text: string;
}

export interface StreamEnd {
  type: 'end';
  ok: boolean;
  error?: string;
  [extra: string]: unknown;
}

export interface Results {
  'status.get': StatusResult;
  'stack.ps': PsResult;
  'stack.logs': StreamStarted;
  'stack.restart': OkResult;
  'stack.stop': OkResult;
  'stack.start': OkResult;
  'deploy.start': StreamStarted;
  'deploy.list': DeployListResult;
  'deploy.rollback': StreamStarted;
  'backup.list': BackupListResult;
  'backup.run': StreamStarted;
  'backup.restore': StreamStarted;
  'cert.list': CertListResult;
  'cert.renew': StreamStarted;
  'metrics.series': SeriesResult;
  'metrics.query': QueryResult;
  'events.list': EventsResult;
  'token.list': TokenListResult;
  'token.create': TokenCreateResult;
  'token.revoke': OkResult;
  'stream.cancel': OkResult;
}

export interface RpcRequest {
  jsonrpc: '2.0';
  id?: number | string | null;
  method: string;
  params?: unknown;
}

export interface RpcError {
  code: number;
  message: string;
  data?: unknown;
}

export interface RpcResponse {
  jsonrpc: '2.0';
  id: number | string | null;
  result?: unknown;
  error?: RpcError;
}

export interface StreamNotification {
  jsonrpc: '2.0';
  method: 'stream';
  params: { stream: number; event: LogLine | StreamEnd | Record<string, unknown> };
}

/** Parses "24h" (back from now) or an ISO time; null if neither. */
export function parseTimeParam(text: string, now = Date.now()): number | null {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(text.trim());
  if (m) return now - Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : t;
}

/** Fingerprint of a certificate: SHA-256 of its DER bytes, lowercase hex without separators. */
export function normalizeFingerprint(text: string): string | null {
  const hex = text.trim().replace(/^sha256:/i, '').replace(/:/g, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : null;
}
