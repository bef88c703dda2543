// The agent names its version in the WebSocket upgrade's answer
// (X-Deckhand-Version), and the CLI warns on stderr when it differs in a way
// that matters (server-cli/version-check.ts): here the real agent, once of
// the same version (no warning), once built under another (a warning naming
// the host and both versions, and the command still works).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ROOT, removeDir, tempDir } from '../helpers/agent.js';
import { startApiAgent, type ApiAgent } from '../helpers/api.js';

const BUILT_CLI = join(ROOT, 'dist/deckhand.js');

describe('CLI and agent versions', { timeout: 120_000 }, () => {
  const agents: ApiAgent[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const a of agents) await a.agent.stop();
    dirs.forEach(removeDir);
  });

  const status = (a: ApiAgent, env: Record<string, string> = {}) => {
    const home = tempDir('cliver');
    dirs.push(home);
    mkdirSync(join(home, 'config'), { recursive: true });
    return spawnSync(process.execPath, [BUILT_CLI, 'status', '--json'], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, XDG_CONFIG_HOME: join(home, 'config'), NO_COLOR: '1', DECKHAND_URL: a.url, DECKHAND_TOKEN: a.token(`t${Date.now()}`, 'read'), DECKHAND_FINGERPRINT: a.tls.fingerprint, ...env },
    });
  };

  it('the upgrade answer names the agent version; the same version gives no warning', async () => {
    const a = await startApiAgent({});
    agents.push(a);
    const header = await new Promise<string | undefined>((resolve, reject) => {
      const ws = new WebSocket(a.url, { rejectUnauthorized: false, headers: { Authorization: `Bearer ${a.token('hdr', 'read')}` } });
      ws.once('upgrade', (res) => resolve(res.headers['x-deckhand-version'] as string | undefined));
      ws.once('open', () => ws.close());
      ws.once('error', reject);
    });
    const version = (JSON.parse(status(a).stdout) as { agent: { version: string } }).agent.version;
    assert.equal(header, version);
    const r = status(a);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /warning/);
  });

  it('an agent of another minor version (before 1.0): one warning on stderr, and the command still works', async () => {
    // The agent bundled under another version, beside the checkout (so it
    // finds node_modules), as scripts/release.sh --version builds it.
    const out = join(ROOT, '.cache', 'agent-0.99.0');
    const built = spawnSync(process.execPath, [join(ROOT, 'scripts/build.mjs'), '--outdir', out, 'agent'], { encoding: 'utf8', env: { ...process.env, DECKHAND_BUILD_VERSION: '0.99.0' } });
    assert.equal(built.status, 0, built.stderr);
    const a = await startApiAgent({ agentBin: join(out, 'deckhand-agent.js') });
    agents.push(a);
    const r = status(a);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^warning: .*: deckhand \S+ and agent 0\.99\.0 differ in their minor version .*upgrade this CLI\n$/);
    assert.equal(JSON.parse(r.stdout).agent.version, '0.99.0');
  });
});
