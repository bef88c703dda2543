// The Docker engine as deckhand sees it: a few typed calls over the local
// socket (dockerode), with timeouts so a hung engine never hangs a duty.
import { statSync } from 'node:fs';
import Docker from 'dockerode';
import { agentIdentity, groupName } from '../identity.js';

export const LABEL = {
  project: 'com.docker.compose.project',
  service: 'com.docker.compose.service',
  oneoff: 'com.docker.compose.oneoff',
  configHash: 'com.docker.compose.config-hash',
} as const;

export interface ContainerSummary {
  id: string;
  service: string;
  oneoff: boolean;
  state: string; // running, exited, restarting, created, paused, dead
  status: string; // "Up 3 minutes (healthy)"
  image: string;
  imageId: string;
  created: number; // unix seconds
}

export interface ContainerStats {
  cpuTotalNs: number;
  systemCpuNs: number;
  onlineCpus: number;
  memUsed: number;
  netRx: number;
  netTx: number;
}

/** "registry:5000/team/app:v2" -> { repo: "registry:5000/team/app", tag: "v2" }; no tag means latest. */
export function splitImageRef(ref: string): { repo: string; tag: string } {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  return colon > slash ? { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) } : { repo: ref, tag: 'latest' };
}

export function socketPathFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.DOCKER_HOST;
  if (host?.startsWith('unix://')) return host.slice('unix://'.length);
  return '/var/run/docker.sock';
}

/**
 * A failure to reach the socket, in the words that fix it: EACCES means the
 * agent's user is not in the socket's group (docker), which only an operator
 * can change. Errors the engine itself answered (404, 409, ...) pass through.
 */
export function explainEngineError(err: unknown, socketPath: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EACCES') {
    const me = agentIdentity();
    let group = 'docker';
    try {
      group = groupName(statSync(socketPath).gid);
    } catch {
      /* cannot even stat it: docker is what the engine's package uses */
    }
    return new Error(
      `no access to the Docker socket ${socketPath} (EACCES): the agent runs as user ${me.user}, which must be in group ${group}: ` +
        `usermod -aG ${group} ${me.user}, then restart the agent`,
    );
  }
  if (code === 'ENOENT') {
    return new Error(`${(err as Error).message}: no Docker socket there (is the Docker engine running? DOCKER_HOST names the socket)`);
  }
  return err;
}

export interface EngineEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
}

export class DockerEngine {
  /** Request/response calls: a hung engine fails them after the timeout. */
  readonly api: Docker;
  /** Long-lived streams (events, followed logs): an idle stream is not a hung engine. */
  private readonly streams: Docker;

  constructor(readonly socketPath = socketPathFromEnv(), timeoutMs = 10_000) {
    this.api = new Docker({ socketPath, timeout: timeoutMs });
    this.streams = new Docker({ socketPath });
  }

  /** The calls that first reach the socket: their connection errors say what to change. */
  private reach<T>(call: Promise<T>): Promise<T> {
    return call.catch((err: unknown) => {
      throw explainEngineError(err, this.socketPath);
    });
  }

  /** The engine's event stream for one compose project's containers. */
  async events(project: string): Promise<NodeJS.ReadableStream> {
    return this.reach(this.streams.getEvents({ filters: { type: ['container'], label: [`${LABEL.project}=${project}`] } }));
  }

  /** An image's ID and registry digests, or null when this engine does not have it. */
  async imageInfo(ref: string): Promise<{ id: string; repoDigests: string[] } | null> {
    try {
      const info = await this.reach(this.api.getImage(ref).inspect());
      return { id: info.Id, repoDigests: info.RepoDigests ?? [] };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return null;
      throw err;
    }
  }

  /** Points `ref` (repo:tag) at the image. A digest reference names one image already: nothing to do. */
  async tagImage(imageId: string, ref: string): Promise<void> {
    if (ref.includes('@')) return;
    const { repo, tag } = splitImageRef(ref);
    await this.api.getImage(imageId).tag({ repo, tag });
  }

  /** Removes one tag (the image stays if other tags or containers use it). */
  async untagImage(ref: string): Promise<void> {
    await this.api.getImage(ref).remove({ noprune: true });
  }

  async listImageTags(referenceFilter: string): Promise<string[]> {
    const list = await this.reach(this.api.listImages({ filters: { reference: [referenceFilter] } }));
    return list.flatMap((i) => i.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
  }

  async startContainer(id: string): Promise<void> {
    await this.api.getContainer(id).start();
  }

  async restartContainer(id: string, timeoutSec = 10): Promise<void> {
    await this.api.getContainer(id).restart({ t: timeoutSec });
  }

  /** Sends SIGNAL to the container's main process (a proxy told to reload its certificate). */
  async killContainer(id: string, signal: string): Promise<void> {
    await this.reach(this.api.getContainer(id).kill({ signal }));
  }

  async stopContainer(id: string, timeoutSec = 10): Promise<void> {
    await this.api.getContainer(id).stop({ t: timeoutSec });
  }

  async ping(): Promise<void> {
    await this.reach(this.api.ping());
  }

  /** Every container of the compose project, found by label (never by name). */
  async listProjectContainers(project: string): Promise<ContainerSummary[]> {
    const list = await this.reach(this.api.listContainers({ all: true, filters: { label: [`${LABEL.project}=${project}`] } }));
    return list.map((c) => ({
      id: c.Id,
      service: c.Labels[LABEL.service] ?? '',
      oneoff: (c.Labels[LABEL.oneoff] ?? '').toLowerCase() === 'true',
      state: c.State,
      status: c.Status,
      image: c.Image,
      imageId: c.ImageID,
      created: c.Created,
    }));
  }

  async inspect(id: string): Promise<{ startedAt: string; restartCount: number; tty: boolean }> {
    const info = await this.api.getContainer(id).inspect();
    return { startedAt: info.State.StartedAt, restartCount: info.RestartCount, tty: info.Config.Tty };
  }

  /**
   * A container's log as a byte stream: multiplexed stdout/stderr frames
   * unless the container has a TTY. `follow` keeps it open.
   */
  async logs(id: string, opts: { follow: boolean; tail: number; since?: number }): Promise<NodeJS.ReadableStream> {
    const c = (opts.follow ? this.streams : this.api).getContainer(id);
    const common = { stdout: true, stderr: true, timestamps: true, tail: opts.tail, ...(opts.since ? { since: opts.since } : {}) };
    if (opts.follow) return c.logs({ ...common, follow: true });
    const buf = await c.logs({ ...common, follow: false });
    const { Readable } = await import('node:stream');
    return Readable.from([buf]);
  }

  /**
   * One sample of a container's counters. `one-shot` makes the engine answer
   * at once instead of waiting a second for a second CPU sample; CPU % comes
   * from the difference between two of our own ticks.
   */
  async stats(id: string): Promise<ContainerStats> {
    const s = (await this.api.getContainer(id).stats({ stream: false, 'one-shot': true } as { stream: false })) as unknown as RawStats;
    const mem = s.memory_stats ?? {};
    // Like `docker stats`: usage minus the page cache the kernel can drop.
    const cache = mem.stats?.inactive_file ?? mem.stats?.total_inactive_file ?? 0;
    let rx = 0;
    let tx = 0;
    for (const n of Object.values(s.networks ?? {})) {
      rx += n.rx_bytes ?? 0;
      tx += n.tx_bytes ?? 0;
    }
    return {
      cpuTotalNs: s.cpu_stats?.cpu_usage?.total_usage ?? 0,
      systemCpuNs: s.cpu_stats?.system_cpu_usage ?? 0,
      onlineCpus: s.cpu_stats?.online_cpus ?? s.cpu_stats?.cpu_usage?.percpu_usage?.length ?? 1,
      memUsed: Math.max(0, (mem.usage ?? 0) - cache),
      netRx: rx,
      netTx: tx,
    };
  }
}

interface RawStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number; percpu_usage?: number[] }; system_cpu_usage?: number; online_cpus?: number };
  memory_stats?: { usage?: number; stats?: Record<string, number> };
  networks?: Record<string, { rx_bytes?: number; tx_bytes?: number }>;
}
