// Bundles the agent and the CLI into ES modules under dist/ (options in
// scripts/bundle.mjs), and the Node-API addons in native/ (build-native.mjs).
// `node scripts/build.mjs [agent] [cli] [native]`.
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentBuildOptions, cliBuildOptions } from './bundle.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
// --outdir DIR: bundle there instead of dist/ (a release builds apart, so
// the checkout's dist/ stays what the tests run).
const args = process.argv.slice(2);
const outAt = args.indexOf('--outdir');
const outdir = outAt >= 0 ? args[outAt + 1] : 'dist';
if (outAt >= 0) args.splice(outAt, 2);
const targets = args;
const all = targets.length === 0;

if (all || targets.includes('agent')) {
  rmSync(resolve(root, outdir, 'chunks'), { recursive: true, force: true }); // no stale chunks
  await build(agentBuildOptions({ root, outdir }));
}
if (all || targets.includes('cli')) await build(cliBuildOptions({ root, outfile: join(outdir, 'deckhand.js') }));
if (all || targets.includes('native')) execFileSync(process.execPath, [fileURLToPath(new URL('./build-native.mjs', import.meta.url))], { stdio: 'inherit' });
