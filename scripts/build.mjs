// Bundles the agent and the CLI into ES modules under dist/ (options in
// scripts/bundle.mjs), and the Node-API addons in native/ (build-native.mjs).
// `node scripts/build.mjs [agent] [cli] [native]`.
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { agentBuildOptions, cliBuildOptions } from './bundle.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const targets = process.argv.slice(2);
const all = targets.length === 0;

if (all || targets.includes('agent')) {
  rmSync(new URL('../dist/chunks', import.meta.url), { recursive: true, force: true }); // no stale chunks
  await build(agentBuildOptions({ root, outdir: 'dist' }));
}
if (all || targets.includes('cli')) await build(cliBuildOptions({ root, outfile: 'dist/deckhand.js' }));
if (all || targets.includes('native')) execFileSync(process.execPath, [fileURLToPath(new URL('./build-native.mjs', import.meta.url))], { stdio: 'inherit' });
