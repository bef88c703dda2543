// The agent's notifications to systemd (Type=notify, WatchdogSec=) through a
// real unix datagram socket, as systemd listens on one: READY=1 only once
// every duty has started (readyz answers 200 when it arrives), WATCHDOG=1
// from the event loop at a quarter of WATCHDOG_USEC, no ping while the
// process is stopped (what makes systemd restart a hung agent), STOPPING=1
// on SIGTERM. Without $NOTIFY_SOCKET the addon is not even loaded. The
// listener is python3: Node has no unix datagram sockets.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { removeDir, startAgent, tempDir, waitFor, type AgentProcess } from '../helpers/agent.js';

interface Datagram {
  t: number;
  msg: string;
}

const LISTENER = `
import json, os, socket, sys, time
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)  # the agent runs as another user
print(json.dumps({"t": time.time() * 1000, "msg": "LISTENING"}), flush=True)
while True:
    data = s.recv(4096)
    print(json.dumps({"t": time.time() * 1000, "msg": data.decode()}), flush=True)
`;

function listen(dir: string): { socket: string; got: Datagram[]; proc: ChildProcess } {
  const script = join(dir, 'listener.py');
  writeFileSync(script, LISTENER);
  const socket = join(dir, 'notify.sock');
  const proc = spawn('python3', ['-u', script, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  const got: Datagram[] = [];
  let buf = '';
  proc.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      got.push(JSON.parse(buf.slice(0, nl)) as Datagram);
      buf = buf.slice(nl + 1);
    }
  });
  return { socket, got, proc };
}

const pings = (got: Datagram[], from = 0) => got.filter((d) => d.msg === 'WATCHDOG=1' && d.t >= from).length;
const mapsAddon = (pid: number) => readFileSync(`/proc/${pid}/maps`, 'utf8').includes('sd_notify.node');

describe('systemd notifications', { timeout: 90_000 }, () => {
  const dirs: string[] = [];
  const procs: ChildProcess[] = [];
  const agents: AgentProcess[] = [];
  after(async () => {
    for (const a of agents) await a.stop('SIGKILL');
    for (const p of procs) p.kill('SIGKILL');
    dirs.forEach(removeDir);
  });

  it('READY=1 once every duty has started, watchdog pings from the event loop, none while stopped, STOPPING=1 on SIGTERM', async () => {
    const dir = tempDir('notify');
    dirs.push(dir);
    chmodSync(dir, 0o755);
    const l = listen(dir);
    procs.push(l.proc);
    await waitFor(() => l.got.some((d) => d.msg === 'LISTENING'), 10_000, () => 'python3 listener did not start');

    // WATCHDOG_USEC 400 ms: a ping every 100 ms.
    const agent = await startAgent({ env: { NOTIFY_SOCKET: l.socket, WATCHDOG_USEC: '400000' } });
    agents.push(agent);
    let readyzAtReady: number | undefined;
    await waitFor(async () => {
      const ready = l.got.find((d) => d.msg.startsWith('READY=1'));
      if (ready && readyzAtReady === undefined) readyzAtReady = (await agent.get('/readyz')).status;
      return ready !== undefined;
    }, 30_000, () => `no READY=1: ${JSON.stringify(l.got)}\n${agent.output.slice(-2000)}`);
    assert.equal(readyzAtReady, 200, 'READY=1 comes after every duty has started');
    const ready = l.got.find((d) => d.msg.startsWith('READY=1'))!;
    assert.match(ready.msg, /^READY=1\nSTATUS=running: .*health.*metrics/);
    assert.equal(l.got.filter((d) => d.msg.startsWith('READY=1')).length, 1, 'once');
    assert.ok(mapsAddon(agent.child.pid!), 'the addon is loaded under systemd');

    await new Promise((r) => setTimeout(r, 1000));
    const inASecond = pings(l.got, Date.now() - 1000);
    assert.ok(inASecond >= 6 && inASecond <= 13, `about 10 pings a second, got ${inASecond}`);

    // Stopped (what a hang looks like from outside): no ping, so systemd's watchdog fires.
    process.kill(agent.child.pid!, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, 300));
    const stoppedAt = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(pings(l.got, stoppedAt), 0, 'no ping while the process is stopped');
    process.kill(agent.child.pid!, 'SIGCONT');
    const contAt = Date.now();
    await waitFor(() => pings(l.got, contAt) >= 3, 5000, () => 'pings did not resume after SIGCONT');

    const stopped = await agent.stop('SIGTERM');
    assert.equal(stopped.code, 0);
    await waitFor(() => l.got.some((d) => d.msg === 'STOPPING=1'), 5000, () => `no STOPPING=1: ${JSON.stringify(l.got.slice(-5))}`);
    const stopping = l.got.find((d) => d.msg === 'STOPPING=1')!;
    assert.equal(pings(l.got, stopping.t + 50), 0, 'no ping after STOPPING=1');
  });

  it('without NOTIFY_SOCKET nothing is sent and the addon is not loaded; a WATCHDOG_PID of another process gets no pings', async () => {
    const plain = await startAgent({});
    agents.push(plain);
    await plain.waitReady(30_000);
    assert.equal(mapsAddon(plain.child.pid!), false, 'not loaded outside systemd');

    const dir = tempDir('notify-pid');
    dirs.push(dir);
    chmodSync(dir, 0o755);
    const l = listen(dir);
    procs.push(l.proc);
    await waitFor(() => l.got.some((d) => d.msg === 'LISTENING'), 10_000, () => 'python3 listener did not start');
    const other = await startAgent({ env: { NOTIFY_SOCKET: l.socket, WATCHDOG_USEC: '400000', WATCHDOG_PID: '1' } });
    agents.push(other);
    await waitFor(() => l.got.some((d) => d.msg.startsWith('READY=1')), 30_000, () => 'no READY=1');
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(pings(l.got), 0, 'the watchdog belongs to another process');
  });
});
