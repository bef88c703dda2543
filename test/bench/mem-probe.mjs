// Preloaded into the agent by agent-memory.ts (node --import): every 5 s,
// appends the process's own view of its memory to $DECKHAND_BENCH_PROBE_OUT
// as one JSON line. Not loaded by anything else.
import { appendFileSync } from 'node:fs';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';

const out = process.env.DECKHAND_BENCH_PROBE_OUT;
if (out) {
  setInterval(() => {
    const h = getHeapStatistics();
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, s.space_used_size]));
    appendFileSync(out, `${JSON.stringify({ t: Date.now(), ...process.memoryUsage(), mallocedMemory: h.malloced_memory, peakMallocedMemory: h.peak_malloced_memory, spaces })}\n`);
  }, 5000).unref();
}
