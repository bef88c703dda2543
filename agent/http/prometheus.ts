// /metrics: the duties' gauges (described as data) rendered by prom-client.
// prom-client is loaded on the first scrape, not at start: an agent nobody
// scrapes does not carry it (see docs/performance.md, idle memory).
import type { Registry } from 'prom-client';
import type { GaugeSpec } from '../duty.js';

export async function buildRegistry(specs: readonly GaugeSpec[]): Promise<Registry> {
  // A CommonJS package: bundled, its exports arrive on `default`; under tsx, at the top.
  const loaded = (await import('prom-client')) as typeof import('prom-client') & { default?: typeof import('prom-client') };
  const { Counter, Gauge, Registry } = loaded.default ?? loaded;
  const registry = new Registry();
  for (const spec of specs) {
    const common = { name: spec.name, help: spec.help, labelNames: spec.labelNames ?? [], registers: [registry] };
    // Values live in the duties' kept state: each scrape copies them in.
    if (spec.kind === 'counter') {
      new Counter({
        ...common,
        collect() {
          this.reset();
          for (const s of spec.samples()) {
            if (s.labels) this.inc(s.labels, s.value);
            else this.inc(s.value);
          }
        },
      });
      continue;
    }
    new Gauge({
      ...common,
      collect() {
        this.reset();
        for (const s of spec.samples()) {
          if (s.labels) this.set(s.labels, s.value);
          else this.set(s.value);
        }
      },
    });
  }
  return registry;
}
