// Builds the Node-API addons under native/ in place with node-gyp (npm's
// own copy), against local headers only: npm's `nodedir` setting, else the
// running Node's prefix. Skips an addon whose .node is newer than its
// sources. `node scripts/build-native.mjs [--nodedir DIR] [--arch ARCH]`:
// the release script passes the shipped runtime's headers and architecture.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};

function nodeGyp() {
  const fromNpm = process.env.npm_execpath ? join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js') : undefined;
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  const globalRoot = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
  const file = join(globalRoot, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (!existsSync(file)) throw new Error(`node-gyp not found (looked in ${file})`);
  return file;
}

function headers() {
  const given = arg('nodedir');
  if (given) return given;
  let configured = '';
  try {
    configured = execFileSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8' }).trim();
  } catch {
    /* npm missing: use the prefix */
  }
  if (configured && configured !== 'undefined' && existsSync(join(configured, 'include', 'node', 'node_api.h'))) return configured;
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  throw new Error("no Node headers on this machine (include/node/node_api.h): install them or pass --nodedir");
}

const addons = [{ dir: join(root, 'native', 'sd-notify'), out: 'build/Release/sd_notify.node', sources: ['sd_notify.c', 'binding.gyp'] }];
const arch = arg('arch');
const force = process.argv.includes('--force');
for (const a of addons) {
  const out = join(a.dir, a.out);
  const newest = Math.max(...a.sources.map((s) => statSync(join(a.dir, s)).mtimeMs));
  if (!force && !arch && existsSync(out) && statSync(out).mtimeMs >= newest) continue;
  execFileSync(process.execPath, [nodeGyp(), 'rebuild', '--release', `--nodedir=${headers()}`, ...(arch ? [`--arch=${arch}`] : [])], { cwd: a.dir, stdio: ['ignore', 'ignore', 'inherit'] });
}
