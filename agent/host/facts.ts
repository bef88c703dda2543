// Host facts as data: the commands that find them (argv arrays for the one
// runner) and pure functions that turn what those commands and files say into
// the `host` part of status.get. Nothing here runs anything.
//
// Why not systeminformation for these, measured on Debian 12: its osInfo()
// starts 17 processes (a blocking `hostname -f` with no timeout among them:
// a slow resolver freezes the event loop), dmesg, and loads its network
// module; system() runs dmidecode and dmesg synchronously (root only; the
// agent is not root); loading the library costs 11 MB of RSS for good, and
// its cpu module alone 1.0 MB, against an idle goal met with no margin
// (docs/performance.md). What it would tell us comes from os-release,
// node:os, `lscpu` (what si.cpu() runs) and `systemd-detect-virt`.
import type { Command } from '../exec/runner.js';
import type { DistributionInfo, HostCpuInfo } from '../api/protocol.js';

/** os-release(5): the first of these that exists describes the system. */
export const OS_RELEASE_FILES = ['/etc/os-release', '/usr/lib/os-release'] as const;

/** KEY=VALUE lines, values optionally quoted, as os-release(5) defines them. */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    fields[m[1]!] = unquote(m[2]!);
  }
  return fields;
}

function unquote(value: string): string {
  const q = value[0];
  if ((q === '"' || q === "'") && value.endsWith(q) && value.length >= 2) return value.slice(1, -1).replace(/\\(["'$`\\])/g, '$1');
  return value;
}

export function distributionOf(fields: Record<string, string>): DistributionInfo | null {
  const name = fields.NAME ?? fields.ID;
  if (!name) return null;
  return {
    id: fields.ID ?? null,
    name,
    version: fields.VERSION_ID ?? null,
    codename: fields.VERSION_CODENAME ?? null,
    pretty: fields.PRETTY_NAME ?? ([name, fields.VERSION].filter(Boolean).join(' ') || name),
  };
}

/** Machine-readable and in the C locale, so field names do not depend on the server's language. */
export function lscpuCommand(): Command {
  return { argv: ['lscpu', '--json'], env: { LC_ALL: 'C' }, timeoutMs: 5_000 };
}

/**
 * `lscpu --json`: {"lscpu": [{field: "Model name:", data: "...", children?: [...]}]}.
 * Newer util-linux nests fields under their section, so walk the tree.
 */
export function lscpuFields(json: string): Map<string, string> {
  const fields = new Map<string, string>();
  const walk = (entries: unknown): void => {
    if (!Array.isArray(entries)) return;
    for (const e of entries as { field?: unknown; data?: unknown; children?: unknown }[]) {
      if (typeof e.field === 'string' && typeof e.data === 'string') fields.set(e.field.replace(/:$/, '').trim(), e.data.trim());
      walk(e.children);
    }
  };
  try {
    walk((JSON.parse(json) as { lscpu?: unknown }).lscpu);
  } catch {
    /* not JSON: no fields, the caller falls back */
  }
  return fields;
}

/** The CPU from lscpu's fields, with node:os's view (model, logical count) where lscpu says nothing. */
export function cpuFrom(fields: Map<string, string>, fallback: { model: string | null; cores: number }): HostCpuInfo {
  const positive = (key: string): number | null => {
    const n = Number(fields.get(key));
    return Number.isInteger(n) && n > 0 ? n : null;
  };
  const sockets = positive('Socket(s)');
  const perSocket = positive('Core(s) per socket') ?? positive('Core(s) per cluster');
  const model = fields.get('Model name');
  return {
    model: cleanCpuModel(model && model !== '-' ? model : fallback.model),
    cores: positive('CPU(s)') ?? fallback.cores,
    physicalCores: sockets !== null && perSocket !== null ? sockets * perSocket : null,
    sockets,
  };
}

/** "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz" -> "Intel Xeon CPU E5-2680 v4 @ 2.40GHz". */
export function cleanCpuModel(model: string | null | undefined): string | null {
  if (!model) return null;
  const clean = model
    .replace(/\((R|TM|tm|r)\)/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  return clean === '' || clean.toLowerCase() === 'unknown' ? null : clean;
}

/** systemd's own detection: unprivileged, one small process. */
export function detectVirtCommand(kind: 'vm' | 'container'): Command {
  return { argv: ['systemd-detect-virt', `--${kind}`], timeoutMs: 5_000 };
}

/**
 * systemd-detect-virt prints one identifier ("kvm", "docker") and exits 0, or
 * prints "none" and exits 1. Anything else (not installed, killed) is unknown.
 */
export function detectVirtResult(stdout: string, code: number | null): string | null {
  const id = stdout.trim().split('\n')[0]?.trim() ?? '';
  if (!/^[a-z0-9-]+$/.test(id)) return null;
  if (code === 0 || (code === 1 && id === 'none')) return id;
  return null;
}

/**
 * The version number in `docker compose version` ("Docker Compose version
 * v2.26.1") or `docker-compose version` ("docker-compose version 1.29.2,
 * build unknown").
 */
export function composeVersionOf(stdout: string): string | null {
  const m = /compose version:? v?(\d+\.\d+[\w.+-]*)/i.exec(stdout);
  return m?.[1]?.replace(/,$/, '') ?? null;
}
