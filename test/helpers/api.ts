// Helpers for API tests: a self-signed certificate made with openssl, tokens
// made with the agent's own `token create`, and a raw JSON-RPC client over
// a real WebSocket (the CLI has its own client; this one is for the hostile
// and low-level cases).
import { spawnSync } from 'node:child_process';
import WebSocket from 'ws';
import { makeCert as makeTestCert } from './tls.js';
import { AGENT_BIN, asUserArgv, freePort, startAgent, tempDir, userEnv, waitFor, type AgentOptions, type AgentProcess } from './agent.js';

export interface TlsFiles {
  cert: string;
  key: string;
  fingerprint: string;
}

export function makeCert(dir: string, cn = 'deckhand-test'): TlsFiles {
  const c = makeTestCert(dir, cn);
  return { cert: c.certFile, key: c.keyFile, fingerprint: c.fingerprint };
}

export interface ApiAgent {
  agent: AgentProcess;
  url: string;
  tls: TlsFiles;
  port: number;
  token(name: string, scope: 'read' | 'operate' | 'admin'): string;
}

/** Starts an agent with the API on a free loopback port; waits until it is ready unless `ready: false` (an agent about to kill itself). */
export async function startApiAgent(opts: AgentOptions & { ready?: boolean } = {}): Promise<ApiAgent> {
  const dir = opts.dir ?? tempDir('api');
  const tls = makeCert(dir);
  const port = await freePort();
  const agent = await startAgent({ ...opts, dir, config: { ...opts.config, api: { listen: `127.0.0.1:${port}`, tls: { cert: tls.cert, key: tls.key } } } });
  if (opts.ready !== false) await agent.waitReady();
  return {
    agent,
    url: `wss://127.0.0.1:${port}/v1`,
    tls,
    port,
    token: (name, scope) => createToken(agent.configFile, name, scope, agent.user),
  };
}

/** `deckhand-agent token create`, run as USER (the agent's user, as an operator would with sudo -u). */
export function createToken(configFile: string, name: string, scope: string, user = 'root'): string {
  const [file, ...args] = asUserArgv(user, [process.execPath, AGENT_BIN, 'token', 'create', '--name', name, '--scope', scope, '--config', configFile]);
  const r = spawnSync(file!, args, { encoding: 'utf8', env: { ...process.env, ...userEnv(user) } });
  if (r.status !== 0) throw new Error(`token create failed: ${r.stderr}`);
  return r.stdout.trim();
}

export interface RpcClient {
  ws: WebSocket;
  call(method: string, params?: unknown): Promise<any>;
  /** Raw frame, for malformed input. */
  sendRaw(data: string | Buffer, binary?: boolean): void;
  next(): Promise<any>;
  notifications: any[];
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

export type Refusal = { status: number; body: string };

/** Opens an authenticated connection; rejects with {status, body} when the upgrade is refused. */
export function connect(url: string, token: string | undefined, opts: { localAddress?: string } = {}): Promise<RpcClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      rejectUnauthorized: false,
      headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    const waiting = new Map<number, (msg: any) => void>();
    const inbox: any[] = [];
    const takers: ((m: any) => void)[] = [];
    const notifications: any[] = [];
    let nextId = 1;
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on("end", () => reject({ status: res.statusCode ?? 0, body } satisfies Refusal));
    });
    ws.on('error', (err) => reject(err));
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.method === 'stream') notifications.push(msg.params);
      else if (typeof msg.id === 'number' && waiting.has(msg.id)) {
        waiting.get(msg.id)!(msg);
        waiting.delete(msg.id);
        return;
      }
      if (takers.length) takers.shift()!(msg);
      else inbox.push(msg);
    });
    ws.on('open', () =>
      resolve({
        ws,
        notifications,
        closed,
        call: (method, params) =>
          new Promise((res) => {
            const id = nextId++;
            waiting.set(id, res);
            ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }));
          }),
        sendRaw: (data, binary = false) => ws.send(data, { binary }),
        next: () => new Promise((res) => (inbox.length ? res(inbox.shift()) : takers.push(res))),
        close: () => ws.close(),
      }),
    );
  });
}

/** Starts a streaming call and resolves with its events once the end arrives. */
export async function streamed(c: RpcClient, method: string, params: unknown, timeoutMs = 120_000): Promise<{ events: any[]; end: any }> {
  const reply = await c.call(method, params);
  if (reply.error) throw Object.assign(new Error(reply.error.message), { rpc: reply.error });
  const id = reply.result.stream;
  await waitFor(() => c.notifications.some((n) => n.stream === id && n.event.type === 'end'), timeoutMs, () => `${method} did not end: ${JSON.stringify(c.notifications.filter((n) => n.stream === id).slice(-5))}`);
  const events = c.notifications.filter((n) => n.stream === id).map((n) => n.event);
  return { events, end: events.at(-1) };
}

