// What a systemd notification (a watchdog ping) costs the agent, sent the
// two ways a Node process can: the Node-API addon the agent uses
// (native/sd-notify: one sendto from the process itself) against spawning
// the `systemd-notify` program (Node has no unix datagram sockets). Both
// send to the same real datagram socket (a python3 listener, as systemd
// listens), which counts what arrives.
//
//   node --import tsx test/bench/sd-notify.ts [--messages 2000] [--spawns 200]
//
// Figures: wall and CPU (this process's user+sys, plus its children's for
// the program) per message; RSS this process gains by loading the addon;
// the peak RSS of one systemd-notify process. A watchdog at WatchdogSec=20s
// pings every 5 s: 17,280 pings a day, so a day's cost is per-message × that.
import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findAddon } from '../../agent/systemd/notify.js';
import { removeDir, tempDir, waitFor } from '../helpers/agent.js';
import { machineInfo, numberOption, printMachine, printResult, round } from './lib.js';

const MESSAGES = numberOption('messages', 2000);
const SPAWNS = numberOption('spawns', 200);
const PINGS_PER_DAY = (24 * 3600) / 5;

const LISTENER = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("LISTENING", flush=True)
n = 0
while True:
    s.recv(4096)
    n += 1
    if n % 100 == 0 or n < 3:
        print(n, flush=True)
`;

function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** This process's children's CPU (cutime + cstime of waited-for children), ms. */
function childrenCpuMs(): number {
  const f = readFileSync('/proc/self/stat', 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  const tck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ((Number(rest[13]) + Number(rest[14])) / tck) * 1000;
}

const rssKb = () => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);

function hwmOf(pid: number): number {
  try {
    return Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  printMachine(machineInfo());
  const dir = tempDir('sdnotify');
  const socket = join(dir, 'notify.sock');
  writeFileSync(join(dir, 'listener.py'), LISTENER);
  const listener = spawn('python3', ['-u', join(dir, 'listener.py'), socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  let received = 0;
  let listening = false;
  listener.stdout!.on('data', (c: Buffer) => {
    for (const line of c.toString().trim().split('\n')) {
      if (line === 'LISTENING') listening = true;
      else received = Math.max(received, Number(line));
    }
  });
  try {
    await waitFor(() => listening, 10_000, () => 'python3 listener');
    process.env.NOTIFY_SOCKET = socket;

    // The addon: load cost, then MESSAGES pings.
    const file = findAddon();
    if (!file) throw new Error('native/sd-notify is not built (npm run build)');
    global.gc?.();
    const before = rssKb();
    const addon = createRequire(import.meta.url)(file) as { notify(m: string): number };
    const loadKb = rssKb() - before;
    let t0 = performance.now();
    let c0 = selfCpuMs();
    for (let i = 0; i < MESSAGES; i++) if (addon.notify('WATCHDOG=1') !== 1) throw new Error('addon: not sent');
    const addonWallUs = ((performance.now() - t0) / MESSAGES) * 1000;
    const addonCpuUs = ((selfCpuMs() - c0) / MESSAGES) * 1000;
    await waitFor(() => received >= MESSAGES, 10_000, () => `listener got ${received} of ${MESSAGES}`);

    // The program: SPAWNS pings, one process each, as a watchdog loop would.
    const base = received;
    let peakKb = 0;
    t0 = performance.now();
    c0 = selfCpuMs();
    const k0 = childrenCpuMs();
    for (let i = 0; i < SPAWNS; i++) {
      await new Promise<void>((resolve, reject) => {
        const child = spawn('systemd-notify', [`--pid=${process.pid}`, 'WATCHDOG=1'], { stdio: 'ignore' });
        const poll = setInterval(() => (peakKb = Math.max(peakKb, hwmOf(child.pid!))), 1);
        child.on('error', reject);
        child.on('exit', (code) => {
          clearInterval(poll);
          if (code === 0) resolve();
          else reject(new Error(`systemd-notify exit ${code}`));
        });
      });
    }
    const progWallUs = ((performance.now() - t0) / SPAWNS) * 1000;
    const progSelfCpuUs = ((selfCpuMs() - c0) / SPAWNS) * 1000;
    const progChildCpuUs = ((childrenCpuMs() - k0) / SPAWNS) * 1000;
    await waitFor(() => received >= base + SPAWNS, 10_000, () => `listener got ${received - base} of ${SPAWNS}`);

    const day = (us: number) => round((us * PINGS_PER_DAY) / 1e6, 2);
    console.log(`addon:          ${round(addonWallUs, 1)} µs wall, ${round(addonCpuUs, 1)} µs CPU per message (${MESSAGES} sent, all received); loading it: +${loadKb} kB RSS`);
    console.log(`systemd-notify: ${round(progWallUs / 1000, 2)} ms wall, ${round((progSelfCpuUs + progChildCpuUs) / 1000, 2)} ms CPU per message (${round(progSelfCpuUs / 1000, 2)} ms in node spawning it, ${round(progChildCpuUs / 1000, 2)} ms in the program); each program peaks at ${round(peakKb / 1024, 1)} MB RSS`);
    console.log(`a day of pings every 5 s: addon ${day(addonCpuUs)} s CPU, systemd-notify ${day(progSelfCpuUs + progChildCpuUs)} s CPU`);
    printResult('sd-notify', {
      messages: MESSAGES,
      spawns: SPAWNS,
      addon: { wallUs: round(addonWallUs, 2), cpuUs: round(addonCpuUs, 2), loadRssKb: loadKb },
      program: { wallMs: round(progWallUs / 1000, 3), cpuMs: round((progSelfCpuUs + progChildCpuUs) / 1000, 3), spawnCpuMs: round(progSelfCpuUs / 1000, 3), peakRssMb: round(peakKb / 1024, 1) },
      cpuSecondsPerDay: { addon: day(addonCpuUs), program: day(progSelfCpuUs + progChildCpuUs) },
    });
  } finally {
    listener.kill('SIGKILL');
    removeDir(dir);
  }
}

await main();
