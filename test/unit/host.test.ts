import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuPercent, diskUsedPercent, parseLoadavg, parseMeminfo, parseMounts, parseNetDev, parseProcStat } from '../../agent/duties/metrics/host.js';

describe('host parsers', () => {
  it('/proc/stat: iowait counts as idle, guest is not counted twice', () => {
    const t = parseProcStat('cpu  100 10 50 800 40 0 0 0 30 0\ncpu0 1 2 3\n');
    assert.deepEqual(t, { busy: 160, total: 1000 });
  });

  it('CPU % is the busy share of the delta', () => {
    const a = parseProcStat('cpu  100 0 100 800 0 0 0 0 0 0');
    const b = parseProcStat('cpu  150 0 150 900 0 0 0 0 0 0');
    assert.equal(cpuPercent(a, b), 50);
    assert.equal(cpuPercent(b, b), 0);
  });

  it('/proc/meminfo: used = total - available, in bytes', () => {
    const m = parseMeminfo('MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\nSwapTotal:       200 kB\nSwapFree:        150 kB\n');
    assert.deepEqual(m, { memTotal: 1_024_000, memUsed: 614_400, swapTotal: 204_800, swapUsed: 51_200 });
  });

  it('/proc/loadavg', () => assert.equal(parseLoadavg('0.42 0.30 0.20 1/123 4567\n'), 0.42));

  it('/proc/net/dev: host interfaces only', () => {
    const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  eth0: 1000     11094    0    0    0     0          0         0   2000    8698    0    0    0     0       0          0
  ens4: 10     1    0    0    0     0          0         0   20    1    0    0    0     0       0          0
docker0: 555       0    0    0    0     0          0         0        555       0    0    2    0     0       0          0
vethab12: 777       0    0    0    0     0          0         0        777       0    0    2    0     0       0          0
`;
    assert.deepEqual(parseNetDev(text), { rx: 1010, tx: 2020 });
  });

  it('/proc/mounts: real filesystems, one per device, docker bind mounts hidden', () => {
    const text = [
      'proc /proc proc rw 0 0',
      '/dev/vda / ext4 rw 0 0',
      '/dev/vda /var/lib/docker ext4 rw 0 0',
      '/dev/vdb1 /srv/data\\040disk xfs rw 0 0',
      'tmpfs /run tmpfs rw 0 0',
      'overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0',
      '/dev/vdc /boot/efi vfat rw 0 0',
    ].join('\n');
    assert.deepEqual(parseMounts(text).map((m) => m.mount), ['/', '/boot/efi', '/srv/data disk']);
  });

  it('disk % as df reports it (reserved blocks count as used)', () => {
    assert.equal(diskUsedPercent({ blocks: 1000, bfree: 500, bavail: 450 }), 52.63);
    assert.equal(diskUsedPercent({ blocks: 0, bfree: 0, bavail: 0 }), 0);
  });
});
