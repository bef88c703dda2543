// Telling systemd how the agent is (Type=notify, WatchdogSec=): READY=1 once
// every duty has started, WATCHDOG=1 from the event loop while it turns,
// STOPPING=1 on the way out. A hung agent (a blocked event loop, a SIGSTOP)
// stops pinging and systemd restarts it; a dead one is Restart=always's.
//
// The datagram is sent by a Node-API addon (native/sd-notify), loaded only
// when systemd asked for notifications ($NOTIFY_SOCKET): outside systemd, in
// tests and for every subcommand but `run`, nothing is loaded. Why an addon
// and not the `systemd-notify` program: see docs/performance.md
// ("systemd notifications").
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Addon {
  notify(message: string): number;
}

/** Where the addon is: beside dist/ in a release, built in place in a checkout. */
const CANDIDATES = ['native/sd_notify.node', 'native/sd-notify/build/Release/sd_notify.node'];

/** The addon file, looking up from this module's directory (dist/, or agent/systemd/ under tsx). */
export function findAddon(from = dirname(fileURLToPath(import.meta.url))): string | undefined {
  let dir = from;
  for (let up = 0; up < 4; up++) {
    for (const c of CANDIDATES) {
      const file = join(dir, c);
      if (existsSync(file)) return file;
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}

/**
 * How often to ping the watchdog, from systemd's environment: a quarter of
 * WATCHDOG_USEC (systemd's advice is under half; a quarter survives one late
 * turn of the loop), or undefined when there is no watchdog for this process
 * (unset, malformed, zero, or WATCHDOG_PID naming another process).
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || !/^\d{1,15}$/.test(usec)) return undefined;
  const n = Number(usec);
  if (n <= 0) return undefined;
  const forPid = env.WATCHDOG_PID;
  if (forPid !== undefined && forPid !== '' && forPid !== String(pid)) return undefined;
  return Math.max(1, Math.floor(n / 4000));
}

export interface Notifier {
  /** Every duty has started. Starts the watchdog pings, if systemd set a watchdog. */
  ready(status: string): void;
  status(status: string): void;
  stopping(): void;
}

const none: Notifier = { ready() {}, status() {}, stopping() {} };

export interface NotifyLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** The notifier for this process: a no-op unless started by systemd with a notify socket. */
export function systemdNotifier(log: NotifyLog, env: NodeJS.ProcessEnv = process.env): Notifier {
  if (!env.NOTIFY_SOCKET) return none;
  const file = findAddon();
  let addon: Addon;
  try {
    if (!file) throw new Error('native/sd_notify.node is missing from the installation');
    addon = createRequire(import.meta.url)(file) as Addon;
  } catch (err) {
    // systemd will time the start out (Type=notify) and say so; this line says why.
    log.error({ err }, `cannot load the systemd notification addon: ${(err as Error).message}`);
    return none;
  }
  let failures = 0;
  const send = (message: string) => {
    const r = addon.notify(message);
    if (r < 0 && failures++ < 3) log.warn({ errno: -r, message: message.split('\n')[0] }, 'systemd notification not sent');
  };
  let timer: NodeJS.Timeout | undefined;
  return {
    ready(status) {
      send(`READY=1\nSTATUS=${status}`);
      const every = watchdogIntervalMs(env, process.pid);
      if (every !== undefined && !timer) {
        send('WATCHDOG=1');
        // unref: the pings never keep the process alive by themselves.
        timer = setInterval(() => send('WATCHDOG=1'), every);
        timer.unref();
      }
    },
    status(status) {
      send(`STATUS=${status}`);
    },
    stopping() {
      if (timer) clearInterval(timer);
      timer = undefined;
      send('STOPPING=1');
    },
  };
}
