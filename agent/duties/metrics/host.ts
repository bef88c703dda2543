// Host figures read straight from /proc and statfs(2): no child process per
// sample, and nothing slower than a file read on the tick's path.
import { readFile, statfs } from 'node:fs/promises';
import { byCodeUnits } from '../../order.js';

export interface CpuTimes {
  busy: number;
  total: number;
}

/** First line of /proc/stat. iowait counts as idle, like top; guest is already in user. */
export function parseProcStat(text: string): CpuTimes {
  const line = text.split('\n', 1)[0] ?? '';
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  const total = user + nice + system + idle + iowait + irq + softirq + steal;
  return { busy: total - idle - iowait, total };
}

/** % of all cores busy between two readings. */
export function cpuPercent(prev: CpuTimes, cur: CpuTimes): number {
  const total = cur.total - prev.total;
  if (total <= 0) return 0;
  return clampPercent(((cur.busy - prev.busy) / total) * 100);
}

export interface MemInfo {
  memTotal: number;
  memUsed: number;
  swapTotal: number;
  swapUsed: number;
}

/** /proc/meminfo in bytes; "used" is total minus what is available, like free(1). */
export function parseMeminfo(text: string): MemInfo {
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  const memTotal = kb('MemTotal');
  const available = kb('MemAvailable') || kb('MemFree') + kb('Buffers') + kb('Cached');
  const swapTotal = kb('SwapTotal');
  return { memTotal, memUsed: Math.max(0, memTotal - available), swapTotal, swapUsed: Math.max(0, swapTotal - kb('SwapFree')) };
}

export function parseLoadavg(text: string): number {
  return Number(text.trim().split(/\s+/)[0] ?? 0) || 0;
}

export interface NetTotals {
  rx: number;
  tx: number;
}

/** Interfaces that carry the host's own traffic: not loopback, not Docker's bridges and veths. */
const VIRTUAL_IFACE = /^(lo|veth|docker|br-|ifb|virbr|cni|flannel|vxlan)/;

export function parseNetDev(text: string): NetTotals {
  let rx = 0;
  let tx = 0;
  for (const line of text.split('\n').slice(2)) {
    const [name, rest] = line.split(':');
    if (!name || rest === undefined || VIRTUAL_IFACE.test(name.trim())) continue;
    const f = rest.trim().split(/\s+/).map(Number);
    rx += f[0] ?? 0;
    tx += f[8] ?? 0;
  }
  return { rx, tx };
}

export interface Mount {
  device: string;
  mount: string;
  fstype: string;
}

const DISK_FS = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'zfs', 'f2fs', 'jfs', 'reiserfs', 'vfat', 'exfat', 'ntfs', 'ntfs3', 'bcachefs']);
/** Bind mounts of the same disk that an operator does not think of as a disk of its own. */
const HIDDEN_MOUNT = /^\/(var\/lib\/docker|var\/lib\/containers|snap|proc|sys|run|dev)(\/|$)/;

/** Real filesystems from /proc/mounts, one per device (the shortest mount point wins). */
export function parseMounts(text: string): Mount[] {
  const byDevice = new Map<string, Mount>();
  for (const line of text.split('\n')) {
    const [device, rawMount, fstype] = line.split(' ');
    if (!device || !rawMount || !fstype || !DISK_FS.has(fstype)) continue;
    const mount = rawMount.replace(/\\040/g, ' ');
    if (HIDDEN_MOUNT.test(mount)) continue;
    const prev = byDevice.get(device);
    if (!prev || mount.length < prev.mount.length) byDevice.set(device, { device, mount, fstype });
  }
  return [...byDevice.values()].sort((a, b) => byCodeUnits(a.mount, b.mount));
}

/** % used as df(1) reports it: used / (used + available to unprivileged users). */
export function diskUsedPercent(s: { blocks: number; bfree: number; bavail: number }): number {
  const used = s.blocks - s.bfree;
  const denom = used + s.bavail;
  return denom > 0 ? clampPercent((used / denom) * 100) : 0;
}

export interface HostSample {
  cpu: CpuTimes;
  load1: number;
  mem: MemInfo;
  net: NetTotals;
  disks: { mount: string; usedPercent: number; freeBytes: number; totalBytes: number }[];
}

/** Reads every host figure; a mount that does not answer statfs is skipped, not fatal. */
export async function readHost(procRoot = '/proc'): Promise<HostSample> {
  const [stat, loadavg, meminfo, netdev, mounts] = await Promise.all([
    readFile(`${procRoot}/stat`, 'utf8'),
    readFile(`${procRoot}/loadavg`, 'utf8'),
    readFile(`${procRoot}/meminfo`, 'utf8'),
    readFile(`${procRoot}/net/dev`, 'utf8'),
    readFile(`${procRoot}/mounts`, 'utf8'),
  ]);
  const disks: HostSample['disks'] = [];
  for (const m of parseMounts(mounts)) {
    try {
      const s = await statfs(m.mount);
      disks.push({ mount: m.mount, usedPercent: diskUsedPercent(s), freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize });
    } catch {
      /* unmounted since /proc/mounts was read, or not ours to see */
    }
  }
  return { cpu: parseProcStat(stat), load1: parseLoadavg(loadavg), mem: parseMeminfo(meminfo), net: parseNetDev(netdev), disks };
}

export function clampPercent(v: number): number {
  return Math.min(100, Math.max(0, Math.round(v * 100) / 100));
}
