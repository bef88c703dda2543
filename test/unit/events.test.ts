import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CONDITION_TYPES, EVENT_TYPES } from '../../agent/events/catalog.js';
import { Conditions } from '../../agent/events/conditions.js';
import { EventLog, type StoredEvent } from '../../agent/events/log.js';
import { openStore, type Db } from '../../agent/store/db.js';
import { retryDelay, webhookId, webhookWants } from '../../agent/duties/alerts/duty.js';

describe('events and conditions', () => {
  let dir: string;
  let db: Db;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dh-events-'));
    db = openStore(dir);
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fires on a change of state only, and once more when it clears', () => {
    const log = new EventLog(db);
    const seen: StoredEvent[] = [];
    log.subscribe((e) => seen.push(e));
    const c = new Conditions(log);
    c.set(true, 'disk.low', '/', 'warning', 'full');
    c.set(true, 'disk.low', '/', 'warning', 'still full');
    c.set(true, 'disk.low', '/srv', 'warning', 'full too');
    c.set(false, 'disk.low', '/', 'warning', 'ok again');
    c.set(false, 'disk.low', '/', 'warning', 'still ok');
    assert.deepEqual(seen.map((e) => `${e.type} ${e.subject}`), ['disk.low /', 'disk.low /srv', 'disk.low.resolved /']);
    assert.deepEqual(log.list({ type: 'disk.low' }).map((e) => e.type), ['disk.low.resolved', 'disk.low', 'disk.low']);
  });

  it('remembers open conditions across a restart, so they do not fire again', () => {
    new Conditions(new EventLog(db)).raise('disk.low', '/', 'warning', 'full');
    const log = new EventLog(db);
    const seen: string[] = [];
    log.subscribe((e) => seen.push(e.type));
    const again = new Conditions(log);
    assert.equal(again.isOpen('disk.low', '/'), true);
    again.raise('disk.low', '/', 'warning', 'full');
    again.clear('disk.low', '/', 'fine');
    assert.deepEqual(seen, ['disk.low.resolved']);
  });

  it('a listener that throws does not stop the others or the write', () => {
    const errors: unknown[] = [];
    const log = new EventLog(db, (e) => errors.push(e));
    let after = 0;
    log.subscribe(() => {
      throw new Error('boom');
    });
    log.subscribe(() => after++);
    log.record({ type: 'agent.started', severity: 'info', message: 'hi' });
    assert.equal(after, 1);
    assert.equal(errors.length, 1);
    assert.equal(log.list().length, 1);
  });
});

describe('webhook delivery rules', () => {
  it('a hook without events gets every event; with a list, those and their .resolved', () => {
    const hook = { url: 'https://h/x', events: ['disk.low', 'deploy.failed'] };
    assert.equal(webhookWants({ url: 'https://h/x' }, 'disk.low'), true);
    assert.equal(webhookWants(hook, 'disk.low'), true);
    assert.equal(webhookWants(hook, 'disk.low.resolved'), true, 'a listed condition is heard clearing');
    assert.equal(webhookWants(hook, 'deploy.failed'), true);
    assert.equal(webhookWants(hook, 'service.down'), false);
    assert.equal(webhookWants(hook, 'service.down.resolved'), false, 'not the .resolved of an unlisted condition');
    assert.equal(webhookWants(hook, 'deploy.succeeded'), false);
    const onlyResolved = { url: 'https://h/x', events: ['disk.low.resolved'] };
    assert.equal(webhookWants(onlyResolved, 'disk.low.resolved'), true);
    assert.equal(webhookWants(onlyResolved, 'disk.low'), false, 'listing .resolved alone does not bring the raise');
  });
  it('every condition type has a .resolved form that its listing brings', () => {
    for (const type of CONDITION_TYPES) {
      assert.ok(EVENT_TYPES.includes(`${type}.resolved`));
      assert.equal(webhookWants({ url: 'https://h/x', events: [type] }, `${type}.resolved`), true, type);
    }
  });
  it('backs off exponentially with jitter, capped at 5 minutes', () => {
    for (let i = 0; i < 20; i++) {
      const d1 = retryDelay(1);
      assert.ok(d1 >= 800 && d1 <= 1200, `first retry ${d1}`);
      const d4 = retryDelay(4);
      assert.ok(d4 >= 6400 && d4 <= 9600, `fourth retry ${d4}`);
      assert.ok(retryDelay(30) <= 360_000);
    }
  });
  it('names a hook without its URL', () => {
    const id = webhookId('https://hooks.example.com/services/SECRET');
    assert.match(id, /^[0-9a-f]{16}$/);
    assert.ok(!id.includes('SECRET'));
  });
});
