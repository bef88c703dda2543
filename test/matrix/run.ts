// Runs the stack and deploy integration files (listed in ./files) under one
// compose version, each in a suite titled "FILE (compose vN)" so the report
// says which version a test ran under. One process per version: the variable
// is read by the helpers at run time, the agents get the matching
// stack.compose (test/helpers/compose.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe } from 'node:test';
import { ROOT } from '../helpers/agent.js';
import type { ComposeVersion } from '../helpers/compose.js';

export function matrixFiles(text = readFileSync(join(import.meta.dirname, 'files'), 'utf8')): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

export function runUnderCompose(version: ComposeVersion): void {
  process.env.DECKHAND_TEST_COMPOSE = version;
  process.env.DECKHAND_TEST_MATRIX = '1';
  for (const file of matrixFiles()) {
    // Each file in its own suite: its after() hooks (stacks down, agents
    // stopped) run before the next file starts.
    describe(`${file} (compose ${version})`, async () => {
      await import(pathToFileURL(join(ROOT, file)).href);
    });
  }
}
