// The host duty: collects the host's facts once, in the background after
// start, and keeps them for status.get, which never waits for them. Every
// source has a timeout; one that fails or does not answer leaves its facts
// unknown (null). Docker and compose versions are asked again when the
// engine comes back (it may have been upgraded), and at no other time.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { HostDockerInfo, HostFactsInfo, VirtualizationInfo } from '../api/protocol.js';
import { composeVersionCommand, type ComposeCli } from '../duties/stack/compose.js';
import type { Duty } from '../duty.js';
import type { EventLog } from '../events/log.js';
import { run } from '../exec/runner.js';
import { composeVersionOf, cpuFrom, detectVirtCommand, detectVirtResult, distributionOf, lscpuCommand, lscpuFields, OS_RELEASE_FILES, parseOsRelease } from './facts.js';

/** What the host duty asks of the stack's Docker side. */
export interface DockerFactSources {
  /** The engine's own GET /version. */
  engineVersion(): Promise<{ Version?: string; ApiVersion?: string }>;
  /** The compose CLI the stack runs. */
  composeCli(): Promise<ComposeCli>;
}

export interface HostFactsOptions {
  log: Logger;
  events: EventLog;
  /** Absent without a stack: then the agent does not talk to Docker at all. */
  docker?: DockerFactSources;
  /** How long each source may take (default 10 s). */
  sourceTimeoutMs?: number;
}

const SOURCE_TIMEOUT_MS = 10_000;
/** Test-only: every source first waits this long, as a slow or hung one would. */
const FAILPOINT_DELAY_MS = Number(process.env.DECKHAND_FAILPOINT_HOST_FACTS_DELAY_MS) || 0;

const UNKNOWN_DOCKER: HostDockerInfo = { engine: null, api: null, compose: null, composeCli: null };

export class HostFactsDuty implements Duty {
  readonly name = 'host';
  private facts: HostFactsInfo;
  private readonly abort = new AbortController();
  private unsubscribe: (() => void) | undefined;
  private dockerRefresh: Promise<void> | undefined;

  constructor(private readonly opts: HostFactsOptions) {
    // Known without asking anything: a small file and node:os.
    this.facts = {
      distribution: readDistribution(),
      cpu: cpuFrom(new Map(), nodeCpu()),
      virtualization: { vm: null, container: null },
      docker: opts.docker ? UNKNOWN_DOCKER : null,
      factsCollectedAt: null,
    };
  }

  /** The facts as kept; never waits. */
  current(): HostFactsInfo {
    return this.facts;
  }

  async start(): Promise<void> {
    this.unsubscribe = this.opts.events.subscribe((e) => {
      if (e.type === 'docker.unreachable.resolved') this.refreshDocker();
    });
    // Not awaited: start (and /readyz) does not wait for facts.
    void this.collect();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.abort.abort();
  }

  private async collect(): Promise<void> {
    const t0 = Date.now();
    const [cpu, virtualization, docker] = await Promise.all([this.cpu(), this.virtualization(), this.docker()]);
    if (this.abort.signal.aborted) return;
    this.facts = { ...this.facts, cpu, virtualization, docker, factsCollectedAt: new Date().toISOString() };
    this.opts.log.info({ ms: Date.now() - t0, cpu, virtualization, docker }, 'host facts collected');
  }

  private refreshDocker(): void {
    if (!this.opts.docker || this.dockerRefresh) return;
    this.dockerRefresh = this.docker()
      .then((docker) => {
        if (this.abort.signal.aborted) return;
        this.facts = { ...this.facts, docker };
        this.opts.log.info({ docker }, 'Docker versions after the engine came back');
      })
      .finally(() => (this.dockerRefresh = undefined));
  }

  private async cpu() {
    const out = await this.within(async (signal) => {
      const r = await run(lscpuCommand(), { signal });
      return r.code === 0 ? r.stdout : null;
    });
    return cpuFrom(lscpuFields(out ?? ''), nodeCpu());
  }

  private async virtualization(): Promise<VirtualizationInfo> {
    const detect = (kind: 'vm' | 'container') =>
      this.within(async (signal) => {
        const r = await run(detectVirtCommand(kind), { signal });
        return detectVirtResult(r.stdout, r.code);
      });
    const [vm, container] = await Promise.all([detect('vm'), detect('container')]);
    return { vm, container };
  }

  private async docker(): Promise<HostDockerInfo | null> {
    const docker = this.opts.docker;
    if (!docker) return null;
    const [engine, compose] = await Promise.all([
      this.within(() => docker.engineVersion()),
      this.within(async (signal) => {
        const cli = await docker.composeCli();
        const r = await run(composeVersionCommand(cli), { signal });
        return { cli, version: r.code === 0 ? composeVersionOf(r.stdout) : null };
      }),
    ]);
    return {
      engine: engine?.Version ?? null,
      api: engine?.ApiVersion ?? null,
      compose: compose?.version ?? null,
      composeCli: compose ? (compose.cli.join(' ') as HostDockerInfo['composeCli']) : null,
    };
  }

  /** One source, bounded: its answer, or null if it failed, took too long or the agent is stopping. */
  private within<T>(source: (signal: AbortSignal) => Promise<T>): Promise<T | null> {
    return boundedSource(source, this.opts.sourceTimeoutMs ?? SOURCE_TIMEOUT_MS, this.abort.signal, FAILPOINT_DELAY_MS);
  }
}

/**
 * Runs `source` with a signal that aborts after `timeoutMs` or with `parent`;
 * resolves null on failure or timeout even if the source ignores the signal.
 * Its listener on `parent` goes when it ends: one per source, not one per run kept.
 */
export async function boundedSource<T>(source: (signal: AbortSignal) => Promise<T>, timeoutMs: number, parent: AbortSignal, delayMs = 0): Promise<T | null> {
  const bound = new AbortController();
  const giveUp = () => bound.abort();
  if (parent.aborted) giveUp();
  parent.addEventListener('abort', giveUp, { once: true });
  const timer = setTimeout(giveUp, timeoutMs);
  const gaveUp = new Promise<null>((resolve) => bound.signal.addEventListener('abort', () => resolve(null), { once: true }));
  const answer = (async () => {
    if (delayMs > 0) await sleep(delayMs, undefined, { signal: bound.signal });
    return source(bound.signal);
  })().catch(() => null);
  try {
    return await Promise.race([answer, gaveUp]);
  } finally {
    clearTimeout(timer);
    parent.removeEventListener('abort', giveUp);
  }
}

function readDistribution() {
  for (const file of OS_RELEASE_FILES) {
    try {
      return distributionOf(parseOsRelease(readFileSync(file, 'utf8')));
    } catch {
      /* absent: try the next */
    }
  }
  return null;
}

/** /proc/cpuinfo's model name as node:os reads it ("unknown" on some ARM kernels), and the logical count. */
function nodeCpu(): { model: string | null; cores: number } {
  const list = cpus();
  return { model: list[0]?.model ?? null, cores: list.length };
}
