// The metrics duty: every `metrics.interval`, one sample of the host and of
// each running container of the stack, written in one transaction, rolled
// up and pruned. It also keeps the latest figures for /health and /metrics.
import type { StatusResult } from '../../api/protocol.js';
import type { CheckResult, Duty, DutyContext, GaugeSample, GaugeSpec, HealthChecks, StatusContribution } from '../../duty.js';
import type { ContainerStats } from '../../docker/engine.js';
import { notFound } from '../../errors.js';
import type { ContainerSource } from '../faces.js';
import { Periodic } from '../../periodic.js';
import type { MetricsConfig } from './config.js';
import { cpuPercent, readHost, type CpuTimes, type HostSample } from './host.js';
import { MetricStore, type Point, type Step } from './store.js';

export interface ServiceFigures {
  cpuPercent: number;
  memBytes: number;
  netRxBytes: number;
  netTxBytes: number;
}

/** The latest sample: what status.get reports as resources, plus the time and per-service figures. */
export type LatestFigures = Omit<NonNullable<StatusResult['resources']>, 'sampledAt'> & {
  ts: number;
  services: Record<string, ServiceFigures>;
};

const STATS_TIMEOUT_MS = 5000;

export class MetricsDuty implements Duty {
  readonly name = 'metrics';
  readonly store: MetricStore;
  private readonly loop: Periodic;
  private prevCpu: CpuTimes | undefined;
  private prevNet: { rx: number; tx: number; ts: number } | undefined;
  private prevContainerCpu = new Map<string, { total: number; system: number }>();
  private latest: LatestFigures | undefined;
  private ticks = 0;
  private lastFailure: string | undefined;

  constructor(
    private readonly config: MetricsConfig,
    private readonly diskLowPercent: number,
    private readonly ctx: DutyContext,
    private readonly containers: ContainerSource | undefined,
  ) {
    this.store = new MetricStore(ctx.db, config.retention);
    this.loop = new Periodic(config.interval, () => this.tick(), (err) => {
      this.lastFailure = err instanceof Error ? err.message : String(err);
      ctx.reportError(this.name, err);
    });
  }

  async start(): Promise<void> {
    await this.loop.runNow();
    this.loop.start(this.config.interval);
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }

  figures(): LatestFigures | undefined {
    return this.latest;
  }

  tickCount(): number {
    return this.ticks;
  }

  checks(): HealthChecks {
    const checks: HealthChecks = {};
    for (const d of this.latest?.disks ?? []) checks[`disk:${d.mount}`] = [diskCheck(d.usedPercent, this.diskLowPercent)];
    if (this.lastFailure) {
      checks['agent:metrics'] = [{ status: 'warn', output: `last metrics sample not kept: ${this.lastFailure}` }];
    }
    return checks;
  }

  async tick(): Promise<void> {
    const now = Date.now();
    const host = await readHost();
    const services = await this.sampleContainers();
    const samples: [string, number][] = [];

    const cpu = this.prevCpu ? cpuPercent(this.prevCpu, host.cpu) : undefined;
    this.prevCpu = host.cpu;
    let rxRate = 0;
    let txRate = 0;
    if (this.prevNet && now > this.prevNet.ts) {
      const dt = (now - this.prevNet.ts) / 1000;
      rxRate = Math.max(0, (host.net.rx - this.prevNet.rx) / dt);
      txRate = Math.max(0, (host.net.tx - this.prevNet.tx) / dt);
      samples.push(['host.net.rx', Math.round(rxRate)], ['host.net.tx', Math.round(txRate)]);
    }
    this.prevNet = { ...host.net, ts: now };
    if (cpu !== undefined) samples.push(['host.cpu', cpu]);
    samples.push(['host.load1', host.load1], ['host.mem.used', host.mem.memUsed], ['host.swap.used', host.mem.swapUsed]);
    for (const d of host.disks) samples.push([`host.disk.used:${d.mount}`, d.usedPercent]);
    for (const [service, f] of Object.entries(services)) {
      if (Number.isFinite(f.cpuPercent)) samples.push([`service.cpu:${service}`, f.cpuPercent]);
      samples.push([`service.mem:${service}`, f.memBytes], [`service.restarts:${service}`, this.containers?.restarts(service) ?? 0]);
    }

    // The figures are kept before the write: a full disk must still show in /health.
    this.latest = {
      ts: now,
      cpuPercent: cpu ?? 0,
      load1: host.load1,
      memUsed: host.mem.memUsed,
      memTotal: host.mem.memTotal,
      swapUsed: host.mem.swapUsed,
      netRxPerSec: rxRate,
      netTxPerSec: txRate,
      disks: host.disks,
      services,
    };
    // Alerts before samples: if the store is failing, the alert is what matters.
    for (const d of host.disks) {
      const low = d.usedPercent >= this.diskLowPercent;
      this.ctx.conditions.set(low, 'disk.low', d.mount, 'warning', low ? `disk ${d.mount} is ${d.usedPercent}% full (threshold ${this.diskLowPercent}%)` : `disk ${d.mount} is back to ${d.usedPercent}%`, {
        usedPercent: d.usedPercent,
        freeBytes: d.freeBytes,
      });
    }
    this.store.writeTick(now, samples);
    this.lastFailure = undefined;
    this.ticks++;
  }

  /** Stats of every running container, in parallel, each bounded by a timeout. */
  private async sampleContainers(): Promise<Record<string, ServiceFigures>> {
    const out: Record<string, ServiceFigures> = {};
    if (!this.containers) return out;
    const running = this.containers.runningContainers();
    const seen = new Set<string>();
    await Promise.all(
      running.map(async ({ service, id }) => {
        seen.add(id);
        let s: ContainerStats;
        try {
          s = await withTimeout(this.containers!.stats(id), STATS_TIMEOUT_MS);
        } catch {
          return; // gone between list and stats, or the engine is slow: no sample this tick
        }
        const prev = this.prevContainerCpu.get(id);
        this.prevContainerCpu.set(id, { total: s.cpuTotalNs, system: s.systemCpuNs });
        const sysDelta = prev ? s.systemCpuNs - prev.system : 0;
        // Like `docker stats`: 100% is one full core.
        const cpu = prev && sysDelta > 0 ? Math.max(0, ((s.cpuTotalNs - prev.total) / sysDelta) * s.onlineCpus * 100) : Number.NaN;
        out[service] = { cpuPercent: Math.round(cpu * 100) / 100, memBytes: s.memUsed, netRxBytes: s.netRx, netTxBytes: s.netTx };
      }),
    );
    for (const id of this.prevContainerCpu.keys()) if (!seen.has(id)) this.prevContainerCpu.delete(id);
    return out;
  }

  status(): StatusContribution {
    const l = this.latest;
    if (!l) return {};
    return {
      resources: {
        cpuPercent: l.cpuPercent,
        load1: l.load1,
        memUsed: l.memUsed,
        memTotal: l.memTotal,
        swapUsed: l.swapUsed,
        netRxPerSec: Math.round(l.netRxPerSec),
        netTxPerSec: Math.round(l.netTxPerSec),
        disks: l.disks,
        sampledAt: new Date(l.ts).toISOString(),
      },
    };
  }

  /** The names of the series kept. */
  seriesNames(): string[] {
    return this.store.seriesNames();
  }

  /** Points of one series in [fromMs, toMs], at `step` or the finest tier that still covers `fromMs`. */
  /** `now` is the caller's: the one `from` was computed from, so "24h" is never a millisecond past the raw tier. */
  query(series: string, fromMs: number, toMs: number, step?: Step, now = Date.now()): { step: Step; points: Point[] } {
    if (!this.store.hasSeries(series)) throw notFound(`no series named "${series}" (metrics.series lists them)`);
    const chosen = step ?? this.store.defaultStep(fromMs, now);
    return { step: chosen, points: this.store.query(series, fromMs, toMs, chosen) };
  }

  gauges(): GaugeSpec[] {
    const host = (name: string, help: string, pick: (l: LatestFigures) => number): GaugeSpec => ({
      name,
      help,
      samples: () => (this.latest ? [{ value: pick(this.latest) }] : []),
    });
    const disk = (name: string, help: string, pick: (d: HostSample['disks'][number]) => number): GaugeSpec => ({
      name,
      help,
      labelNames: ['mount'],
      samples: () => (this.latest?.disks ?? []).map((d) => ({ labels: { mount: d.mount }, value: pick(d) })),
    });
    const service = (name: string, help: string, pick: (f: ServiceFigures) => number): GaugeSpec => ({
      name,
      help,
      labelNames: ['service'],
      samples: () =>
        Object.entries(this.latest?.services ?? {}).flatMap(([s, f]): GaugeSample[] => (Number.isFinite(pick(f)) ? [{ labels: { service: s }, value: pick(f) }] : [])),
    });
    return [
      host('deckhand_host_cpu_percent', 'Host CPU busy, % of all cores', (l) => l.cpuPercent),
      host('deckhand_host_load1', 'Host 1-minute load average', (l) => l.load1),
      host('deckhand_host_memory_used_bytes', 'Host memory in use (total minus available)', (l) => l.memUsed),
      host('deckhand_host_memory_total_bytes', 'Host memory', (l) => l.memTotal),
      host('deckhand_host_swap_used_bytes', 'Host swap in use', (l) => l.swapUsed),
      host('deckhand_host_network_receive_bytes_per_second', 'Host network receive rate', (l) => l.netRxPerSec),
      host('deckhand_host_network_transmit_bytes_per_second', 'Host network transmit rate', (l) => l.netTxPerSec),
      host('deckhand_metrics_last_sample_timestamp_seconds', 'When the last metrics sample was taken', (l) => l.ts / 1000),
      disk('deckhand_host_disk_used_percent', 'Filesystem use, % as df reports it', (d) => d.usedPercent),
      disk('deckhand_host_disk_free_bytes', 'Filesystem space available', (d) => d.freeBytes),
      service('deckhand_service_cpu_percent', 'Container CPU, % of one core (as docker stats)', (f) => f.cpuPercent),
      service('deckhand_service_memory_bytes', 'Container memory in use, page cache excluded', (f) => f.memBytes),
      service('deckhand_service_network_receive_bytes', 'Container network bytes received since it started', (f) => f.netRxBytes),
      service('deckhand_service_network_transmit_bytes', 'Container network bytes sent since it started', (f) => f.netTxBytes),
    ];
  }
}

export function diskCheck(usedPercent: number, lowPercent: number): CheckResult {
  const status = usedPercent >= lowPercent ? 'warn' : 'pass';
  return {
    status,
    observedValue: Math.round(usedPercent * 10) / 10,
    observedUnit: '%',
    ...(status === 'warn' ? { output: `disk is ${usedPercent}% full (threshold ${lowPercent}%)` } : {}),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]);
}
