// Bundles the agent and the CLI into single ES modules under dist/.
// A bundle loads faster and holds less memory than thousands of module files;
// the agent's idle RSS goal (docs/performance.md) depends on it.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

// CommonJS dependencies call require(); an ES module bundle needs one.
const banner = {
  js: "import { createRequire as __deckhandCreateRequire } from 'node:module'; const require = __deckhandCreateRequire(import.meta.url);",
};

// dockerode reaches a remote engine over SSH and runs BuildKit sessions over
// gRPC; deckhand talks to the local socket only, so those parts (and their
// large dependencies) are replaced by stubs that fail loudly if ever called.
const stubUnused = {
  name: 'stub-unused',
  setup(b) {
    const stubbed = /^(ssh2|cpu-features|@grpc\/grpc-js|@grpc\/proto-loader|protobufjs)$/;
    b.onResolve({ filter: stubbed }, (args) => ({ path: args.path, namespace: 'stub' }));
    b.onResolve({ filter: /^\.\/(session|buildkit)$/ }, (args) =>
      args.importer.includes('dockerode') ? { path: args.path, namespace: 'stub' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'stub' }, (args) => ({
      contents: `const fail = () => { throw new Error(${JSON.stringify(args.path + ' is not bundled with deckhand')}); };
module.exports = new Proxy(fail, { get: (_t, k) => (k === '__esModule' ? false : fail) });`,
      loader: 'js',
    }));
  },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  minify: true,
  keepNames: false,
  banner,
  define: { __DECKHAND_VERSION__: JSON.stringify(pkg.version) },
  // Native addon: stays a real dependency.
  external: ['better-sqlite3'],
  plugins: [stubUnused],
  logLevel: 'warning',
};

const targets = process.argv.slice(2);
const all = targets.length === 0;

if (all || targets.includes('agent')) {
  // Code splitting: what the agent loads with import() (prom-client on the
  // first scrape; later ACME and PostgreSQL clients) stays out of memory until used.
  await build({
    ...common,
    entryPoints: { 'deckhand-agent': 'agent/main.ts' },
    outdir: 'dist',
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
  });
}
if (all || targets.includes('cli')) {
  await build({ ...common, entryPoints: ['server-cli/main.ts'], outfile: 'dist/deckhand.js' });
}
