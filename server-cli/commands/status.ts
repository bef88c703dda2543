// deckhand status: one host in detail, or --all hosts side by side.
//
// --all asks every host of the hosts file at once, each with its own short
// timeout, and prints one row per host; an unreachable host is a row saying
// why, not the end of the command. The exit code still tells a script that
// something was wrong: 3 if any host could not be reached (or refused the
// token or the pin), else 1 if a host answered with an error, else 0.
import type { Command } from 'commander';
import type { StatusResult } from '../../agent/api/protocol.js';
import type { Target } from '../connect.js';
import { asCliError, CliError, EXIT, type ExitCode } from '../errors.js';
import { statusColour } from '../render/colour.js';
import { hostFactParts, wrapParts } from '../render/host.js';
import { createProgress } from '../render/progress.js';
import { formatBytes, formatPercent, formatRate } from '../render/size.js';
import { renderTable } from '../render/table.js';
import { formatDuration, relativeTime } from '../render/time.js';
import { withClient } from '../session.js';
import { allTargets, resolveTarget } from '../target.js';
import { type CommonOptions, type Ctx, printJson, terminalWidth, withCommonOptions } from './common.js';

export const ALL_HOSTS_TIMEOUT_MS = 5_000;

interface StatusOptions extends CommonOptions {
  all?: boolean;
}

export function registerStatusCommand(program: Command, ctx: Ctx): void {
  withCommonOptions(program.command('status').description('health, services, resources and open alerts of a host'))
    .option('--all', 'every host in the hosts file, one row each')
    .action((opts: StatusOptions) => (opts.all ? statusAll(ctx, opts) : statusOne(ctx, opts)));
}

async function statusOne(ctx: Ctx, opts: StatusOptions): Promise<void> {
  const target = resolveTarget(opts, ctx.io.env);
  const status = await withClient(target, (c) => c.call('status.get', {}));
  if (opts.json) printJson(ctx.io, status);
  else ctx.io.stdout.write(renderStatus(ctx, target.name, status));
}

export function renderStatus(ctx: Ctx, name: string, s: StatusResult): string {
  const p = ctx.out;
  const now = ctx.io.now();
  const out: string[] = [];
  const section = (title: string, extra = '') => out.push('', `${p.bold(title)}${extra ? `  ${extra}` : ''}`);

  const hostName = s.host.name === name ? name : `${name} (${s.host.name})`;
  const collecting = s.host.factsCollectedAt === null ? [p.dim('host facts still being collected')] : [];
  out.push(...wrapParts(p.bold(hostName), [...hostFactParts(s.host), `up ${formatDuration(s.host.uptimeSec)}`, ...collecting], ctx.io.stdout.columns));
  out.push(`agent ${s.agent.version}, up ${formatDuration(s.agent.uptimeSec)}${s.agent.runtime ? ` (Node.js ${s.agent.runtime})` : ''}`);

  const checks = Object.entries(s.health.checks).flatMap(([key, list]) => list.map((c) => ({ key, ...c })));
  const bad = checks.filter((c) => c.status !== 'pass').sort((a, b) => (a.status === b.status ? a.key.localeCompare(b.key) : a.status === 'fail' ? -1 : 1));
  section('health', statusColour(p, s.health.status)(s.health.status.toUpperCase()));
  if (bad.length === 0) out.push(`  ${checks.length === 1 ? 'the one check passes' : `all ${checks.length} checks pass`}`);
  else {
    const rows = bad.map((c) => [statusColour(p, c.status)(c.status), c.key, c.output ?? observed(c.observedValue, c.observedUnit)]);
    out.push(renderTable(rows, { indent: '  ', maxWidth: terminalWidth(ctx) }).trimEnd());
  }

  const running = s.services.filter((svc) => svc.state === 'running').length;
  section('services', s.services.length > 0 ? `${running}/${s.services.length} running` : 'none (no stack configured?)');
  if (s.services.length > 0) {
    const rows = s.services.map((svc) => [
      svc.service,
      statusColour(p, svc.state)(svc.state),
      svc.health === 'none' ? p.dim('-') : statusColour(p, svc.health)(svc.health),
      String(svc.restarts),
      svc.startedAt && svc.state === 'running' ? formatDuration((now - Date.parse(svc.startedAt)) / 1000) : '-',
    ]);
    out.push(renderTable(rows, { header: ['SERVICE', 'STATE', 'HEALTH', 'RESTARTS', 'UP'], headerStyle: p.dim, align: [, , , 'right'], indent: '  ' }).trimEnd());
  }

  const r = s.resources;
  section('resources', r ? p.dim(`sampled ${relativeTime(r.sampledAt, now)}`) : p.dim('no sample yet'));
  if (r) {
    const memPct = r.memTotal > 0 ? ` (${formatPercent((r.memUsed / r.memTotal) * 100)})` : '';
    const rows = [
      ['cpu', `${formatPercent(r.cpuPercent)}, load ${r.load1.toFixed(2)}`],
      ['memory', `${formatBytes(r.memUsed)} of ${formatBytes(r.memTotal)}${memPct}, swap ${formatBytes(r.swapUsed)}`],
      ['network', `in ${formatRate(r.netRxPerSec)}, out ${formatRate(r.netTxPerSec)}`],
      ...r.disks.map((d) => [`disk ${d.mount}`, `${formatPercent(d.usedPercent)} used, ${formatBytes(d.freeBytes)} free of ${formatBytes(d.totalBytes)}`]),
    ];
    out.push(renderTable(rows, { indent: '  ' }).trimEnd());
  }

  section('alerts', s.alerts.length === 0 ? p.green('none open') : p.red(`${s.alerts.length} open`));
  if (s.alerts.length > 0) {
    const rows = s.alerts.map((a) => [a.type, a.subject, `since ${relativeTime(a.since, now)}`, a.message]);
    out.push(renderTable(rows, { indent: '  ', maxWidth: terminalWidth(ctx) }).trimEnd());
  }
  return `${out.join('\n')}\n`;
}

function observed(value: number | string | undefined, unit: string | undefined): string {
  if (value === undefined) return '';
  return unit ? `${value} ${unit}` : String(value);
}

type HostOutcome = { target: Target; status: StatusResult } | { target: Target; error: CliError };

async function statusAll(ctx: Ctx, opts: StatusOptions): Promise<void> {
  if (opts.host !== undefined) throw new CliError('status: use either -H NAME or --all, not both', EXIT.usage);
  const targets = allTargets(ctx.io.env);
  const progress = createProgress(ctx.io.stderr);
  const waiting = new Set(targets.map((t) => t.name));
  const show = () => progress.update(`waiting for ${[...waiting].join(', ')}`);
  show();
  const outcomes = await Promise.all(
    targets.map(async (target): Promise<HostOutcome> => {
      try {
        const status = await withClient(target, (c) => c.call('status.get', {}, ALL_HOSTS_TIMEOUT_MS), ALL_HOSTS_TIMEOUT_MS);
        return { target, status };
      } catch (err) {
        return { target, error: asCliError(err) };
      } finally {
        waiting.delete(target.name);
        if (waiting.size > 0) show();
      }
    }),
  );
  progress.done();
  ctx.exitCode = allHostsExitCode(outcomes);

  if (opts.json) {
    printJson(ctx.io, {
      hosts: outcomes.map((o) =>
        'status' in o
          ? { name: o.target.name, url: o.target.url, ok: true, status: o.status }
          : { name: o.target.name, url: o.target.url, ok: false, error: { message: o.error.message, reason: o.error.reason, exitCode: o.error.exitCode } },
      ),
    });
  } else {
    ctx.io.stdout.write(renderAllHosts(ctx, outcomes));
  }
  // The full story of each failure (a changed certificate deserves more than a table cell).
  for (const o of outcomes) if ('error' in o) ctx.io.stderr.write(`${ctx.err.bold(o.target.name)}: ${o.error.message}\n`);
}

export function allHostsExitCode(outcomes: HostOutcome[]): ExitCode {
  const codes = outcomes.flatMap((o) => ('error' in o ? [o.error.exitCode] : []));
  if (codes.includes(EXIT.unreachable)) return EXIT.unreachable;
  if (codes.length > 0) return EXIT.failed;
  return EXIT.ok;
}

export function renderAllHosts(ctx: Ctx, outcomes: HostOutcome[]): string {
  const p = ctx.out;
  const rows = outcomes.map((o) => {
    if ('error' in o) {
      const word = o.error.exitCode === EXIT.unreachable ? 'unreachable' : 'error';
      return [o.target.name, p.red(`${word} (${o.error.reason})`)];
    }
    const s = o.status;
    const r = s.resources;
    const running = s.services.filter((svc) => svc.state === 'running').length;
    const diskMax = r && r.disks.length > 0 ? Math.max(...r.disks.map((d) => d.usedPercent)) : undefined;
    return [
      o.target.name,
      statusColour(p, s.health.status)(s.health.status),
      s.services.length > 0 ? `${running}/${s.services.length}` : '-',
      r ? formatPercent(r.cpuPercent) : '-',
      r && r.memTotal > 0 ? formatPercent((r.memUsed / r.memTotal) * 100) : '-',
      diskMax !== undefined ? formatPercent(diskMax) : '-',
      s.alerts.length > 0 ? p.red(String(s.alerts.length)) : '0',
    ];
  });
  return renderTable(rows, {
    header: ['HOST', 'HEALTH', 'SERVICES', 'CPU', 'MEM', 'DISK', 'ALERTS'],
    headerStyle: p.bold,
    align: [, , 'right', 'right', 'right', 'right', 'right'],
  });
}
