import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildRegistry } from '../../agent/http/prometheus.js';

describe('/metrics rendering', () => {
  it('a gauge and a counter read their values from kept state at each scrape', async () => {
    let observations = 0;
    let up = 1;
    const registry = await buildRegistry([
      { name: 'deckhand_test_up', help: 'up', samples: () => [{ value: up }] },
      { name: 'deckhand_test_observations_total', help: 'seen', kind: 'counter', samples: () => [{ value: observations }] },
      { name: 'deckhand_test_restarts', help: 'per service', labelNames: ['service'], samples: () => [{ labels: { service: 'web' }, value: 2 }] },
    ]);
    const zero = await registry.metrics();
    assert.match(zero, /^# TYPE deckhand_test_up gauge$/m);
    assert.match(zero, /^# TYPE deckhand_test_observations_total counter$/m);
    assert.match(zero, /^deckhand_test_observations_total 0$/m);
    observations = 7;
    up = 0;
    const later = await registry.metrics();
    assert.match(later, /^deckhand_test_observations_total 7$/m, 'the value now, not the one of the last scrape');
    assert.match(later, /^deckhand_test_up 0$/m);
    assert.match(later, /^deckhand_test_restarts\{service="web"\} 2$/m);
    observations = 9;
    assert.match(await registry.metrics(), /^deckhand_test_observations_total 9$/m, 'a scrape copies the value, it does not add it to the last one');
  });
});
