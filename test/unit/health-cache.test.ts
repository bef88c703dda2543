// The health server's kept answers: /health as bytes until a change or a
// second passes, /metrics rendered once a second and shared by concurrent scrapes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HealthChecks } from '../../agent/duty.js';
import { HealthCache, serializeHealth } from '../../agent/http/health-cache.js';
import { healthDocument } from '../../agent/http/health.js';
import { RenderCache } from '../../agent/http/render-cache.js';

function clock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function countingDuty(checks: () => HealthChecks) {
  const duty = { name: 'stack', builds: 0, start: async () => {}, stop: async () => {}, checks: () => (duty.builds++, checks()) };
  return duty;
}

describe('health document cache', () => {
  it('serializes exactly what the document was, with its HTTP status', () => {
    const doc = healthDocument([{ name: 's', start: async () => {}, stop: async () => {}, checks: () => ({ 'service:web': [{ status: 'fail', observedValue: 'exited', restarts: 1 }] }) }], '1.2.3', 'web-1');
    const s = serializeHealth(doc);
    assert.equal(s.body.toString(), JSON.stringify(doc));
    assert.equal(s.httpStatus, 503);
    assert.equal(serializeHealth({ ...doc, status: 'warn' }).httpStatus, 200);
  });

  it('builds once, then serves the same bytes until it is a second old', () => {
    const c = clock();
    const duty = countingDuty(() => ({ 'docker:engine': [{ status: 'pass' }] }));
    const cache = new HealthCache(() => healthDocument([duty], '1.0.0', 'h'), 1000, c.now);
    const first = cache.get();
    c.advance(999);
    assert.equal(cache.get(), first);
    assert.equal(duty.builds, 1);
    c.advance(1);
    cache.get();
    assert.equal(duty.builds, 2, 'rebuilt at one second, so time-based checks stay true');
  });

  it('a state change is served on the next read, and a burst of changes costs one build', () => {
    const c = clock();
    let state: 'pass' | 'fail' = 'pass';
    const duty = countingDuty(() => ({ 'service:web': [{ status: state }] }));
    const cache = new HealthCache(() => healthDocument([duty], '1.0.0', 'h'), 1000, c.now);
    assert.equal(cache.get().httpStatus, 200);
    state = 'fail';
    for (let i = 0; i < 5; i++) cache.invalidate();
    const after = cache.get();
    assert.equal(after.httpStatus, 503);
    assert.equal(JSON.parse(after.body.toString()).checks['service:web'][0].status, 'fail');
    assert.equal(duty.builds, 2);
  });
});

describe('metrics render cache', () => {
  it('renders once per second per key and serves that render meanwhile', async () => {
    const c = clock();
    const cache = new RenderCache(1000, c.now);
    let renders = 0;
    const render = async () => `n ${++renders}\n`;
    assert.equal((await cache.get('text', render)).toString(), 'n 1\n');
    c.advance(500);
    const hit = cache.get('text', render);
    assert.ok(Buffer.isBuffer(hit), 'a fresh render is served without waiting');
    assert.equal(hit.toString(), 'n 1\n');
    assert.equal((await cache.get('openmetrics', render)).toString(), 'n 2\n', 'each content type has its own render');
    c.advance(500);
    assert.equal((await cache.get('text', render)).toString(), 'n 3\n');
  });

  it('scrapes during a render share it', async () => {
    const cache = new RenderCache(1000, clock().now);
    let renders = 0;
    let finish!: (text: string) => void;
    const render = () => (renders++, new Promise<string>((r) => (finish = r)));
    const waiting = Array.from({ length: 20 }, () => cache.get('text', render));
    finish('one render');
    const bodies = await Promise.all(waiting);
    assert.equal(renders, 1);
    assert.ok(bodies.every((b) => b.toString() === 'one render'));
  });

  it('a failed render fails its waiters and is not kept', async () => {
    const cache = new RenderCache(1000, clock().now);
    let fail = true;
    const render = async () => {
      if (fail) throw new Error('collect failed');
      return 'ok';
    };
    await assert.rejects(Promise.resolve(cache.get('text', render)), /collect failed/);
    fail = false;
    assert.equal((await cache.get('text', render)).toString(), 'ok');
  });

  it('figures are as old as the start of their render, not its end', async () => {
    const c = clock();
    const cache = new RenderCache(1000, c.now);
    await cache.get('text', async () => {
      c.advance(400);
      return 'slow';
    });
    c.advance(599);
    assert.ok(cache.fresh('text'));
    c.advance(1);
    assert.equal(cache.fresh('text'), undefined);
  });
});
