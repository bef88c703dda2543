// The host header of `deckhand status`: what an operator asks first about a
// box, on one line when it fits ("web-1  Debian GNU/Linux 12 (bookworm) ·
// kernel 6.1.0 · 2× Intel Xeon · 24 GiB · KVM · Docker 20.10.24 · compose 2.26.1"),
// continued on indented lines when it does not. Unknown facts say so.
import type { HostInfo } from '../../agent/api/protocol.js';
import { visibleLength } from './colour.js';
import { formatBytes } from './size.js';

const SEPARATOR = ' · ';

/** systemd-detect-virt's identifiers as their makers write them; others are shown as given. */
const VIRTUALIZATION_NAMES: Record<string, string> = {
  kvm: 'KVM',
  qemu: 'QEMU',
  vmware: 'VMware',
  microsoft: 'Hyper-V',
  oracle: 'VirtualBox',
  xen: 'Xen',
  bochs: 'Bochs',
  amazon: 'AWS Nitro',
  parallels: 'Parallels',
  bhyve: 'bhyve',
  zvm: 'z/VM',
  wsl: 'WSL',
  lxc: 'LXC',
  'lxc-libvirt': 'LXC',
  'systemd-nspawn': 'systemd-nspawn',
  docker: 'Docker',
  podman: 'Podman',
  openvz: 'OpenVZ',
};

export function virtualizationName(id: string): string {
  return VIRTUALIZATION_NAMES[id] ?? id;
}

/** "KVM", "bare metal", "KVM, in a Docker container", "virtualization unknown". */
export function describeVirtualization(v: HostInfo['virtualization']): string {
  const vm = v.vm === null ? null : v.vm === 'none' ? 'bare metal' : virtualizationName(v.vm);
  const container = v.container && v.container !== 'none' ? `in a ${virtualizationName(v.container)} container` : null;
  if (vm === null && container === null) return 'virtualization unknown';
  return [vm, container].filter(Boolean).join(', ');
}

/** "2× Intel Xeon Processor", or the count alone when the model is unknown. */
export function describeCpu(cpu: HostInfo['cpu']): string {
  return cpu.model ? `${cpu.cores}× ${cpu.model}` : `${cpu.cores} CPU${cpu.cores === 1 ? '' : 's'} (model unknown)`;
}

/** The header's parts, in the order an operator reads them. */
export function hostFactParts(h: HostInfo): string[] {
  const parts = [h.distribution?.pretty ?? h.os, `kernel ${h.kernel}`, h.arch, describeCpu(h.cpu), formatBytes(h.memTotal), describeVirtualization(h.virtualization)];
  if (h.docker) {
    parts.push(`Docker ${h.docker.engine ?? 'unknown'}`);
    const cli = h.docker.composeCli === 'docker-compose' ? 'docker-compose' : 'compose';
    parts.push(`${cli} ${h.docker.compose ?? 'unknown'}`);
  }
  return parts;
}

/**
 * `first` then the parts joined by " · ", broken between parts so no line is
 * wider than `width` (when a part allows); continuation lines are indented.
 */
export function wrapParts(first: string, parts: readonly string[], width: number | undefined, indent = '  '): string[] {
  const [head, ...rest] = parts;
  if (head === undefined) return [first];
  const lines: string[] = [];
  let line = `${first}  ${head}`;
  for (const part of rest) {
    const joined = `${line}${SEPARATOR}${part}`;
    if (width !== undefined && visibleLength(joined) > width) {
      lines.push(line);
      line = `${indent}${part}`;
    } else line = joined;
  }
  lines.push(line);
  return lines;
}
