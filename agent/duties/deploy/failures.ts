// Why a service failed the health gate, kept with the deploy record: the
// rollback replaces the failed container, and with it its exit code, its
// healthcheck's answer and its log. Read before the rollback, with every
// .env value of the deploy masked (logs often echo configuration, and
// records are listed to any read token), and cut to a size that keeps
// records small.
import type { DockerEngine } from '../../docker/engine.js';
import { currentContainers } from '../stack/services.js';
import { LogDemuxer } from '../stack/logframes.js';
import { envValues } from './envfile.js';

/** One service that failed the gate, as the record keeps it. */
export interface ServiceFailure {
  service: string;
  /** Set when the container had exited (or was restarting after a crash). */
  exitCode?: number;
  /** State.Health.Status at the time: unhealthy, starting... */
  health?: string;
  /** The last healthcheck run's output. */
  healthOutput?: string;
  /** The container's last log lines, oldest first. */
  logs: string[];
}

/** Per record at most 5 services × 50 lines × 500 characters: well under what a list page carries. */
export const FAILURE_LIMITS = { lines: 50, lineChars: 500, outputChars: 2000, services: 5 };

/** Values shorter than this are not masked: "1", "yes" and port-like fragments would blank out every line. */
export const MIN_SECRET_LENGTH = 4;

/** The values to mask: every value in the given .env texts of at least MIN_SECRET_LENGTH characters. */
export function secretsOf(envTexts: readonly (string | null)[]): string[] {
  const values = new Set<string>();
  for (const text of envTexts) for (const v of envValues(text).values()) if (v.length >= MIN_SECRET_LENGTH) values.add(v);
  return [...values];
}

/** Every occurrence of any secret replaced by `***`; the longest first, so a value containing another is masked whole. */
export function maskSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of [...secrets].filter((v) => v.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
  return out;
}

/** At most `max` characters; a cut says how long the text was. */
export function cutText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}

/** Masks first, then bounds: a cut must never leave half a secret showing. */
export function boundFailure(f: ServiceFailure, secrets: readonly string[]): ServiceFailure {
  const L = FAILURE_LIMITS;
  return {
    service: f.service,
    ...(f.exitCode !== undefined ? { exitCode: f.exitCode } : {}),
    ...(f.health !== undefined ? { health: f.health } : {}),
    ...(f.healthOutput !== undefined ? { healthOutput: cutText(maskSecrets(f.healthOutput, secrets).trimEnd(), L.outputChars) } : {}),
    logs: f.logs.slice(-L.lines).map((l) => cutText(maskSecrets(l, secrets), L.lineChars)),
  };
}

/** Reads, for each service, what its current container says about its failure; a service whose container is gone gets what is known. */
export async function collectFailures(engine: DockerEngine, project: string, services: readonly string[], secrets: readonly string[]): Promise<ServiceFailure[]> {
  const current = currentContainers(await engine.listProjectContainers(project).catch(() => []));
  const out: ServiceFailure[] = [];
  for (const service of services.slice(0, FAILURE_LIMITS.services)) {
    const c = current.get(service);
    if (!c) {
      out.push({ service, logs: [] });
      continue;
    }
    out.push(boundFailure(await readFailure(engine, service, c.id), secrets));
  }
  return out;
}

async function readFailure(engine: DockerEngine, service: string, id: string): Promise<ServiceFailure> {
  const f: ServiceFailure = { service, logs: [] };
  let tty = false;
  try {
    const info = await engine.api.getContainer(id).inspect();
    tty = info.Config.Tty;
    const state = info.State;
    if (state.Status === 'exited' || state.Status === 'dead' || state.Status === 'restarting') f.exitCode = state.ExitCode;
    if (state.Health?.Status) f.health = state.Health.Status;
    const last = state.Health?.Log?.at(-1);
    if (last && typeof last.Output === 'string') f.healthOutput = last.Output;
  } catch {
    return f; // removed meanwhile: nothing more to tell
  }
  try {
    const demux = new LogDemuxer(tty);
    const buf = (await engine.api.getContainer(id).logs({ stdout: true, stderr: true, timestamps: true, follow: false, tail: FAILURE_LIMITS.lines })) as unknown as Buffer;
    const chunks = [...demux.push(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf))), ...demux.flush()];
    f.logs = inTimeOrder(chunks.map((c) => c.line));
  } catch {
    /* no log driver that can be read back (e.g. none): the rest still helps */
  }
  return f;
}

/**
 * Lines as the service wrote them, in time order: the engine sends stdout and
 * stderr frames as its two readers got them, so a line on stderr can come
 * ahead of the stdout line printed before it. Sorted by the engine's
 * nanosecond timestamps (stable for ties), which are then cut off.
 */
export function inTimeOrder(stamped: readonly string[]): string[] {
  const key = (stamp: string) => stamp.replace(/(?:\.(\d+))?Z$/, (_, frac: string | undefined) => `.${(frac ?? '').padEnd(9, '0')}Z`);
  return stamped
    .map((line, i) => {
      const space = line.indexOf(' ');
      const stamp = space > 0 ? line.slice(0, space) : '';
      return /^\d{4}-\d\d-\d\dT[\d:.]+Z$/.test(stamp) ? { at: key(stamp), text: line.slice(space + 1), i } : { at: '', text: line, i };
    })
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.i - b.i))
    .map((l) => l.text);
}
