// The health gate and the watch window. The gate passes when every service
// in scope runs and is healthy (or, without a healthcheck, has run for
// `stableFor`), and the optional probe answers as expected; it fails at once
// when a container exits or turns unhealthy. The watch window then fails if
// any of those containers dies, restarts or turns unhealthy.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { DockerEngine } from '../../docker/engine.js';
import { currentContainers } from '../stack/services.js';

export interface ContainerSnapshot {
  id: string;
  imageId: string;
  state: string;
  /** From inspect: State.Health.Status, or undefined without a healthcheck. */
  health: string | undefined;
  startedAt: number;
}

export type Verdict = { kind: 'ok' } | { kind: 'pending'; why: string } | { kind: 'fail'; why: string };

export function evaluate(service: string, c: ContainerSnapshot | undefined, now: number, stableForMs: number): Verdict {
  if (!c) return { kind: 'pending', why: `${service}: no container yet` };
  if (c.state === 'exited' || c.state === 'dead') return { kind: 'fail', why: `${service}: container exited` };
  if (c.state === 'restarting') return { kind: 'fail', why: `${service}: container is restarting (crashed)` };
  if (c.state !== 'running') return { kind: 'pending', why: `${service}: container is ${c.state}` };
  if (c.health === 'unhealthy') return { kind: 'fail', why: `${service}: healthcheck failing` };
  if (c.health === 'starting') return { kind: 'pending', why: `${service}: healthcheck not passed yet` };
  if (c.health === 'healthy') return { kind: 'ok' };
  // stableFor 0s: running is enough (and a clock a millisecond apart from the engine's must not make it wait).
  if (stableForMs <= 0) return { kind: 'ok' };
  const up = now - c.startedAt;
  return up >= stableForMs ? { kind: 'ok' } : { kind: 'pending', why: `${service}: running ${Math.round(up / 1000)}s of ${Math.round(stableForMs / 1000)}s` };
}

export async function snapshot(engine: DockerEngine, project: string, services: readonly string[]): Promise<Map<string, ContainerSnapshot>> {
  const current = currentContainers(await engine.listProjectContainers(project));
  const out = new Map<string, ContainerSnapshot>();
  await Promise.all(
    services.map(async (service) => {
      const c = current.get(service);
      if (!c) return;
      const info = await engine.api.getContainer(c.id).inspect();
      out.set(service, { id: c.id, imageId: info.Image, state: info.State.Status, health: info.State.Health?.Status, startedAt: Date.parse(info.State.StartedAt) });
    }),
  );
  return out;
}

export interface GateOptions {
  project: string;
  services: readonly string[];
  healthTimeoutMs: number;
  stableForMs: number;
  probe?: { url: string; expect: number };
  signal?: AbortSignal;
  onWaiting?: (why: string) => void;
}

/** A failure names the services that failed (or were still pending at the deadline), for the record to tell why. */
export type GateResult = { ok: true; containers: Map<string, ContainerSnapshot> } | { ok: false; reason: string; services: string[] };

export async function healthGate(engine: DockerEngine, o: GateOptions): Promise<GateResult> {
  const deadline = Date.now() + o.healthTimeoutMs;
  let lastWhy = 'nothing checked yet';
  let lastPending: string[] = [];
  while (!o.signal?.aborted) {
    let snap: Map<string, ContainerSnapshot>;
    try {
      snap = await snapshot(engine, o.project, o.services);
    } catch (err) {
      snap = new Map();
      lastWhy = `Docker engine: ${(err as Error).message}`;
    }
    const now = Date.now();
    const verdicts = o.services.map((s) => evaluate(s, snap.get(s), now, o.stableForMs));
    const failed = verdicts.find((v) => v.kind === 'fail');
    if (failed) return { ok: false, reason: failed.why, services: o.services.filter((_, i) => verdicts[i]!.kind === 'fail') };
    const pending = verdicts.filter((v): v is Extract<Verdict, { kind: 'pending' }> => v.kind === 'pending');
    lastPending = o.services.filter((_, i) => verdicts[i]!.kind === 'pending');
    if (pending.length === 0) {
      if (!o.probe) return { ok: true, containers: snap };
      const got = await probe(o.probe.url);
      if (got === o.probe.expect) return { ok: true, containers: snap };
      lastWhy = `probe ${o.probe.url}: ${typeof got === 'number' ? `HTTP ${got}` : got}, expected ${o.probe.expect}`;
    } else {
      lastWhy = pending.map((p) => p.why).join('; ');
    }
    o.onWaiting?.(lastWhy);
    if (Date.now() > deadline) return { ok: false, reason: `not healthy within ${Math.round(o.healthTimeoutMs / 1000)}s: ${lastWhy}`, services: lastPending };
    await sleep(500, o.signal);
  }
  return { ok: false, reason: 'cancelled', services: [] };
}

/** Fails if any container the gate passed dies, restarts, is replaced or turns unhealthy; a 0 window passes at once. */
export async function watchWindow(engine: DockerEngine, project: string, passed: Map<string, ContainerSnapshot>, ms: number, signal?: AbortSignal): Promise<{ ok: true } | { ok: false; reason: string; services: string[] }> {
  if (ms <= 0) return { ok: true }; // watch: 0s turns the window off
  const end = Date.now() + ms;
  while (Date.now() < end && !signal?.aborted) {
    await sleep(Math.min(1000, Math.max(0, end - Date.now())), signal);
    let snap: Map<string, ContainerSnapshot>;
    try {
      snap = await snapshot(engine, project, [...passed.keys()]);
    } catch {
      continue; // an engine hiccup is not the new version's fault; the gate will tell on rollback
    }
    for (const [service, before] of passed) {
      const now = snap.get(service);
      const fail = (reason: string) => ({ ok: false as const, reason, services: [service] });
      if (!now || now.id !== before.id) return fail(`${service}: container replaced during the watch window`);
      if (now.state !== 'running') return fail(`${service}: container ${now.state} during the watch window`);
      if (now.startedAt !== before.startedAt) return fail(`${service}: container restarted during the watch window`);
      if (now.health === 'unhealthy') return fail(`${service}: healthcheck failing during the watch window`);
    }
  }
  return { ok: true };
}

function probe(url: string): Promise<number | string> {
  return new Promise((resolve) => {
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(url, { method: 'GET', timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 5s')));
    req.on('error', (e) => resolve(e.message));
    req.end();
  });
}

/** Resolves after `ms`, or at once when `signal` aborts; its abort listener goes with it either way. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
