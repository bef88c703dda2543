// The agent's bundle leaves out what deckhand never calls (scripts/bundle.mjs):
// these parts cost resident memory at every start, so a dependency change or
// an import of zod's classic API that brings them back should fail here, not
// show up months later as a missed memory goal.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { build, type Metafile } from 'esbuild';
import { agentBuildOptions, cliBuildOptions } from '../../scripts/bundle.mjs';
import { ROOT } from '../helpers/agent.js';

async function metafileOf(options: ReturnType<typeof agentBuildOptions>): Promise<Metafile> {
  const result = await build({ ...options, write: false, metafile: true, sourcemap: false, logLevel: 'error' });
  return result.metafile as Metafile;
}

/** Each output file of a build with the source files it holds. */
function outputsOf(meta: Metafile): [string, string[]][] {
  return Object.entries(meta.outputs).map(([name, o]) => [name, Object.keys(o.inputs)]);
}

/** The output files a process loads when it starts from `entry`: the entry and the chunks it imports statically, transitively. */
function loadedAtStart(meta: Metafile, entry: string): string[] {
  const seen = new Set<string>();
  const visit = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const i of meta.outputs[name]!.imports) if (i.kind === 'import-statement' && !i.external) visit(i.path);
  };
  visit(entry);
  return [...seen];
}

const NEVER_BUNDLED = [
  /node_modules\/ajv\//,
  /node_modules\/fast-json-stringify\/index\.js/,
  /node_modules\/light-my-request\//,
  /node_modules\/semver\//,
  /node_modules\/ssh2\//,
  /node_modules\/@grpc\//,
  /node_modules\/protobufjs\//,
  /node_modules\/tar-fs\//,
  /node_modules\/readable-stream\//,
  /node_modules\/debug\//,
  /node_modules\/thread-stream\//,
  /node_modules\/zod\/v4\/classic\//,
  // 11 MB of RSS once loaded; host facts and metrics read /proc, os-release and small tools instead.
  /node_modules\/systeminformation\//,
  /node_modules\/zod\/v4\/locales\/(?!en\.js)/,
];

describe('bundles', () => {
  const agentMeta = metafileOf(agentBuildOptions({ root: ROOT, outdir: 'dist-test-unused' }));
  const agentOutputs = agentMeta.then(outputsOf);

  it('the agent leaves out fastify schema compilers, dockerode remote/BuildKit parts, zod classic and other locales, systeminformation', async () => {
    const inputs = (await agentOutputs).flatMap(([, files]) => files);
    assert.ok(inputs.some((i) => i.includes('node_modules/fastify/')), 'fastify is in the bundle');
    assert.ok(inputs.some((i) => i.includes('node_modules/zod/v4/locales/en.js')), 'zod English messages are in the bundle');
    const unwanted = inputs.filter((i) => NEVER_BUNDLED.some((re) => re.test(i)));
    assert.deepEqual(unwanted, []);
  });

  it('prom-client stays in its own chunk, loaded on the first scrape', async () => {
    const outputs = await agentOutputs;
    const main = outputs.find(([name]) => name.endsWith('deckhand-agent.js'));
    assert.ok(main, 'the agent entry is built');
    assert.ok(!main[1].some((i) => i.includes('node_modules/prom-client/')));
    assert.ok(outputs.some(([name, files]) => name !== main[0] && files.some((i) => i.includes('node_modules/prom-client/'))), 'prom-client has its own chunk');
  });

  it('what the agent loads at start holds neither pg nor prom-client nor acme-client, and imports node:http only by require', async () => {
    const meta = await agentMeta;
    const entry = Object.keys(meta.outputs).find((name) => name.endsWith('/deckhand-agent.js'));
    assert.ok(entry, 'the agent entry is built');
    const atStart = loadedAtStart(meta, entry);
    const inputs = atStart.flatMap((name) => Object.keys(meta.outputs[name]!.inputs));
    assert.ok(inputs.some((i) => i.includes('node_modules/fastify/')), 'fastify is loaded at start');
    // pg looks for Cloudflare Workers' Response at load, which makes Node load its fetch implementation.
    assert.deepEqual(inputs.filter((i) => /node_modules\/(pg|pg-[a-z-]+|prom-client|acme-client)\//.test(i)), []);
    assert.ok(Object.values(meta.outputs).some((o) => Object.keys(o.inputs).some((i) => i.includes('node_modules/pg/'))), 'pg is in a chunk of its own');
    // On Node 24 an ES import of node:http reads its lazy WebSocket export and loads undici (scripts/bundle.mjs).
    const esImports = Object.entries(meta.outputs).flatMap(([name, o]) => o.imports.filter((i) => i.kind === 'import-statement' && /^(node:)?http$/.test(i.path)).map(() => name));
    assert.deepEqual(esImports, []);
  });

  it('the CLI carries no zod classic API and no other locale', async () => {
    const inputs = outputsOf(await metafileOf(cliBuildOptions({ root: ROOT, outfile: 'dist-test-unused/deckhand.js' }))).flatMap(([, files]) => files);
    assert.deepEqual(inputs.filter((i) => /node_modules\/zod\/v4\/(classic|locales\/(?!en\.js))/.test(i)), []);
  });
});
