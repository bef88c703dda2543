// deckhand backup list / run / restore, run in-process (runCli with a
// captured Io) against a stand-in that speaks the API contract
// (agent/api/protocol.ts) over a real WSS connection and plays given pages
// and streams. What is checked is the CLI's side only: what it sends, how it
// renders what it gets, its exit codes, --json and Ctrl-C. What the agent
// really does is for the integration tests.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { ERROR, paramsSchemas, type BackupEvent, type BackupInfo, type MethodName, type RestoreInfo } from '../../agent/api/protocol.js';
import { runCli } from '../../server-cli/cli.js';
import type { Io } from '../../server-cli/io.js';
import { makeCert } from '../helpers/tls.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const GiB = 2 ** 30;
const MiB = 2 ** 20;

function backup(over: Partial<BackupInfo> = {}): BackupInfo {
  return {
    id: 17,
    name: 'db',
    startedAt: new Date(NOW - 20_000).toISOString(),
    durationMs: 14_200,
    status: 'verified',
    verified: true,
    trigger: 'manual',
    actor: 'ops',
    file: 'db-20260601T115940Z.dump',
    size: 1.2 * GiB,
    sha256: `ab12cd34ef56${'0'.repeat(52)}`,
    verify: 'read',
    ...over,
  };
}

const RESTORED: RestoreInfo = { id: 2, backupId: 17, name: 'db', database: 'app', newDatabase: false, actor: 'ops', startedAt: new Date(NOW - 40_000).toISOString(), durationMs: 31_000, status: 'succeeded', safetyBackupId: 19 };

const RUN: BackupEvent[] = [
  { type: 'step', step: 'space', status: 'ok', ms: 4, detail: '38 GiB free' },
  { type: 'step', step: 'dump', status: 'started' },
  { type: 'progress', step: 'dump', bytes: 100 * MiB, bytesPerSecond: 95 * MiB, elapsedMs: 1_000 },
  { type: 'progress', step: 'dump', bytes: 412 * MiB, bytesPerSecond: 95 * MiB, elapsedMs: 4_300 },
  { type: 'step', step: 'dump', status: 'ok', ms: 9_000 },
  { type: 'step', step: 'verify', status: 'ok', ms: 5_000 },
  { type: 'step', step: 'commit', status: 'ok', ms: 10 },
  { type: 'step', step: 'rotate', status: 'ok', ms: 2, detail: 'kept 7' },
];

interface Script {
  events: BackupEvent[];
  /** The end event's fields; none: the stream does not end. */
  end?: Record<string, unknown>;
}

class Stand {
  readonly https: Server;
  readonly wss = new WebSocketServer({ noServer: true });
  readonly calls: { method: string; params: unknown }[] = [];
  script: Script = { events: RUN, end: { ok: true, backup: backup() } };
  list: BackupInfo[] = [];
  error: { code: number; message: string } | undefined;
  port = 0;
  private nextStream = 1;

  constructor(cert: { cert: string; key: string }) {
    this.https = createServer({ cert: cert.cert, key: cert.key }, (_req, res) => res.writeHead(426).end());
    this.https.on('upgrade', (req, socket, head) => this.wss.handleUpgrade(req, socket, head, (ws) => this.serve(ws)));
  }

  async listen(): Promise<this> {
    await new Promise<void>((res) => this.https.listen(0, '127.0.0.1', res));
    this.port = (this.https.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.wss.close();
    this.https.closeAllConnections();
    await new Promise((res) => this.https.close(res));
  }

  private answer(method: MethodName, params: Record<string, unknown>, ws: WebSocket): unknown {
    if (this.error) throw this.error;
    switch (method) {
      case 'backup.list': {
        // Pages below `cursor`, newest first, `next` the last id given.
        const below = params.cursor ? Number(params.cursor) : Infinity;
        const all = this.list.filter((b) => b.id < below && (!params.name || b.name === params.name));
        const page = all.slice(0, Number(params.limit ?? 20));
        return { backups: page, ...(all.length > page.length ? { next: String(page[page.length - 1]!.id) } : {}) };
      }
      case 'status.get':
        return { backups: [{ name: 'db', database: 'app' }] };
      case 'backup.run':
      case 'backup.restore': {
        const stream = this.nextStream++;
        const { events, end } = this.script;
        const notify = (event: unknown) => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'stream', params: { stream, event } }));
        setImmediate(async () => {
          for (const e of events) {
            notify(e);
            await new Promise((r) => setTimeout(r, 2));
          }
          if (end) notify({ type: 'end', ...end });
        });
        return { stream };
      }
      case 'stream.cancel':
        return { ok: true };
      default:
        throw { code: ERROR.methodNotFound, message: 'method not found' };
    }
  }

  private serve(ws: WebSocket): void {
    ws.on('message', (data) => {
      const req = JSON.parse(data.toString()) as { id: number; method: MethodName; params: unknown };
      this.calls.push({ method: req.method, params: req.params });
      const reply = (body: object) => ws.send(JSON.stringify({ jsonrpc: '2.0', id: req.id, ...body }));
      const parsed = paramsSchemas[req.method]?.safeParse(req.params ?? {});
      if (!parsed?.success) return reply({ error: { code: ERROR.invalidParams, message: 'invalid params' } });
      try {
        reply({ result: this.answer(req.method, parsed.data as Record<string, unknown>, ws) });
      } catch (err) {
        reply({ error: err as object });
      }
    });
  }
}

function captureIo(env: NodeJS.ProcessEnv) {
  let out = '';
  let err = '';
  const handlers = new Set<() => void>();
  const io: Io = {
    env,
    stdout: { write: (t) => void (out += t), isTTY: false, columns: Infinity },
    stderr: { write: (t) => void (err += t), isTTY: false, columns: Infinity },
    stdin: new PassThrough(),
    now: () => NOW,
    onInterrupt: (h) => {
      handlers.add(h);
      return () => handlers.delete(h);
    },
  };
  return { io, out: () => out, err: () => err, interrupt: () => handlers.forEach((h) => h()) };
}

describe('backup commands over a stand-in connection', () => {
  let dir: string;
  let stand: Stand;
  let env: NodeJS.ProcessEnv;
  const run = async (args: string[], during?: (c: ReturnType<typeof captureIo>) => void) => {
    const c = captureIo(env);
    const running = runCli(args, c.io);
    during?.(c);
    const code = await running;
    return { code, out: c.out(), err: c.err() };
  };
  const sent = (method: string) => stand.calls.filter((c) => c.method === method).map((c) => c.params);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dhtest-cli-backup-'));
    const cert = makeCert(dir, 'agent');
    stand = await new Stand(cert).listen();
    env = { HOME: dir, XDG_CONFIG_HOME: dir, DECKHAND_URL: `wss://127.0.0.1:${stand.port}/v1`, DECKHAND_TOKEN: 'token', DECKHAND_FINGERPRINT: cert.fingerprint };
  });
  after(async () => {
    await stand.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    stand.calls.length = 0;
    stand.error = undefined;
    stand.list = [];
    stand.script = { events: RUN, end: { ok: true, backup: backup() } };
  });

  it('run: plain step lines, the first progress line of a step, then the end line; exit 0', async () => {
    const r = await run(['backup', 'run', 'db']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(sent('backup.run'), [{ name: 'db' }]);
    assert.equal(
      r.out,
      [
        '[  0.0s] space ok: 38 GiB free',
        '         dump 100 MiB at 95 MiB/s',
        '[  9.0s] dump ok',
        '[  5.0s] verify ok',
        '[  0.0s] commit ok',
        '[  0.0s] rotate ok: kept 7',
        '',
        'backup db 17 verified: 1.2 GiB in 14.2 s (sha256 ab12cd34ef56…)',
        '',
      ].join('\n'),
    );
  });

  it('run that failed: FAILED and the error, exit 1; --json: one document with the record', async () => {
    const failed = backup({ id: 18, status: 'failed', verified: false, size: undefined, sha256: undefined, error: 'pg_dump: error: connection refused' });
    stand.script = { events: [{ type: 'step', step: 'dump', status: 'failed', ms: 30, detail: 'connection refused' }], end: { ok: false, backup: failed } };
    const r = await run(['backup', 'run', 'db']);
    assert.equal(r.code, 1);
    assert.match(r.out, /\nbackup db 18 FAILED: pg_dump: error: connection refused\n$/);
    const j = await run(['backup', 'run', 'db', '--json']);
    assert.equal(j.code, 1);
    assert.deepEqual(JSON.parse(j.out), JSON.parse(JSON.stringify({ ok: false, backup: failed })));
    assert.match(j.err, /dump failed: connection refused/, 'the steps go to stderr');
  });

  it('run that broke before a record existed: the error, exit 1; --json an error document', async () => {
    stand.script = { events: [], end: { ok: false, error: 'not enough space: 1.2 GiB free, 3 GiB needed' } };
    const r = await run(['--json', 'backup', 'run', 'db']);
    assert.equal(r.code, 1);
    assert.match((JSON.parse(r.out) as { error: { message: string } }).error.message, /backup db on 127\.0\.0\.1:\d+ failed: not enough space/);
  });

  it('run already running: exit 1 naming the conflict', async () => {
    stand.error = { code: ERROR.conflict, message: 'a backup of db is already running' };
    const r = await run(['backup', 'run', 'db']);
    assert.equal(r.code, 1);
    assert.match(r.err, /cannot start the backup db on 127\.0\.0\.1:\d+: a backup of db is already running/);
  });

  it('Ctrl-C while watching: the run goes on, where to look, exit 130', async () => {
    stand.script = { events: RUN.slice(0, 3) };
    // Ctrl-C once the watching has begun: the first progress line is out.
    const r = await run(['backup', 'run', 'db'], (c) => {
      const poll = setInterval(() => {
        if (!c.out().includes('dump 100 MiB')) return;
        clearInterval(poll);
        c.interrupt();
      }, 5);
    });
    assert.equal(r.code, 130);
    assert.match(r.err, /stopped watching: the backup db goes on on 127\.0\.0\.1:\d+; see how it ends with `deckhand backup list db`/);
  });

  it('list: pages followed up to --limit; --json keeps next; empty says so', async () => {
    stand.list = Array.from({ length: 30 }, (_, i) => backup({ id: 30 - i }));
    const r = await run(['backup', 'list', 'db', '--limit', '25']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.split('\n').filter((l) => /^\s*\d+ /.test(l)).length, 25);
    assert.deepEqual(sent('backup.list')[0], { limit: 25, name: 'db' });
    assert.match(r.err, /^older ones remain: raise --limit \(now 25\) to see them\n$/, 'on stderr: stdout stays the table');
    const j = await run(['backup', 'list', '--json', '--limit', '5']);
    const doc = JSON.parse(j.out) as { backups: BackupInfo[]; next?: string };
    assert.deepEqual(doc.backups.map((b) => b.id), [30, 29, 28, 27, 26]);
    assert.equal(doc.next, '26');
    const none = await run(['backup', 'list', 'other']);
    assert.equal(none.code, 0);
    assert.equal(none.out, '');
    assert.match(none.err, /^no backups of other on 127\.0\.0\.1:\d+ yet\n$/);
  });

  it('restore without --yes: sends no restore, names the database, exit 2', async () => {
    stand.list = [backup({ id: 17 })];
    const r = await run(['backup', 'restore', '17']);
    assert.equal(r.code, 2);
    assert.equal(sent('backup.restore').length, 0);
    assert.match(r.err, /restoring backup 17 \(db, 20 s ago\) replaces database app on 127\.0\.0\.1:\d+; run again with --yes/);
  });

  it('restore --yes --to: sends confirm and to; the end line says nothing was replaced', async () => {
    stand.script = {
      events: [
        { type: 'step', step: 'checksum', status: 'started' },
        { type: 'progress', step: 'verify', bytes: 600 * MiB, bytesPerSecond: 300 * MiB, elapsedMs: 2_000, total: 1.2 * GiB },
        { type: 'step', step: 'checksum', status: 'ok', ms: 800 },
        { type: 'step', step: 'safety', status: 'ok', ms: 9_000, detail: 'backup 19' },
        { type: 'step', step: 'restore', status: 'started' },
        { type: 'progress', step: 'restore', bytes: 400 * MiB, bytesPerSecond: 80 * MiB, elapsedMs: 5_000, total: 1.2 * GiB },
        { type: 'step', step: 'restore', status: 'ok', ms: 21_000 },
      ],
      end: { ok: true, restore: { ...RESTORED, database: 'app_copy', newDatabase: true } },
    };
    const r = await run(['backup', 'restore', '17', '--yes', '--to', 'app_copy']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(sent('backup.restore'), [{ id: 17, confirm: true, to: 'app_copy' }]);
    assert.match(r.out, /restore 400 MiB of 1\.2 GiB \(32%\) at 80 MiB\/s\n/);
    assert.match(r.out, /^ +checksum 600 MiB of 1\.2 GiB \(48%\) at 300 MiB\/s\n/, 'named after the step running');
    assert.match(r.out, /\nrestored backup 17 into the new database app_copy in 31 s; nothing was replaced \(to undo, drop app_copy\)\n$/);
  });

  it('restore that failed at the checksum: the database left as it was, exit 1', async () => {
    stand.script = {
      events: [{ type: 'step', step: 'checksum', status: 'failed', ms: 800, detail: 'checksum mismatch' }],
      end: { ok: false, restore: { ...RESTORED, status: 'failed', safetyBackupId: undefined, error: 'checksum mismatch' } },
    };
    const r = await run(['backup', 'restore', '17', '--yes']);
    assert.equal(r.code, 1);
    assert.match(r.out, /restore of backup 17 into app FAILED: checksum mismatch\napp was left as it was\n$/);
  });
});
