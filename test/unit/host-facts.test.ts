// Host facts: what os-release, lscpu, systemd-detect-virt and the compose CLI
// print, turned into status.get's `host`; a source that hangs is given up on;
// the CLI's header.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { HostInfo } from '../../agent/api/protocol.js';
import { Conditions } from '../../agent/events/conditions.js';
import { EventLog } from '../../agent/events/log.js';
import { boundedSource, HostFactsDuty } from '../../agent/host/duty.js';
import { createLogger } from '../../agent/logger.js';
import { openStore } from '../../agent/store/db.js';
import { cleanCpuModel, composeVersionOf, cpuFrom, detectVirtCommand, detectVirtResult, distributionOf, lscpuCommand, lscpuFields, parseOsRelease } from '../../agent/host/facts.js';
import { describeCpu, describeVirtualization, hostFactParts, wrapParts } from '../../server-cli/render/host.js';

const DEBIAN_12 = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
`;

describe('os-release', () => {
  it('Debian 12: name, version, codename and the pretty name', () => {
    assert.deepEqual(distributionOf(parseOsRelease(DEBIAN_12)), {
      id: 'debian',
      name: 'Debian GNU/Linux',
      version: '12',
      codename: 'bookworm',
      pretty: 'Debian GNU/Linux 12 (bookworm)',
    });
  });

  it('single quotes, escapes, comments; no PRETTY_NAME makes one from NAME and VERSION', () => {
    const fields = parseOsRelease("# comment\nNAME='Alpine Linux'\nID=alpine\nVERSION=\"3.20 \\\"edge\\\"\"\n");
    assert.deepEqual(distributionOf(fields), { id: 'alpine', name: 'Alpine Linux', version: null, codename: null, pretty: 'Alpine Linux 3.20 "edge"' });
  });

  it('an empty or foreign file is no distribution', () => {
    assert.equal(distributionOf(parseOsRelease('')), null);
    assert.equal(distributionOf(parseOsRelease('hello world\n')), null);
  });
});

describe('lscpu', () => {
  it('runs in the C locale with JSON output, as data', () => {
    assert.deepEqual(lscpuCommand().argv, ['lscpu', '--json']);
    assert.equal(lscpuCommand().env?.LC_ALL, 'C');
  });

  it('flat (util-linux 2.38) and nested (2.39+) JSON give the same fields', () => {
    const flat = JSON.stringify({
      lscpu: [
        { field: 'Architecture:', data: 'x86_64' },
        { field: 'CPU(s):', data: '16' },
        { field: 'Model name:', data: 'Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz' },
        { field: 'Thread(s) per core:', data: '2' },
        { field: 'Core(s) per socket:', data: '4' },
        { field: 'Socket(s):', data: '2' },
      ],
    });
    const nested = JSON.stringify({
      lscpu: [
        { field: 'Architecture:', data: 'x86_64' },
        { field: 'CPU(s):', data: '16' },
        {
          field: 'Vendor ID:',
          data: 'GenuineIntel',
          children: [
            {
              field: 'Model name:',
              data: 'Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz',
              children: [
                { field: 'Thread(s) per core:', data: '2' },
                { field: 'Core(s) per socket:', data: '4' },
                { field: 'Socket(s):', data: '2' },
              ],
            },
          ],
        },
      ],
    });
    const expected = { model: 'Intel Xeon CPU E5-2680 v4 @ 2.40GHz', cores: 16, physicalCores: 8, sockets: 2 };
    assert.deepEqual(cpuFrom(lscpuFields(flat), { model: null, cores: 1 }), expected);
    assert.deepEqual(cpuFrom(lscpuFields(nested), { model: null, cores: 1 }), expected);
  });

  it('an ARM server: lscpu names the core where /proc/cpuinfo has no model; "-" sockets are unknown', () => {
    const arm = JSON.stringify({
      lscpu: [
        { field: 'CPU(s):', data: '4' },
        { field: 'Vendor ID:', data: 'ARM', children: [{ field: 'Model name:', data: 'Neoverse-N1', children: [{ field: 'Core(s) per socket:', data: '4' }, { field: 'Socket(s):', data: '-' }] }] },
      ],
    });
    assert.deepEqual(cpuFrom(lscpuFields(arm), { model: 'unknown', cores: 4 }), { model: 'Neoverse-N1', cores: 4, physicalCores: null, sockets: null });
  });

  it('no lscpu (or not JSON): node:os model and count, cores and sockets unknown', () => {
    assert.deepEqual(cpuFrom(lscpuFields('lscpu: command not found'), { model: 'AMD EPYC 7B13 64-Core Processor', cores: 2 }), {
      model: 'AMD EPYC 7B13 64-Core Processor',
      cores: 2,
      physicalCores: null,
      sockets: null,
    });
    assert.deepEqual(cpuFrom(new Map(), { model: 'unknown', cores: 1 }), { model: null, cores: 1, physicalCores: null, sockets: null });
  });

  it('model names lose (R) and (TM), and extra spaces', () => {
    assert.equal(cleanCpuModel('Intel(R) Core(TM) i7-8700   CPU @ 3.20GHz'), 'Intel Core i7-8700 CPU @ 3.20GHz');
    assert.equal(cleanCpuModel(''), null);
    assert.equal(cleanCpuModel(null), null);
  });
});

describe('systemd-detect-virt', () => {
  it('asks for the VM and the container separately', () => {
    assert.deepEqual(detectVirtCommand('vm').argv, ['systemd-detect-virt', '--vm']);
    assert.deepEqual(detectVirtCommand('container').argv, ['systemd-detect-virt', '--container']);
  });

  it('an identifier with exit 0; "none" with exit 1; anything else is unknown', () => {
    assert.equal(detectVirtResult('kvm\n', 0), 'kvm');
    assert.equal(detectVirtResult('none\n', 1), 'none');
    assert.equal(detectVirtResult('', 1), null);
    assert.equal(detectVirtResult('kvm\n', null), null);
    assert.equal(detectVirtResult('Failed to check for virtualization: Permission denied\n', 1), null);
  });
});

describe('compose version', () => {
  it('v2 and v1 output', () => {
    assert.equal(composeVersionOf('Docker Compose version v2.26.1\n'), '2.26.1');
    assert.equal(composeVersionOf('Docker Compose version 2.26.1-4\n'), '2.26.1-4');
    assert.equal(composeVersionOf('docker-compose version 1.29.2, build unknown\ndocker-py version: 5.0.3\n'), '1.29.2');
    assert.equal(composeVersionOf('unknown command "compose"'), null);
  });
});

describe('a bounded source', () => {
  it('its answer when it answers in time', async () => {
    assert.equal(await boundedSource(async () => 'ok', 1000, new AbortController().signal), 'ok');
  });

  it('null when it fails', async () => {
    assert.equal(await boundedSource(() => Promise.reject(new Error('no socket')), 1000, new AbortController().signal), null);
  });

  it('null after the timeout when it never answers, even ignoring its signal', async () => {
    const t0 = Date.now();
    assert.equal(await boundedSource(() => new Promise<string>(() => {}), 50, new AbortController().signal), null);
    assert.ok(Date.now() - t0 < 1000);
  });

  it('null at once when the agent stops', async () => {
    const stop = new AbortController();
    const answer = boundedSource(() => new Promise<string>(() => {}), 60_000, stop.signal);
    stop.abort();
    assert.equal(await answer, null);
  });

  it('the test delay holds the source back, within the same timeout', async () => {
    let called = false;
    const answer = await boundedSource(
      async () => {
        called = true;
        return 'late';
      },
      50,
      new AbortController().signal,
      10_000,
    );
    assert.equal(answer, null);
    assert.equal(called, false);
  });
});

const HOST: HostInfo = {
  name: 'box-1',
  os: 'Debian GNU/Linux 12 (bookworm)',
  kernel: '6.1.0-18-amd64',
  arch: 'x64',
  cpus: 2,
  memTotal: 24 * 2 ** 30,
  uptimeSec: 3600,
  distribution: { id: 'debian', name: 'Debian GNU/Linux', version: '12', codename: 'bookworm', pretty: 'Debian GNU/Linux 12 (bookworm)' },
  cpu: { model: 'Intel Xeon Processor', cores: 2, physicalCores: 2, sockets: 1 },
  virtualization: { vm: 'kvm', container: 'none' },
  docker: { engine: '20.10.24', api: '1.41', compose: '2.26.1', composeCli: 'docker compose' },
  factsCollectedAt: '2025-06-01T12:00:00.000Z',
};

describe('the status header', () => {
  it('names each fact an operator asks first, in order', () => {
    assert.deepEqual(hostFactParts(HOST), [
      'Debian GNU/Linux 12 (bookworm)',
      'kernel 6.1.0-18-amd64',
      'x64',
      '2× Intel Xeon Processor',
      '24 GiB',
      'KVM',
      'Docker 20.10.24',
      'compose 2.26.1',
    ]);
  });

  it('unknown facts say so; no stack, no Docker; compose v1 by its name', () => {
    const unknown: HostInfo = { ...HOST, cpu: { model: null, cores: 1, physicalCores: null, sockets: null }, virtualization: { vm: null, container: null }, docker: null, factsCollectedAt: null };
    assert.deepEqual(hostFactParts(unknown).slice(3), ['1 CPU (model unknown)', '24 GiB', 'virtualization unknown']);
    const v1: HostInfo = { ...HOST, docker: { engine: null, api: null, compose: '1.29.2', composeCli: 'docker-compose' } };
    assert.deepEqual(hostFactParts(v1).slice(-2), ['Docker unknown', 'docker-compose 1.29.2']);
  });

  it('virtualization: bare metal, a container on a VM, a container alone', () => {
    assert.equal(describeVirtualization({ vm: 'none', container: 'none' }), 'bare metal');
    assert.equal(describeVirtualization({ vm: 'kvm', container: 'docker' }), 'KVM, in a Docker container');
    assert.equal(describeVirtualization({ vm: null, container: 'lxc' }), 'in a LXC container');
    assert.equal(describeVirtualization({ vm: 'microsoft', container: null }), 'Hyper-V');
    assert.equal(describeCpu({ model: 'Neoverse-N1', cores: 4, physicalCores: 4, sockets: 1 }), '4× Neoverse-N1');
  });

  it('breaks between parts only, never past the width when a part fits', () => {
    const lines = wrapParts('web-1', hostFactParts(HOST), 60);
    assert.deepEqual(lines, ['web-1  Debian GNU/Linux 12 (bookworm)', '  kernel 6.1.0-18-amd64 · x64 · 2× Intel Xeon Processor', '  24 GiB · KVM · Docker 20.10.24 · compose 2.26.1']);
    assert.ok(lines.every((l) => l.length <= 60));
    assert.deepEqual(wrapParts('web-1', ['a', 'b'], 200), ['web-1  a · b']);
    assert.deepEqual(wrapParts('web-1', [], 200), ['web-1']);
  });
});

describe('the host duty', () => {
  it('collects once after start; asks Docker again only when the engine comes back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dh-host-'));
    const db = openStore(dir);
    const events = new EventLog(db);
    const conditions = new Conditions(events);
    const engineVersions = ['20.10.24', '24.0.7'];
    let asked = 0;
    const duty = new HostFactsDuty({
      log: createLogger('silent'),
      events,
      docker: {
        engineVersion: async () => ({ Version: engineVersions[asked++], ApiVersion: '1.41' }),
        composeCli: () => Promise.reject(new Error('no compose here')),
      },
    });
    try {
      assert.equal(duty.current().factsCollectedAt, null);
      await duty.start();
      await waitUntil(() => duty.current().factsCollectedAt !== null);
      assert.equal(asked, 1);
      assert.deepEqual(duty.current().docker, { engine: '20.10.24', api: '1.41', compose: null, composeCli: null });

      conditions.raise('disk.low', '/', 'warning', 'full');
      conditions.clear('disk.low', '/', 'fine again');
      conditions.raise('docker.unreachable', 'engine', 'critical', 'gone');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(asked, 1, 'neither another condition nor the engine going away asks again');
      conditions.clear('docker.unreachable', 'engine', 'back');
      await waitUntil(() => duty.current().docker?.engine === '24.0.7');
      assert.equal(asked, 2);
    } finally {
      await duty.stop();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

async function waitUntil(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}
