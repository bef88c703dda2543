// The integration files listed in ./side-by-side, three at a time in this one
// process, each in a suite titled "FILE (side by side)". They wait far more
// than they compute, so on a 2-core machine three of them take little longer
// than one.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readFileSync } from 'node:fs';
import { describe } from 'node:test';
import { ROOT } from '../helpers/agent.js';
import { matrixFiles } from './run.js';

const files = matrixFiles(readFileSync(join(import.meta.dirname, 'side-by-side'), 'utf8'));

describe('integration files side by side', { concurrency: 3 }, () => {
  for (const file of files) {
    // concurrency 1: without it a suite inherits its parent's 3, and every
    // file's own tests, written to run in order, would run three at a time too.
    describe(`${file} (side by side)`, { concurrency: 1 }, async () => {
      await import(pathToFileURL(join(ROOT, file)).href);
    });
  }
});
