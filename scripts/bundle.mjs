// The esbuild options of deckhand's bundles, shared by scripts/build.mjs and
// the benchmarks that build variants of the agent (test/bench/).
// A bundle loads faster and holds less memory than thousands of module files;
// the agent's idle RSS goal (docs/performance.md) depends on it.
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

// CommonJS dependencies call require(); an ES module bundle needs one.
const banner = {
  js: "import { createRequire as __deckhandCreateRequire } from 'node:module'; const require = __deckhandCreateRequire(import.meta.url);",
};

// Parts of dependencies deckhand never calls, replaced by stubs that fail
// loudly if ever called. esbuild runs a CommonJS module's body only when it
// is first required, but its source still sits in the bundle (and in the
// agent's heap), and a required module's body runs at start and keeps what
// it builds. Each of these is a whole subsystem deckhand does not use:
// - dockerode reaching a remote engine over SSH, BuildKit sessions over gRPC,
//   and packing build contexts (deckhand talks to the local socket; compose
//   does the builds);
// - fastify's schema compilers (ajv, fast-json-stringify) and inject()
//   (light-my-request): the health server declares no schemas and gives
//   fastify compilers that refuse (agent/http/server.ts); fastify's HTTP/2
//   server (node:http2, never enabled) and its plugin version checks
//   (semver: deckhand registers no plugins);
// - pino's worker-thread transports (thread-stream): the agent logs to stdout.
const STUBBED_PACKAGES =
  /^(ssh2|cpu-features|@grpc\/grpc-js|@grpc\/proto-loader|protobufjs|tar-fs|@balena\/dockerignore|@fastify\/ajv-compiler|@fastify\/fast-json-stringify-compiler|light-my-request)$/;
const STUBBED_FILES = [
  { filter: /^\.\/(session|buildkit)$/, importer: /[\\/]dockerode[\\/]/ },
  { filter: /^node:http2$/, importer: /[\\/]fastify[\\/]/ },
  { filter: /^semver$/, importer: /[\\/]fastify[\\/]/ },
  { filter: /^thread-stream$/, importer: /[\\/]pino[\\/]/ },
];
// Modules replaced by an equivalent: docker-modem's `debug` tracing (off
// unless DEBUG=modem is set) would load debug, supports-color and tty; its
// readable-stream is a copy of Node's own stream module, which is loaded anyway.
const NO_OP_DEBUG = `module.exports = () => { const log = () => {}; log.enabled = false; return log; };`;

const failingStub = (name) => `const fail = () => { throw new Error(${JSON.stringify(name + ' is not bundled with deckhand')}); };
module.exports = new Proxy(fail, { get: (_t, k) => (k === '__esModule' ? false : fail) });`;

export const stubUnused = {
  name: 'stub-unused',
  setup(b) {
    b.onResolve({ filter: STUBBED_PACKAGES }, (args) => ({ path: args.path, namespace: 'stub' }));
    for (const { filter, importer } of STUBBED_FILES) {
      b.onResolve({ filter }, (args) => (importer.test(args.importer) ? { path: args.path, namespace: 'stub' } : undefined));
    }
    b.onResolve({ filter: /^debug$/ }, (args) => ({ path: args.path, namespace: 'no-op' }));
    b.onResolve({ filter: /^readable-stream$/ }, (args) => (/[\\/]docker-modem[\\/]/.test(args.importer) ? { path: 'node:stream', external: true } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'stub' }, (args) => ({ contents: failingStub(args.path), loader: 'js' }));
    b.onLoad({ filter: /.*/, namespace: 'no-op' }, () => ({ contents: NO_OP_DEBUG, loader: 'js' }));
  },
};

// On Node 24 an ES import of node:http reads every export of the module, the
// lazy WebSocket, CloseEvent and MessageEvent among them, and so loads Node's
// fetch implementation (undici, with web streams and HTTP/2), which the agent
// never uses: 13 MB of RSS in a process of its own (2.9 MB in the agent, with
// pg's load, most of the rest being loaded anyway). A require() reads only
// what is used, so the agent's own imports of node:http go through the
// banner's require.
export const httpByRequire = {
  name: 'http-by-require',
  setup(b) {
    b.onResolve({ filter: /^(node:)?http$/ }, (args) => (args.kind === 'import-statement' ? { path: 'node:http', namespace: 'http-by-require' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'http-by-require' }, () => ({ contents: "module.exports = require('node:http');", loader: 'js' }));
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
  // DECKHAND_BUILD_VERSION: a release under another version (scripts/release.sh --version).
  define: { __DECKHAND_VERSION__: JSON.stringify(process.env.DECKHAND_BUILD_VERSION || pkg.version) },
  // Native addon: stays a real dependency.
  external: ['better-sqlite3'],
  logLevel: 'warning',
};

/**
 * The agent: code splitting, so what it loads with import() (prom-client on
 * the first scrape, the deploy machine on the first deploy) stays out of
 * memory until used.
 */
export function agentBuildOptions({ root, outdir, plugins = [] }) {
  return {
    ...common,
    absWorkingDir: root,
    // The certificate order runs in a child process of its own (agent/duties/certs/order-runner.ts).
    entryPoints: { 'deckhand-agent': 'agent/main.ts', 'deckhand-cert-order': 'agent/duties/certs/order-worker.ts' },
    outdir,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    plugins: [stubUnused, httpByRequire, ...plugins],
  };
}

/** The CLI: one file, copied alone to a laptop. */
export function cliBuildOptions({ root, outfile }) {
  return { ...common, absWorkingDir: root, entryPoints: ['server-cli/main.ts'], outfile, plugins: [stubUnused] };
}
