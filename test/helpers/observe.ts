// Proof that the agent looked. "Nothing happened" only means something once
// the agent has had its chance: these wait for its next observations of the
// stack (deckhand_stack_observations_total) or its next metrics samples
// (deckhand_metrics_last_sample_timestamp_seconds), read from /metrics as an
// operator's Prometheus reads them, instead of sleeping and hoping it did.
// Also what a container itself says (docker inspect): a restart is a later
// StartedAt, not a running flag.
import { runChecked } from '../../agent/exec/runner.js';
import { waitFor, type AgentProcess } from './agent.js';

/** The value of an unlabelled series on /metrics, or undefined when it has none yet. */
export async function metricValue(agent: AgentProcess, name: string): Promise<number | undefined> {
  const text = (await agent.get('/metrics')).text;
  const line = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return line ? Number(line[1]) : undefined;
}

export async function stackObservations(agent: AgentProcess): Promise<number> {
  const n = await metricValue(agent, 'deckhand_stack_observations_total');
  if (n === undefined) throw new Error('no deckhand_stack_observations_total on /metrics: is a stack configured?');
  return n;
}

/**
 * The /metrics text rendered after this call: the agent renders it at most
 * once a second and serves that render meanwhile, so the first answer may be
 * older than the call. Each render differs (the uptime gauge moves).
 */
async function freshMetrics(agent: AgentProcess): Promise<string> {
  const first = (await agent.get('/metrics')).text;
  let text = first;
  await waitFor(async () => (text = (await agent.get('/metrics')).text) !== first, 5000, () => 'a /metrics render newer than the one kept');
  return text;
}

/**
 * Waits until `n` observations of the stack that began after this call have
 * ended. The counter moves at the end of an observation, and one may be under
 * way when we read it: so it must move by n + 1, from a render made after
 * the call.
 */
export async function waitForObservations(agent: AgentProcess, n = 1, timeoutMs = 30_000): Promise<void> {
  const line = /^deckhand_stack_observations_total (\S+)$/m.exec(await freshMetrics(agent));
  if (!line) throw new Error('no deckhand_stack_observations_total on /metrics: is a stack configured?');
  const start = Number(line[1]);
  let now = start;
  await waitFor(async () => (now = await stackObservations(agent)) >= start + n + 1, timeoutMs, () => `${n} stack observations after the one at ${start} (now ${now})`);
}

/**
 * Waits for `n` metrics samples taken after `sinceMs` (each sample evaluates
 * the disk.low conditions at the moment it is taken).
 */
export async function waitForMetricsSamples(agent: AgentProcess, n: number, sinceMs = Date.now(), timeoutMs = 30_000): Promise<void> {
  const seen = new Set<number>();
  await waitFor(
    async () => {
      const ts = await metricValue(agent, 'deckhand_metrics_last_sample_timestamp_seconds');
      if (ts !== undefined && ts * 1000 > sinceMs) seen.add(ts);
      return seen.size >= n;
    },
    timeoutMs,
    () => `${n} metrics samples after ${new Date(sinceMs).toISOString()} (saw ${seen.size})`,
  );
}

export interface ContainerState {
  running: boolean;
  status: string;
  startedAt: string;
  finishedAt: string;
  restartPolicy: string;
}

/** What the engine says about a container, now. */
export async function containerState(id: string): Promise<ContainerState> {
  const r = await runChecked({ argv: ['docker', 'inspect', '-f', '{{json .State}}|{{.HostConfig.RestartPolicy.Name}}', id], timeoutMs: 30_000 });
  const [state, restartPolicy] = r.stdout.trim().split('|') as [string, string];
  const s = JSON.parse(state) as { Running: boolean; Status: string; StartedAt: string; FinishedAt: string };
  return { running: s.Running, status: s.Status, startedAt: s.StartedAt, finishedAt: s.FinishedAt, restartPolicy };
}

/** True once the container runs again after a start later than `before` (same container, restarted). */
export async function startedAgainSince(id: string, before: ContainerState): Promise<boolean> {
  const now = await containerState(id);
  return now.running && Date.parse(now.startedAt) > Date.parse(before.startedAt);
}
