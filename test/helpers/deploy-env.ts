// A compose project whose `web` service is the test web image at a tag from
// .env, supervised by a real agent with the API on, and the calls deploy
// tests make against it: run a deploy or rollback to its end event, read the
// version the running container serves.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, removeDir, waitFor } from './agent.js';
import { connect, startApiAgent, type ApiAgent, type RpcClient } from './api.js';
import { requireDocker, TestStack } from './stack.js';

export const DEPLOY = { healthTimeout: '20s', stableFor: '1s', watch: '2s' };
export const RESTART = { backoff: '200ms', maxBackoff: '1s', crashloop: { restarts: 5, within: '1m' } };

export const HOST_WEB = `version: "2.4"
services:
  web:
    image: "deckhand-test/web:\${WEB_TAG:-latest}"
    network_mode: host
    init: true
    labels: { deckhand.test: "1" }
    environment:
      PORT: "\${WEB_PORT}"
      WEB_HEALTHY: "\${WEB_HEALTHY:-1}"
      EXIT_AFTER: "\${EXIT_AFTER:-}"
`;

export interface DeployEnv {
  stack: TestStack;
  port: number;
  a: ApiAgent;
  c: RpcClient;
  /** Stops the agent (SIGTERM) and starts it again on the same data, with these extras. */
  restartAgent(extra?: AgentExtras): Promise<void>;
  /** Starts the agent again after it exited by itself (a failpoint's SIGKILL). */
  relaunch(extra?: AgentExtras): Promise<void>;
  /** Starts it again armed to kill itself early (a recovery's failpoint): no waiting for ready, no connection. */
  relaunchToDie(extra: AgentExtras): Promise<void>;
  cleanup(): Promise<void>;
}

export interface AgentExtras {
  env?: Record<string, string>;
  deploy?: object;
}

export interface EnvOptions {
  compose?: string;
  deploy?: object;
  files?: Record<string, string>;
  extraEnv?: string;
}

export async function makeDeployEnv(name: string, o: EnvOptions = {}): Promise<DeployEnv> {
  requireDocker();
  const stack = TestStack.unique(name, {});
  const port = await freePort();
  writeFileSync(join(stack.dir, 'compose.yaml'), o.compose ?? HOST_WEB);
  writeFileSync(join(stack.dir, '.env'), `WEB_PORT=${port}\n${o.extraEnv ?? ''}`);
  for (const [f, text] of Object.entries(o.files ?? {})) {
    mkdirSync(join(stack.dir, f, '..'), { recursive: true });
    writeFileSync(join(stack.dir, f), text);
  }
  await stack.up();
  const env = { stack, port } as DeployEnv;
  const launch = async (extra: AgentExtras = {}, dir?: string, dataDir?: string, ready = true) => {
    env.a = await startApiAgent({
      ...(dir ? { dir } : {}),
      config: { ...(dataDir ? { dataDir } : {}), stack: { project: stack.project, dir: stack.dir, restart: RESTART, deploy: extra.deploy ?? o.deploy ?? DEPLOY } },
      ...(extra.env ? { env: extra.env } : {}),
      ready,
    });
    if (ready) env.c = await connect(env.a.url, env.a.token(`ops${Date.now()}`, 'operate'));
  };
  await launch();
  env.relaunch = async (extra = {}) => {
    env.c.close();
    const { dir, dataDir } = env.a.agent;
    await env.a.agent.exited;
    await launch(extra, dir, dataDir);
  };
  env.relaunchToDie = async (extra) => {
    env.c.close();
    const { dir, dataDir } = env.a.agent;
    await env.a.agent.exited;
    await launch(extra, dir, dataDir, false);
  };
  env.restartAgent = async (extra = {}) => {
    await env.a.agent.stop();
    await env.relaunch(extra);
  };
  env.cleanup = async () => {
    env.c.close();
    await env.a.agent.stop();
    await stack.down();
    removeDir(env.a.agent.dir);
    removeDir(stack.dir);
  };
  await waitFor(async () => (await env.a.agent.get('/health')).json().checks['service:web']?.[0]?.status === 'pass', 30_000, () => 'stack healthy');
  return env;
}

export interface OpResult {
  ok: boolean;
  deploy: any;
  events: any[];
}

/** Runs a deploy (or rollback) to its end event. */
export async function runOp(e: DeployEnv, method: 'deploy.start' | 'deploy.rollback', params: object = {}): Promise<OpResult> {
  const r = await e.c.call(method, params);
  assert.ok(r.result?.stream, JSON.stringify(r));
  const id = r.result.stream;
  await waitFor(() => e.c.notifications.some((n) => n.stream === id && n.event.type === 'end'), 120_000, () => `${method} to end`);
  const events = e.c.notifications.filter((n) => n.stream === id).map((n) => n.event);
  const end = events.at(-1);
  return { ok: end.ok, deploy: end.deploy, events };
}

/**
 * The version the web container answers with (its image's VERSION). A
 * connection that fails or hangs is tried again for up to 15 s: on a loaded
 * 2-core machine busybox's httpd can take seconds to fork. Any answer counts
 * at once, so a wrong version fails the caller's assertion without delay.
 */
export async function servedVersion(port: number, withinMs = 15_000): Promise<string> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/version`, { signal: AbortSignal.timeout(3000) });
      return (await res.text()).trim();
    } catch (err) {
      if (Date.now() >= deadline) throw new Error(`no answer from 127.0.0.1:${port}/version within ${withinMs} ms: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Waits until no deploy record is running, then returns the list (newest first). */
export async function settledDeploys(e: DeployEnv, timeoutMs = 90_000): Promise<any[]> {
  let list: any[] = [];
  await waitFor(async () => {
    list = (await e.c.call('deploy.list', {})).result.deploys;
    return list.length > 0 && list.every((d: any) => d.result !== 'running');
  }, timeoutMs, () => `deploys to settle: ${JSON.stringify(list.map((d) => [d.id, d.kind, d.result]))}`);
  return list;
}
