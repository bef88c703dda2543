// stack.logs: stdout and stderr of one or all services, interleaved by time.
// Following, it attaches to each service's current container and to every
// new one the stack view sees (restarts, deploys), until cancelled.
import type { DockerEngine } from '../../docker/engine.js';
import type { LogLine } from '../../api/protocol.js';
import type { Progress } from '../../errors.js';
import { LogDemuxer, splitTimestamp } from './logframes.js';
import { byCodeUnits } from '../../order.js';
import type { ServiceView } from './services.js';

/** The first lines of every container arrive within this window and are sorted together. */
const MERGE_WINDOW_MS = 300;
const WATCH_NEW_CONTAINERS_MS = 1000;

export interface LogRequest {
  services: string[];
  tail: number;
  follow: boolean;
}

/** Sends the lines to `out`; resolves with the count once the tail is sent, or (following) once `signal` aborts. */
export async function streamLogs(engine: DockerEngine, views: () => ServiceView[], req: LogRequest, out: Progress<LogLine>, signal: AbortSignal): Promise<{ lines: number }> {
  const current = () => views().filter((v) => req.services.includes(v.service) && v.containerId);
  let lines = 0;
  const emit = (l: LogLine) => {
    lines++;
    out(l);
  };

  if (!req.follow) {
    const all: LogLine[] = [];
    await Promise.all(current().map(async (v) => all.push(...(await readAll(engine, v.service, v.containerId!, req.tail)))));
    all.sort((a, b) => byCodeUnits(a.ts, b.ts));
    all.forEach(emit);
    return { lines };
  }

  // Follow: buffer the opening burst to sort it, then pass lines straight on.
  let opening: LogLine[] | undefined = [];
  const sink = (l: LogLine) => (opening ? opening.push(l) : emit(l));
  const attached = new Set<string>();
  const attach = (v: ServiceView, tail: number, since?: number) => {
    attached.add(v.containerId!);
    void follow(engine, v.service, v.containerId!, tail, since, sink, signal);
  };
  for (const v of current()) attach(v, req.tail);
  const merge = setTimeout(() => {
    const burst = (opening ?? []).sort((a, b) => byCodeUnits(a.ts, b.ts));
    opening = undefined;
    burst.forEach(emit);
  }, MERGE_WINDOW_MS);
  const watcher = setInterval(() => {
    for (const v of current()) if (!attached.has(v.containerId!)) attach(v, 1000, 0);
  }, WATCH_NEW_CONTAINERS_MS);
  await new Promise<void>((resolve) => {
    const done = () => {
      clearInterval(watcher);
      clearTimeout(merge);
      resolve();
    };
    if (signal.aborted) done();
    else signal.addEventListener('abort', done, { once: true });
  });
  return { lines };
}

async function readAll(engine: DockerEngine, service: string, id: string, tail: number): Promise<LogLine[]> {
  const out: LogLine[] = [];
  const { tty } = await engine.inspect(id);
  const demux = new LogDemuxer(tty);
  const body = await engine.logs(id, { follow: false, tail });
  for await (const chunk of body as AsyncIterable<Buffer>) for (const c of demux.push(chunk)) out.push(toLine(service, c.stream, c.line));
  for (const c of demux.flush()) out.push(toLine(service, c.stream, c.line));
  return out;
}

async function follow(engine: DockerEngine, service: string, id: string, tail: number, since: number | undefined, sink: (l: LogLine) => void, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  try {
    const { tty } = await engine.inspect(id);
    const demux = new LogDemuxer(tty);
    const body = (await engine.logs(id, { follow: true, tail, ...(since !== undefined ? { since } : {}) })) as NodeJS.ReadableStream & { destroy?: () => void };
    const stop = () => body.destroy?.();
    // Cancelled while we were connecting: close the engine stream now, or it stays open as long as the container runs.
    if (signal.aborted) return stop();
    signal.addEventListener('abort', stop, { once: true });
    body.on('data', (chunk: Buffer) => {
      for (const c of demux.push(chunk)) sink(toLine(service, c.stream, c.line));
    });
    body.on('end', () => {
      for (const c of demux.flush()) sink(toLine(service, c.stream, c.line));
      signal.removeEventListener('abort', stop);
    });
    body.on('error', () => signal.removeEventListener('abort', stop));
  } catch {
    /* the container went away between the view and the call: the watcher picks up its successor */
  }
}

function toLine(service: string, stream: 'stdout' | 'stderr', raw: string): LogLine {
  const { ts, text } = splitTimestamp(raw);
  return { type: 'line', service, stream, ts, text };
}
