// How fast deckhand brings back a container that died: a one-service stack
// (the test web image, network_mode host), the built agent supervising it,
// and `docker kill` of the service's container N times. Each kill must be a
// FIRST restart in the restart policy's eyes (those are immediate; later ones
// in the crash-loop window get the backoff delay), so the policy forgets its
// restarts after `crashloop.within: 2s` and the kills are 3 s apart;
// `crashloop.restarts: 100` keeps the crash-loop rule out of the way.
//
//   node --import tsx test/bench/supervision-restart.ts [--kills 20] [--gap 3] [--verbose]
//
// --verbose runs the agent at log level debug and prints its log lines from
// the death to the start of every kill that took 1 s or more.
//
// Figures per kill:
//   engine   State.FinishedAt of the killed container -> State.StartedAt of
//            the running one (docker inspect; the engine's own clock)
//   events   the engine's `die` event -> its `start` event (timeNano)
//   wall     `docker kill` spawned here -> the `start` event seen here
//            (includes the docker CLI's own start-up, ~20-50 ms)
// The agent must have done every restart: its /health restart count and its
// `service.restarted` events are checked, and its log must say each restart
// was the first in the window (restartsInWindow 1).
//
// Needs: `npm run build` (dist/), scripts/test-env.sh up (dockerd, test images).
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { freePort, removeDir, waitFor } from '../helpers/agent.js';
import { connect, startApiAgent, type ApiAgent } from '../helpers/api.js';
import { requireDocker, TestStack } from '../helpers/stack.js';
import { flagOption, goalLine, goalMet, machineInfo, numberOption, percentile, printMachine, printResult, round, sleep, cleanupRegistry } from './lib.js';

const KILLS = numberOption('kills', 20);
const GAP_S = numberOption('gap', 3);
const GOAL_P50_MS = 1000;
/** Prints the agent's log lines between death and start for every kill slower than the goal. */
const VERBOSE = flagOption('verbose');
const RESTART = { backoff: '2s', maxBackoff: '5m', crashloop: { restarts: 100, within: '2s' } };

// ---------------------------------------------------------------- engine API --

const SOCKET = process.env.DOCKER_HOST?.startsWith('unix://') ? process.env.DOCKER_HOST.slice('unix://'.length) : '/var/run/docker.sock';

function engineGet(path: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: SOCKET, path, method: 'GET', timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`GET ${path}: HTTP ${res.statusCode} ${body}`))));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timeout`)));
    req.end();
  });
}

interface EngineEvent {
  status?: string;
  Action: string;
  id: string;
  timeNano: number;
  /** performance.now() when this process read it. */
  seenAt: number;
}

/** Follows the engine's container events for one compose service. */
function followEvents(project: string, service: string, onEvent: (e: EngineEvent) => void): { close(): void } {
  const filters = JSON.stringify({ type: ['container'], label: [`com.docker.compose.project=${project}`, `com.docker.compose.service=${service}`] });
  const req = request({ socketPath: SOCKET, path: `/events?filters=${encodeURIComponent(filters)}`, method: 'GET' }, (res) => {
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      const seenAt = performance.now();
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) onEvent({ ...(JSON.parse(line) as Omit<EngineEvent, 'seenAt'>), seenAt });
      }
    });
  });
  req.on('error', () => undefined);
  req.end();
  return { close: () => req.destroy() };
}

/** Docker's RFC 3339 times carry nanoseconds; Date.parse keeps milliseconds only. */
function engineTimeMs(t: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) return Date.parse(t);
  return Date.parse(`${m[1]}${m[3]}`) + Number(`0${m[2] ?? ''}`) * 1000;
}

function runDocker(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`docker ${args.join(' ')}: exit ${code} ${err}`))));
  });
}

// ---------------------------------------------------------------- the bench --

const { cleanups, cleanup } = cleanupRegistry();

interface KillFigures {
  engineMs: number;
  eventsMs: number;
  wallMs: number;
  killCmdMs: number;
  sameContainer: boolean;
}

async function main(): Promise<void> {
  requireDocker();
  const machine = machineInfo(true);
  printMachine(machine);
  console.log(`restart policy: ${JSON.stringify(RESTART)}; ${KILLS} kills, ${GAP_S} s apart`);

  const stack = TestStack.unique('bench-sup', { web: { environment: { PORT: String(await freePort()) } } });
  cleanups.push(() => removeDir(stack.dir));
  cleanups.push(() => stack.down());
  await stack.up();

  const a: ApiAgent = await startApiAgent({ config: { stack: { project: stack.project, dir: stack.dir, restart: RESTART } }, env: { DECKHAND_LOG_LEVEL: VERBOSE ? 'debug' : 'info' } });
  cleanups.push(() => removeDir(a.agent.dir));
  cleanups.push(async () => void (await a.agent.stop()));
  const check = async () => (await a.agent.get('/health')).json().checks['service:web']?.[0];
  await waitFor(async () => (await check())?.observedValue === 'healthy', 30_000, () => 'web healthy under the agent');

  const events: EngineEvent[] = [];
  const follower = followEvents(stack.project, 'web', (e) => events.push(e));
  cleanups.push(() => follower.close());
  await sleep(300); // the event stream is open before the first kill

  const figures: KillFigures[] = [];
  for (let i = 1; i <= KILLS; i++) {
    const shortId = await stack.containerId('web');
    if (!shortId) throw new Error(`kill ${i}: no running web container`);
    const id = String((await engineGet(`/containers/${shortId}/json`)).Id); // events carry the full ID
    const from = events.length;
    const t0 = performance.now();
    await runDocker(['kill', id]);
    const killCmdMs = performance.now() - t0;
    let start: EngineEvent | undefined;
    await waitFor(() => (start = events.slice(from).find((e) => e.Action === 'start')) !== undefined, 15_000, () => `kill ${i}: a start event (agent output:\n${a.agent.output.slice(-2000)})`);
    const die = events.slice(from).find((e) => e.Action === 'die' && e.id === id);
    const started = await engineGet(`/containers/${start!.id}/json`);
    const killed = start!.id === id ? started : await engineGet(`/containers/${id}/json`);
    const f: KillFigures = {
      engineMs: round(engineTimeMs(started.State.StartedAt) - engineTimeMs(killed.State.FinishedAt), 1),
      eventsMs: die ? round((start!.timeNano - die.timeNano) / 1e6, 1) : Number.NaN,
      wallMs: round(start!.seenAt - t0, 1),
      killCmdMs: round(killCmdMs, 1),
      sameContainer: start!.id === id,
    };
    figures.push(f);
    if (VERBOSE && die && f.eventsMs >= GOAL_P50_MS) {
      const from = die.timeNano / 1e6 - 100;
      const to = start!.timeNano / 1e6 + 100;
      for (const l of a.agent.logLines()) {
        const t = Date.parse(String(l.time));
        if (t >= from && t <= to) console.log(`    +${String(Math.round(t - die.timeNano / 1e6)).padStart(5)} ms  ${JSON.stringify(l).slice(0, 300)}`);
      }
    }
    console.log(`kill ${String(i).padStart(2)}: engine ${String(f.engineMs).padStart(7)} ms   events ${String(f.eventsMs).padStart(7)} ms   wall ${String(f.wallMs).padStart(7)} ms   (docker kill itself ${f.killCmdMs} ms${f.sameContainer ? '' : ', new container'})`);
    await waitFor(async () => (await check())?.restarts === i, 10_000, () => `restart ${i} counted by the agent`);
    if (i < KILLS) await sleep(GAP_S * 1000);
  }

  // The agent did them, each as the first restart in its window.
  const c = await connect(a.url, a.token('bench', 'read'));
  const restartedEvents = (await c.call('events.list', { type: 'service.restarted', limit: 1000 })).result.events.length;
  c.close();
  const broughtBack = a.agent.logLines().filter((l) => l.msg === 'service brought back');
  const windows = broughtBack.map((l) => Number(l.restartsInWindow));
  const notFirst = windows.filter((n) => n !== 1).length;
  // Errors the agent reported meanwhile (e.g. a second start of a container already starting).
  const errors = a.agent.logLines().filter((l) => Number(l.level) >= 50).map((l) => String(l.msg));
  const errorKinds = [...new Set(errors.map((m) => m.replace(/[0-9a-f]{12,}/g, 'ID')))];

  const col = (k: keyof Omit<KillFigures, 'sameContainer'>) => figures.map((f) => f[k]);
  const stat = (xs: number[]) => ({ p50: percentile(xs, 50), p90: percentile(xs, 90), max: Math.max(...xs), min: Math.min(...xs) });
  const engine = stat(col('engineMs'));
  const ev = stat(col('eventsMs').filter(Number.isFinite));
  const wall = stat(col('wallMs'));
  console.log('');
  console.log(`death -> running, ${figures.length} kills        p50        p90        max`);
  const row = (label: string, s: ReturnType<typeof stat>) => console.log(`${label.padEnd(34)} ${String(s.p50).padStart(7)} ms ${String(s.p90).padStart(7)} ms ${String(s.max).padStart(7)} ms`);
  row('engine (FinishedAt -> StartedAt)', engine);
  row('engine events (die -> start)', ev);
  row('wall (docker kill -> start seen)', wall);
  console.log(`agent: ${broughtBack.length} restarts logged, ${restartedEvents} service.restarted events, ${notFirst} not the first in their window, ${errors.length} errors logged`);
  for (const m of errorKinds.slice(0, 5)) console.log(`  agent error: ${m.slice(0, 200)}`);
  const slow = figures.filter((f) => f.eventsMs >= GOAL_P50_MS).length;
  console.log(`${slow} of ${figures.length} restarts took ${GOAL_P50_MS} ms or more after the die event (--verbose shows the agent's log around them)`);
  console.log(goalLine('p50 death -> running (engine)', engine.p50, 'ms', { below: GOAL_P50_MS }));
  console.log(goalLine('p50 kill -> running (wall)', wall.p50, 'ms', { below: GOAL_P50_MS }));
  const valid = broughtBack.length === KILLS && restartedEvents === KILLS && notFirst === 0;
  if (!valid) console.log('WARNING: the agent did not do exactly one first-in-window restart per kill; the figures may include backoff or Docker restarts');

  printResult('supervision-restart', {
    machine,
    kills: KILLS,
    gapSeconds: GAP_S,
    restart: RESTART,
    engineMs: engine,
    eventsMs: ev,
    wallMs: wall,
    perKill: figures,
    agentRestarts: broughtBack.length,
    agentEvents: restartedEvents,
    notFirstInWindow: notFirst,
    slowRestarts: slow,
    agentErrors: errors.length,
    agentErrorKinds: errorKinds,
    valid,
    goal: { p50BelowMs: GOAL_P50_MS, met: goalMet(engine.p50, { below: GOAL_P50_MS }) && goalMet(wall.p50, { below: GOAL_P50_MS }) },
  });
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await cleanup();
}
