// Types of scripts/bundle.mjs for the TypeScript that imports it (benchmarks).
import type { BuildOptions, Plugin } from 'esbuild';

export const stubUnused: Plugin;
export function agentBuildOptions(opts: { root: string; outdir: string; plugins?: Plugin[] }): BuildOptions;
export function cliBuildOptions(opts: { root: string; outfile: string }): BuildOptions;
