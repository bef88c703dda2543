// Experimental builds of the agent, for measuring what a design change would
// buy before anyone makes it. Built from the working tree's agent/ sources
// with the options of scripts/bundle.mjs into a temp directory (linked to
// node_modules for better-sqlite3: the project's, or with a release's --script
// that release's, whose addon is built for the runtime it ships); never into dist/.
//
// "node-http": the health server's fastify replaced, at bundle time, by a
// 40-line shim on node:http that serves the same four routes (GET and HEAD,
// status, headers, JSON or text body, or the raw response after hijack; it
// ignores fastify's options, serverFactory included). It answers the question "what does
// fastify cost the agent?" in memory and in /health throughput.
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { agentBuildOptions } from '../../scripts/bundle.mjs';
import { ROOT } from '../helpers/agent.js';

export type VariantName = 'node-http';
export const VARIANTS: readonly VariantName[] = ['node-http'];

/** The part of fastify the health server uses, on node:http. */
const FASTIFY_SHIM = `
import { createServer } from 'node:http';
export default function fastify() {
  const routes = new Map();
  const server = createServer((req, res) => {
    const path = (req.url || '/').split('?')[0];
    const handler = req.method === 'GET' || req.method === 'HEAD' ? routes.get(path) : undefined;
    if (!handler) { res.writeHead(404, { 'content-type': 'application/json; charset=utf-8' }); res.end(req.method === 'HEAD' ? undefined : '{"statusCode":404}'); return; }
    let status = 200;
    const headers = {};
    const reply = {
      raw: res,
      hijack() {},
      code(n) { status = n; return reply; },
      header(k, v) { headers[k.toLowerCase()] = v; return reply; },
      send(body) {
        const text = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
        if (!headers['content-type']) headers['content-type'] = typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8';
        headers['content-length'] = Buffer.byteLength(text);
        res.writeHead(status, headers);
        res.end(req.method === 'HEAD' ? undefined : text);
        return reply;
      },
    };
    Promise.resolve(handler(req, reply)).catch(() => { if (!res.headersSent) { res.writeHead(500); res.end(); } });
  });
  return {
    server,
    get(path, handler) { routes.set(path, handler); },
    listen({ host, port }) { return new Promise((ok, ko) => { server.once('error', ko); server.listen(port, host, () => { server.off('error', ko); ok(); }); }); },
    close() { return new Promise((ok) => { server.close(() => ok()); server.closeAllConnections?.(); }); },
  };
}
`;

const shimFastify: Plugin = {
  name: 'shim-fastify',
  setup(b) {
    b.onResolve({ filter: /^fastify$/ }, () => ({ path: 'fastify', namespace: 'shim' }));
    b.onLoad({ filter: /.*/, namespace: 'shim' }, () => ({ contents: FASTIFY_SHIM, loader: 'js' }));
  },
};

export interface BuiltVariant {
  script: string;
  cleanup(): void;
}

/** runScript: the --script the bench runs (a release's), which decides where better-sqlite3 is found. */
export async function buildVariant(name: VariantName, runScript?: string): Promise<BuiltVariant> {
  const dir = mkdtempSync(join(tmpdir(), `dhbench-variant-${name}-`));
  symlinkSync(modulesFor(runScript), join(dir, 'node_modules'));
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  await build({ ...agentBuildOptions({ root: ROOT, outdir: dir, plugins: name === 'node-http' ? [shimFastify] : [] }), sourcemap: false, logLevel: 'error' });
  return { script: join(dir, 'deckhand-agent.js'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The node_modules beside a release's dist/ (its addon matches the runtime it ships), else the project's. */
function modulesFor(script: string | undefined): string {
  const beside = script ? join(dirname(dirname(script)), 'node_modules') : '';
  return beside && existsSync(join(beside, 'better-sqlite3')) ? beside : join(ROOT, 'node_modules');
}
