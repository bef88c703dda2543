// Many followers of one log stream: N authenticated WebSocket connections,
// each with `stack.logs {service, follow: true}` on a service that prints a
// line every 100 ms. Measures the agent's RSS idle / with the followers /
// after they left (goal: growth under 50 MB with 200), its CPU, and the
// delivery lag of every line: arrival at the client minus the line's own
// timestamp (the `ts` Docker stamped when the line left the container, ms
// resolution), p50/p99/max. Also counts lines lost or repeated per follower.
// A second lag, from the container's own clock (/proc/uptime in the line,
// 10 ms resolution), includes the container-to-dockerd leg as a cross-check.
//
//   node --import tsx test/bench/api-streams.ts [--clients 200] [--seconds 30]
//
// Needs `npm run build` and scripts/test-env.sh up. The ticker runs
// deckhand-test/busybox (the web image's base, which has no ENTRYPOINT, so a
// compose `command` runs as given; the web image's /entrypoint.sh ignores
// arguments). All containers are removed at the end.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { removeDir, ROOT, unitEnvironment } from '../helpers/agent.js';
import { startApiAgent, type ApiAgent } from '../helpers/api.js';
import { requireDocker, TestStack } from '../helpers/stack.js';
import { cpuDelta, cpuSeconds, cpuSecondsByName, goalLine, machineInfo, mb, memory, numberOption, percentile, printMachine, printResult, round, sleep } from './lib.js';

const CLIENTS = numberOption('clients', 200);
const SECONDS = numberOption('seconds', 30);
/** Lines stamped before this long after the last subscription are not counted (the opening burst is sorted for 300 ms by design). */
const SETTLE_MS = 3000;
const BUSYBOX = 'deckhand-test/busybox:latest';
/** `$$`: compose would interpolate a single `$`. */
const TICKER = 'i=0; while :; do i=$$((i+1)); read up idle < /proc/uptime; echo "tick $$i up=$$up"; sleep 0.1; done';

/** Sockets the agent holds (API clients, its Docker API requests). */
function openSockets(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      /* closed while we looked */
    }
  }
  return n;
}

/** Wall-clock ms of a reading of /proc/uptime (CLOCK_BOOTTIME, the containers' clock too). */
function uptimeOffsetMs(): number {
  const before = Date.now();
  const up = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
  return (before + Date.now()) / 2 - up;
}

interface Follower {
  ws: WebSocket;
  lags: number[];
  upLags: number[];
  lastTick: number;
  lost: number;
  repeated: number;
  lines: number;
}

function follow(api: ApiAgent, token: string, countFrom: () => number, upOffset: number): Promise<Follower> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(api.url, { rejectUnauthorized: false, headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false });
    const f: Follower = { ws, lags: [], upLags: [], lastTick: 0, lost: 0, repeated: 0, lines: 0 };
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'stack.logs', params: { service: 'ticker', follow: true, tail: 0 } })));
    ws.on('message', (data) => {
      const now = Date.now();
      const msg = JSON.parse(String(data));
      if (msg.id === 1) {
        if (typeof msg.result?.stream !== 'number') reject(new Error(`stack.logs refused: ${JSON.stringify(msg)}`));
        else resolve(f);
        return;
      }
      const ev = msg.params?.event;
      if (ev?.type !== 'line') return;
      const m = /^tick (\d+) up=([\d.]+)$/.exec(ev.text);
      if (!m) return;
      const tick = Number(m[1]);
      if (f.lastTick !== 0) {
        if (tick <= f.lastTick) f.repeated++;
        else f.lost += tick - f.lastTick - 1;
      }
      f.lastTick = Math.max(f.lastTick, tick);
      const stamped = Date.parse(ev.ts);
      if (stamped < countFrom()) return;
      f.lines++;
      f.lags.push(now - stamped);
      f.upLags.push(now - (upOffset + Number(m[2]) * 1000));
    });
  });
}

function inotifyInstances(): number {
  try {
    return Number(readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8').trim());
  } catch {
    return Number.NaN;
  }
}

function summary(xs: number[]): { p50: number; p99: number; max: number; mean: number } {
  return { p50: round(percentile(xs, 50), 1), p99: round(percentile(xs, 99), 1), max: round(Math.max(...xs), 1), mean: round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length), 1) };
}

async function rssSettled(pid: number, ms: number): Promise<number> {
  const samples: number[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    samples.push(memory(pid).rssKb);
    await sleep(250);
  }
  return samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]!;
}

async function main(): Promise<void> {
  requireDocker();
  const machine = machineInfo(true);
  printMachine(machine);
  console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const stack = TestStack.unique('bench-streams', { ticker: { image: BUSYBOX, command: ['sh', '-c', TICKER] } });
  let api: ApiAgent | undefined;
  const followers: Follower[] = [];
  try {
    await stack.up();
    api = await startApiAgent({ config: { stack: { project: stack.project, dir: stack.dir }, metrics: { interval: '10s' } }, env: unitEnvironment() });
    const pid = api.agent.child.pid!;
    const token = api.token('bench-follow', 'read');
    const upOffset = uptimeOffsetMs();

    // Warm: one follower for a few seconds, so code is compiled and pools exist.
    let countFrom = Number.POSITIVE_INFINITY;
    const warm = await follow(api, token, () => countFrom, upOffset);
    await sleep(3000);
    warm.ws.close();
    const idleKb = await rssSettled(pid, 3000);
    const idleSockets = openSockets(pid);
    console.log(`\nagent RSS idle (warmed, no client): ${mb(idleKb * 1024)} MB; ${idleSockets} sockets`);

    // Subscribe N followers, a few at a time (like N operators starting `deckhand logs -f`).
    const t0 = performance.now();
    for (let i = 0; i < CLIENTS; i += 20) {
      followers.push(...(await Promise.all(Array.from({ length: Math.min(20, CLIENTS - i) }, () => follow(api!, token, () => countFrom, upOffset)))));
    }
    const subscribeMs = performance.now() - t0;
    console.log(`${CLIENTS} followers subscribed in ${Math.round(subscribeMs)} ms`);
    countFrom = Date.now() + SETTLE_MS;
    await sleep(SETTLE_MS);

    const cpu0 = cpuSeconds(pid);
    const dockerd0 = cpuSecondsByName('dockerd');
    const w0 = performance.now();
    const rss: number[] = [];
    while (performance.now() - w0 < SECONDS * 1000) {
      rss.push(memory(pid).rssKb);
      await sleep(1000);
    }
    const wall = (performance.now() - w0) / 1000;
    const agentCpu = round(((cpuSeconds(pid) - cpu0) / wall) * 100, 1);
    const dockerdCpu = round((cpuDelta(dockerd0, cpuSecondsByName('dockerd')) / wall) * 100, 1);
    const streamingKb = rss.sort((a, b) => a - b)[Math.floor(rss.length / 2)]!;
    const streamingMaxKb = rss[rss.length - 1]!;
    const streamingSockets = openSockets(pid);

    const lags = followers.flatMap((f) => f.lags);
    const upLags = followers.flatMap((f) => f.upLags);
    const lost = followers.reduce((a, f) => a + f.lost, 0);
    const repeated = followers.reduce((a, f) => a + f.repeated, 0);
    const perFollower = followers.map((f) => f.lines);
    for (const f of followers) f.ws.close();
    const afterKb = await rssSettled(pid, 5000);
    const afterSockets = openSockets(pid);

    const lag = summary(lags);
    const upLag = summary(upLags);
    // Followers whose typical line is late: Docker's follow falls back to polling every 200 ms
    // when it has no inotify instance left (fs.inotify.max_user_instances, 128 by default).
    const slowFollowers = followers.filter((f) => percentile(f.lags, 50) > 50).length;
    const growthMb = mb((streamingKb - idleKb) * 1024);
    console.log(`measured ${round(wall, 1)} s: ${lags.length} lines delivered (${Math.min(...perFollower)}-${Math.max(...perFollower)} per follower), ${lost} lost, ${repeated} repeated`);
    console.log(`agent RSS with ${CLIENTS} followers: median ${mb(streamingKb * 1024)} MB, max ${mb(streamingMaxKb * 1024)} MB; 5 s after they left: ${mb(afterKb * 1024)} MB`);
    console.log(`agent sockets: idle ${idleSockets}, with the followers ${streamingSockets}, after they left ${afterSockets}`);
    console.log(`agent CPU ${agentCpu} % of one core, dockerd ${dockerdCpu} % (${CLIENTS} log requests to it)`);
    console.log(`delivery lag from Docker's timestamp:     p50 ${lag.p50} ms, p99 ${lag.p99} ms, max ${lag.max} ms`);
    console.log(`delivery lag from the container's clock:  p50 ${upLag.p50} ms, p99 ${upLag.p99} ms, max ${upLag.max} ms (10 ms resolution, includes container -> dockerd)`);
    console.log(`followers with a median lag over 50 ms: ${slowFollowers} of ${CLIENTS} (fs.inotify.max_user_instances = ${inotifyInstances()})`);
    console.log(goalLine(`RSS growth with ${CLIENTS} followers`, growthMb, 'MB', { below: 50 }));
    console.log(goalLine('lines lost or repeated', lost + repeated, 'lines', { max: 0 }));
    console.log(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    printResult('api-streams', {
      machine,
      clients: CLIENTS,
      seconds: round(wall, 1),
      subscribeMs: Math.round(subscribeMs),
      sockets: { idle: idleSockets, streaming: streamingSockets, afterClose: afterSockets },
      rssMb: { idle: mb(idleKb * 1024), streaming: mb(streamingKb * 1024), streamingMax: mb(streamingMaxKb * 1024), afterClose: mb(afterKb * 1024), growth: growthMb, goalGrowth: 50 },
      cpuPercentOfCore: { agent: agentCpu, dockerd: dockerdCpu },
      lines: { delivered: lags.length, lost, repeated },
      lagMs: lag,
      lagFromContainerClockMs: upLag,
      slowFollowers,
      inotifyMaxUserInstances: inotifyInstances(),
    });
  } finally {
    for (const f of followers) f.ws.terminate();
    await api?.agent.stop();
    if (api) removeDir(api.agent.dir);
    await stack.down();
    removeDir(stack.dir);
    const left = await stack.docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${stack.project}`).catch(() => '?');
    console.log(left.trim() === '' ? 'containers removed' : `containers left behind: ${left.trim()}`);
  }
}

await main();
