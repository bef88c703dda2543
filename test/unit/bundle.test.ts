// The agent's bundle leaves out what deckhand never calls (scripts/bundle.mjs):
// these parts cost resident memory at every start, so a dependency change or
// an import of zod's classic API that brings them back should fail here, not
// show up months later as a missed memory goal.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { build, type Metafile } from 'esbuild';
import { agentBuildOptions, cliBuildOptions } from '../../scripts/bundle.mjs';
import { ROOT } from '../helpers/agent.js';

/** Each output file of a build (not written) with the source files it holds. */
async function outputsOf(options: ReturnType<typeof agentBuildOptions>): Promise<[string, string[]][]> {
  const result = await build({ ...options, write: false, metafile: true, sourcemap: false, logLevel: 'error' });
  const meta = result.metafile as Metafile;
  return Object.entries(meta.outputs).map(([name, o]) => [name, Object.keys(o.inputs)]);
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
  const agentOutputs = outputsOf(agentBuildOptions({ root: ROOT, outdir: 'dist-test-unused' }));

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

  it('the CLI carries no zod classic API and no other locale', async () => {
    const inputs = (await outputsOf(cliBuildOptions({ root: ROOT, outfile: 'dist-test-unused/deckhand.js' }))).flatMap(([, files]) => files);
    assert.deepEqual(inputs.filter((i) => /node_modules\/zod\/v4\/(classic|locales\/(?!en\.js))/.test(i)), []);
  });
});
