// Alerts to real HTTP webhooks on loopback: changes of state only, clearing,
// filters, retries with backoff, durability across restarts, and a slow or
// dead hook never delaying the others.
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { webhookId } from '../../agent/duties/alerts/duty.js';
import { freePort, removeDir, startAgent, tempDir, waitFor, type AgentProcess } from '../helpers/agent.js';
import { waitForMetricsSamples } from '../helpers/observe.js';

interface Hook {
  url: string;
  received: Record<string, any>[];
  server: Server;
  close(): Promise<void>;
}

async function hook(port?: number, handler?: (req: IncomingMessage, res: ServerResponse) => void): Promise<Hook> {
  const received: Record<string, any>[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ ...JSON.parse(body), _headers: req.headers });
      if (handler) handler(req, res);
      else res.writeHead(204).end();
    });
  });
  const p = port ?? (await freePort());
  await new Promise<void>((r) => server.listen(p, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${p}/hook/SECRET-PATH`,
    received,
    server,
    close: () => new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** The agent's delivery rows for one hook, with their events' types (read from its database). */
function deliveries(agent: AgentProcess, url: string): { type: string; subject: string | null; status: string; attempts: number }[] {
  const db = new Database(join(agent.dataDir, 'deckhand.db'), { readonly: true });
  try {
    return db
      .prepare('SELECT e.type, e.subject, d.status, d.attempts FROM alert_deliveries d JOIN events e ON e.id = d.event_id WHERE d.webhook = ? ORDER BY d.event_id')
      .all(webhookId(url)) as { type: string; subject: string | null; status: string; attempts: number }[];
  } finally {
    db.close();
  }
}

/** How many events of this type and subject the agent recorded (its database). */
function eventCount(agent: AgentProcess, type: string, subject: string): number {
  const db = new Database(join(agent.dataDir, 'deckhand.db'), { readonly: true });
  try {
    return db.prepare('SELECT count(*) FROM events WHERE type = ? AND subject = ?').pluck().get(type, subject) as number;
  } finally {
    db.close();
  }
}

describe('webhooks', { timeout: 120_000 }, () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });
  /** An agent that is stopped after the tests whatever happens in them (a live one would keep this file running). */
  const started = async (opts: Parameters<typeof startAgent>[0]) => {
    const agent = await startAgent(opts);
    cleanup.push(async () => void (await agent.stop()));
    return agent;
  };

  it('delivers changes of state once, filtered, while a dead and a hanging hook wait their turn', async () => {
    const good = await hook();
    const filtered = await hook();
    const hanging = await hook(undefined, () => {
      /* never answers */
    });
    const deadPort = await freePort();
    cleanup.push(good.close, filtered.close, hanging.close);
    const agent = await started({
      config: {
        alerts: {
          diskLowPercent: 1, // every disk is "low": disk.low fires at the first tick
          webhooks: [
            { url: `http://127.0.0.1:${deadPort}/nothing-here` },
            { url: hanging.url },
            { url: good.url },
            { url: filtered.url, events: ['disk.low'] },
          ],
        },
      },
    });
    cleanup.push(() => removeDir(agent.dir));
    const t0 = Date.now();
    await agent.waitReady();
    await waitFor(() => good.received.some((e) => e.type === 'disk.low' && e.subject === '/'), 5000, () => `disk.low at the good hook: ${JSON.stringify(good.received.map((e) => e.type))}`);
    assert.ok(Date.now() - t0 < 5000, 'not held up by the dead or hanging hooks');
    await waitFor(() => good.received.some((e) => e.type === 'agent.started'), 5000, () => 'agent.started');

    // Three more samples (interval 1s), each finding the disk still low: the condition stays open, nothing new is sent.
    await waitForMetricsSamples(agent, 3);
    assert.equal(eventCount(agent, 'disk.low', '/'), 1, 'one disk.low for / recorded, however many samples found it low');
    const diskLowForRoot = good.received.filter((e) => e.type === 'disk.low' && e.subject === '/');
    assert.equal(diskLowForRoot.length, 1, 'fired once, on the change of state');
    assert.ok(filtered.received.some((e) => e.type === 'disk.low' && e.subject === '/'), 'the filtered hook gets what it asked for');
    assert.ok(filtered.received.every((e) => e.type === 'disk.low'), 'the filtered hook only gets what it asked for');
    // Not just not yet: once nothing is left queued for the filtered hook (delivered rows are
    // removed), what it received is all that was ever queued for it, and agent.started is not among it.
    await waitFor(() => deliveries(agent, filtered.url).length === 0, 5000, () => `the filtered hook's queue to empty: ${JSON.stringify(deliveries(agent, filtered.url))}`);
    assert.deepEqual([...new Set(filtered.received.map((e) => e.type))], ['disk.low']);
    assert.equal(hanging.received.length > 0, true, 'the hanging hook was tried');

    const sample = diskLowForRoot[0]!;
    assert.equal(sample.host, 'test-host');
    assert.equal(sample.severity, 'warning');
    assert.match(sample.message, /^disk \/ is [\d.]+% full \(threshold 1%\)$/);
    assert.ok(!Number.isNaN(Date.parse(sample.time)));
    assert.equal(typeof sample.id, 'number');
    assert.equal(sample._headers['content-type'], 'application/json');
    assert.match(sample._headers['user-agent'], /^deckhand\//);

    // The dead hook's failures are logged without its URL (it may hold a secret).
    await waitFor(() => agent.logLines().some((l) => l.msg === 'webhook delivery failed; will retry'), 5000);
    assert.ok(!agent.output.includes('SECRET-PATH'), 'webhook URL never logged');
    const stop = await agent.stop();
    assert.ok(stop.ms < 5000, `stopped in ${stop.ms} ms despite a hanging webhook`);

    // Restart with a sane threshold: the condition clears, and says so.
    const again = await started({ dir: agent.dir, config: { dataDir: agent.dataDir, alerts: { diskLowPercent: 99, webhooks: [{ url: good.url }] } } });
    await again.waitReady();
    await waitFor(() => good.received.some((e) => e.type === 'disk.low.resolved' && e.subject === '/'), 5000, () => 'disk.low.resolved');
    // The hook is served oldest first: a second disk.low left queued by the first run would have come before this.
    assert.equal(good.received.filter((e) => e.type === 'disk.low' && e.subject === '/').length, 1, 'disk.low for / delivered once in all');
    await again.stop();
  });

  it('a hook listing only disk.low hears disk.low, then disk.low.resolved when the disk is fine again', async () => {
    const listening = await hook();
    cleanup.push(listening.close);
    const webhooks = [{ url: listening.url, events: ['disk.low'] }];
    const agent = await started({ config: { alerts: { diskLowPercent: 1, webhooks } } });
    cleanup.push(() => removeDir(agent.dir));
    await agent.waitReady();
    await waitFor(() => listening.received.some((e) => e.type === 'disk.low' && e.subject === '/'), 5000, () => `disk.low: ${JSON.stringify(listening.received.map((e) => e.type))}`);
    await agent.stop();

    // The same database, a threshold no disk here reaches: each open condition clears.
    const again = await started({ dir: agent.dir, config: { dataDir: agent.dataDir, alerts: { diskLowPercent: 99, webhooks } } });
    await again.waitReady();
    const raised = () => new Set(listening.received.filter((e) => e.type === 'disk.low').map((e) => e.subject as string));
    const resolved = () => new Set(listening.received.filter((e) => e.type === 'disk.low.resolved').map((e) => e.subject as string));
    await waitFor(() => resolved().has('/') && [...raised()].every((m) => resolved().has(m)), 10_000, () => `disk.low.resolved for each of ${[...raised()]}: ${JSON.stringify(listening.received.map((e) => `${e.type} ${e.subject}`))}`);
    await again.stop();

    const seen = listening.received.map((e) => `${e.type} ${e.subject}`);
    assert.deepEqual(seen.filter((s) => !/^disk\.low(\.resolved)? /.test(s)), [], 'nothing but disk.low and its .resolved (no agent.started, no agent.stopping)');
    assert.ok(seen.indexOf('disk.low /') < seen.indexOf('disk.low.resolved /'), seen.join(', '));
    assert.equal(seen.filter((s) => s === 'disk.low.resolved /').length, 1, 'cleared once');
    const clear = listening.received.find((e) => e.type === 'disk.low.resolved' && e.subject === '/')!;
    assert.equal(clear.severity, 'info');
    assert.match(clear.message, /^disk \/ is back to [\d.]+%$/);
    // Delivered rows are not kept.
    const db = new Database(join(agent.dataDir, 'deckhand.db'), { readonly: true });
    const rows = db.prepare('SELECT count(*) FROM alert_deliveries').pluck().get();
    db.close();
    assert.equal(rows, 0, 'no delivery row left once each was delivered');
  });

  it('retries with backoff until the hook answers, across an agent restart, and sends each event once', async () => {
    const port = await freePort();
    const dir = tempDir('hooks');
    cleanup.push(() => removeDir(dir));
    const hookUrl = `http://127.0.0.1:${port}/hook`;
    const config = { alerts: { webhooks: [{ url: hookUrl }] } };
    const first = await started({ dir, config });
    await first.waitReady();
    await waitFor(() => first.logLines().some((l) => l.msg === 'webhook delivery failed; will retry'), 5000);
    await first.stop();

    // The hook comes up; a new agent run delivers the old event and its own.
    const up = await hook(port);
    cleanup.push(up.close);
    const second = await started({ dir, config: { ...config, dataDir: first.dataDir } });
    await second.waitReady();
    await waitFor(() => up.received.filter((e) => e.type === 'agent.started').length === 2, 10_000, () => `two agent.started: ${JSON.stringify(up.received.map((e) => e.id))}`);
    // A delivered row is removed: none left means both were delivered and none waits to go again.
    await waitFor(() => deliveries(second, hookUrl).length === 0, 10_000, () => `both deliveries done: ${JSON.stringify(deliveries(second, hookUrl))}`);
    await second.stop();
    // A third run has its own agent.started to send; anything the second left unsent, or would send again, goes first.
    const third = await started({ dir, config: { ...config, dataDir: first.dataDir } });
    await third.waitReady();
    await waitFor(() => up.received.filter((e) => e.type === 'agent.started').length >= 3, 10_000, () => 'the third agent.started');
    await third.stop();
    const ids = up.received.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, `no event delivered twice: ${JSON.stringify(ids)}`);
    assert.equal(ids.length, 3);
  });

  it('a hook answering 500 is retried, then the event goes through', async () => {
    let calls = 0;
    const flaky = await hook(undefined, (_req, res) => {
      calls++;
      res.writeHead(calls < 3 ? 500 : 200).end();
    });
    cleanup.push(flaky.close);
    const agent = await started({ config: { alerts: { webhooks: [{ url: flaky.url, events: ['agent.started'] }] } } });
    cleanup.push(() => removeDir(agent.dir));
    await agent.waitReady();
    await waitFor(() => calls >= 3, 10_000, () => `three attempts, saw ${calls}`);
    await waitFor(() => deliveries(agent, flaky.url).length === 0, 5000, () => `the delivery done: ${JSON.stringify(deliveries(agent, flaky.url))}`);
    assert.equal(calls, 3, 'two 500s, then delivered on the third attempt');
    assert.ok(flaky.received.every((e) => e.id === flaky.received[0]!.id), 'the same event each time');
    await agent.stop();
    // The next run's agent.started reaches the hook; the delivered one is not tried a fourth time.
    const again = await started({ dir: agent.dir, config: { dataDir: agent.dataDir, alerts: { webhooks: [{ url: flaky.url, events: ['agent.started'] }] } } });
    await again.waitReady();
    await waitFor(() => calls >= 4, 10_000, () => `the second run's agent.started, saw ${calls} calls`);
    await again.stop();
    assert.equal(calls, 4, 'stops once delivered');
    assert.equal(new Set(flaky.received.map((e) => e.id)).size, 2, 'three tries of the first event, one of the second');
  });
});
