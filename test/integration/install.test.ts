// install.sh on a fresh server, end to end: the release tarball built by
// scripts/release.sh (its own Node 24), a container booting systemd from a
// debootstrapped Debian rootfs (scripts/test-env.sh server-image) with this
// machine's Docker socket mounted, so the agent it installs has an engine.
// What a user meets: the unit active as `deckhand`, /health answering, the
// printed `deckhand host add` line working from outside with the printed
// fingerprint, a deploy of the --stack project, kill -9 and a hang (SIGSTOP)
// each followed by a restart, a second install keeping the token, another
// version and `--version` back, `--uninstall` keeping config and data, and
// clear failures for a busy port, a non-root user and another distribution.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { removeDir, tempDir, waitFor } from '../helpers/agent.js';
import { requireDocker, WEB_IMAGE } from '../helpers/stack.js';

const ROOT = resolve(import.meta.dirname, '../..');
const IMAGE = 'deckhand-test/server:bookworm';
const VERSION = (JSON.parse(execFileSync('node', ['-p', 'JSON.stringify(require("./package.json"))'], { cwd: ROOT, encoding: 'utf8' })) as { version: string }).version;
const PREVIOUS = '0.0.9-e2e';

interface Run {
  code: number | null;
  out: string;
  err: string;
}

describe('install.sh on a fresh server', { timeout: 600_000 }, () => {
  let work: string;
  let rel: string;
  let container = '';
  let project = '';
  let printed: { url: string; token: string; fingerprint: string; line: string };
  const cliEnv: NodeJS.ProcessEnv = { ...process.env };

  /** A command inside the server, as root (or `user`), argv only. */
  const inside = (argv: string[], opts: { user?: string; timeoutMs?: number } = {}): Run => {
    const r = spawnSync('docker', ['exec', ...(opts.user ? ['--user', opts.user] : []), container, ...argv], { encoding: 'utf8', timeout: opts.timeoutMs ?? 180_000 });
    return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
  };
  const sh = (script: string, opts: { user?: string } = {}) => inside(['bash', '-c', script], opts);
  const install = (...args: string[]) => inside(['bash', '/rel/install.sh', ...args]);
  const unit = (prop: string) => sh(`systemctl show -p ${prop} --value deckhand-agent`).out.trim();
  const cli = (...args: string[]): Run => {
    const r = spawnSync(process.execPath, [join(ROOT, 'dist/deckhand.js'), ...args], { encoding: 'utf8', env: cliEnv, timeout: 120_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  /** Waits for the unit to run a main PID other than `old`, active, and returns it with the wait. */
  const restartedFrom = async (old: string, timeoutMs: number) => {
    const t0 = Date.now();
    let pid = old;
    await waitFor(() => {
      pid = unit('MainPID');
      return pid !== old && pid !== '0' && unit('ActiveState') === 'active';
    }, timeoutMs, () => `no restart: ${sh('systemctl status deckhand-agent --no-pager | tail -20').out}`);
    return { pid, ms: Date.now() - t0 };
  };

  before(async () => {
    requireDocker();
    execFileSync('bash', [join(ROOT, 'scripts/test-env.sh'), 'server-image'], { stdio: ['ignore', 'ignore', 'inherit'] });
    work = tempDir('install-e2e');
    rel = join(work, 'rel');
    mkdirSync(rel);
    execFileSync('bash', [join(ROOT, 'scripts/release.sh'), '--out', rel], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
    // An older release to switch between: the same build, named PREVIOUS.
    const prev = join(work, 'prev');
    mkdirSync(prev);
    execFileSync('tar', ['-xzf', join(rel, `deckhand-${VERSION}-linux-x64.tar.gz`), '-C', prev]);
    renameSync(join(prev, `deckhand-${VERSION}`), join(prev, `deckhand-${PREVIOUS}`));
    const vfile = join(prev, `deckhand-${PREVIOUS}`, 'VERSION');
    writeFileSync(vfile, execFileSync('sed', [`s/"version":"[^"]*"/"version":"${PREVIOUS}"/`, vfile], { encoding: 'utf8' }));
    execFileSync('tar', ['-czf', join(rel, `deckhand-${PREVIOUS}-linux-x64.tar.gz`), '-C', prev, `deckhand-${PREVIOUS}`]);
    removeDir(prev);

    project = `dhe2e${Date.now().toString(36)}`;
    container = execFileSync('docker', [
      'run', '-d', '--label', 'deckhand.test=install', '--hostname', 'e2e-server',
      '--cap-add', 'ALL', '--cap-drop', 'SYS_RESOURCE', '--security-opt', 'seccomp=unconfined',
      '--tmpfs', '/run', '--tmpfs', '/run/lock', '-v', '/sys/fs/cgroup:/sys/fs/cgroup:rw', '--stop-signal', 'SIGRTMIN+3',
      '-v', `${rel}:/rel-tarballs:ro`, '-v', '/var/run/docker.sock:/var/run/docker.sock',
      IMAGE, '/sbin/init',
    ], { encoding: 'utf8' }).trim();
    await waitFor(() => /^(running|degraded)$/.test(sh('systemctl is-system-running').out.trim()), 60_000, () => `systemd did not come up: ${sh('systemctl is-system-running; systemctl --failed').out}`);
    // The release where a user would download it; install.sh from inside it.
    assert.equal(sh(`mkdir -p /rel && cp /rel-tarballs/* /rel/ && tar -xzf /rel/deckhand-${VERSION}-linux-x64.tar.gz -O deckhand-${VERSION}/install.sh > /rel/install.sh`).code, 0);
    // This machine's Docker CLI and compose plugin, and a docker group with
    // the socket's group id, as Debian's docker.io would leave them.
    execFileSync('docker', ['cp', execFileSync('sh', ['-c', 'command -v docker'], { encoding: 'utf8' }).trim(), `${container}:/usr/bin/docker`]);
    sh('mkdir -p /usr/libexec/docker/cli-plugins');
    execFileSync('docker', ['cp', '/usr/libexec/docker/cli-plugins/docker-compose', `${container}:/usr/libexec/docker/cli-plugins/docker-compose`]);
    const gid = execFileSync('stat', ['-c', '%g', '/var/run/docker.sock'], { encoding: 'utf8' }).trim();
    assert.equal(sh(`groupadd --system -g ${gid} docker`).code, 0);
    // The stack: a web service (no network: nothing to collide with), its
    // greeting from .env, owned by root as an operator leaves it.
    const compose = [
      `name: ${project}`,
      'services:',
      '  web:',
      `    image: ${WEB_IMAGE}`,
      '    network_mode: none',
      '    init: true',
      '    environment:',
      '      PORT: "8080"',
      '      GREETING: "${GREETING:-hello}"',
      '',
    ].join('\n');
    assert.equal(sh(`mkdir -p /srv/app && cat > /srv/app/compose.yaml <<'EOF'\n${compose}EOF\nprintf 'GREETING=hello\\n' > /srv/app/.env && chmod 0640 /srv/app/.env`).code, 0);
    cliEnv.XDG_CONFIG_HOME = join(work, 'laptop');
    mkdirSync(cliEnv.XDG_CONFIG_HOME, { mode: 0o700 });
  });

  after(() => {
    if (container) spawnSync('docker', ['rm', '-f', '-v', container], { stdio: 'ignore' });
    if (project) {
      const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
      if (ids.length) spawnSync('docker', ['rm', '-f', '-v', ...ids], { stdio: 'ignore' });
      spawnSync('docker', ['network', 'rm', `${project}_default`], { stdio: 'ignore' });
    }
    if (work) removeDir(work);
  });

  it('installs: the unit active as deckhand, /health answering, and it prints the URL, token, fingerprint and host add line', () => {
    const t0 = Date.now();
    const r = install('--from', `/rel/deckhand-${VERSION}-linux-x64.tar.gz`, '--stack', '/srv/app');
    const ms = Date.now() - t0;
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    console.log(`install.sh to ready: ${(ms / 1000).toFixed(1)} s`);
    assert.equal(unit('ActiveState'), 'active');
    assert.equal(unit('Type'), 'notify');
    assert.equal(sh(`ps -o user= -p ${unit('MainPID')}`).out.trim(), 'deckhand');
    const health = JSON.parse(sh('curl -s http://127.0.0.1:7070/health').out) as { status: string; checks: Record<string, unknown> };
    assert.ok(health.checks['service:web'] !== undefined || health.checks['docker:engine'] !== undefined, JSON.stringify(health));
    // The pieces it printed.
    const line = /^\s+(deckhand host add \S+ (wss:\/\/\S+) --token (\S+) --fingerprint (SHA256:[0-9a-f]{64}))$/m.exec(r.out);
    assert.ok(line, r.out);
    printed = { line: line[1]!, url: line[2]!, token: line[3]!, fingerprint: line[4]! };
    assert.match(r.out, new RegExp(`fingerprint  ${printed.fingerprint}`));
    // What it made, with the modes SPEC 7 asks for.
    assert.equal(sh('stat -c "%a %U %G" /etc/deckhand /var/lib/deckhand /etc/deckhand/api.key').out, '750 root deckhand\n750 deckhand deckhand\n600 deckhand deckhand\n');
    assert.match(sh('cat /etc/deckhand/agent.yaml').out, new RegExp(`stack:\\n  project: ${project}\\n  dir: /srv/app`));
    assert.equal(sh('readlink /opt/deckhand/current').out.trim(), VERSION);
    assert.match(sh('readlink -f /proc/$(systemctl show -p MainPID --value deckhand-agent)/exe').out, new RegExp(`^/opt/deckhand/${VERSION.replaceAll('.', '\\.')}/node/bin/node`));
    assert.match(r.out, /letting deckhand deploy in \/srv\/app/);
    assert.equal(sh('stat -c "%G %a" /srv/app/.env').out.trim().split(' ')[0], 'deckhand');
    assert.doesNotMatch(sh('find /srv/app /etc/deckhand -perm -o+w').out, /./, 'nothing world-writable');
  });

  it('the printed host add line works from outside with the printed fingerprint; status shows the release and its runtime', () => {
    const args = printed.line.split(' ').slice(1); // drop "deckhand"
    const added = cli(...args);
    assert.equal(added.code, 0, added.err);
    const st = cli('status', '-H', 'e2e-server', '--json');
    assert.equal(st.code, 0, st.err);
    const status = JSON.parse(st.out) as { agent: { version: string; runtime?: string } };
    assert.equal(status.agent.version, VERSION);
    assert.match(status.agent.runtime ?? '', /^v24\./, 'the runtime the release ships');
  });

  it('deploys the --stack project as the deckhand user', async () => {
    // A 3 s watch window instead of the default 2 minutes, so the deploy's
    // end comes quickly; the agent restarted to read it.
    assert.equal(sh(`sed -i 's|^  dir: /srv/app$|  dir: /srv/app\\n  deploy:\\n    watch: 3s|' /etc/deckhand/agent.yaml && systemctl restart deckhand-agent`).code, 0);
    await waitFor(() => /200 OK/.test(sh('curl -si http://127.0.0.1:7070/readyz').out), 30_000, () => 'not ready after the restart');
    const r = cli('deploy', '-H', 'e2e-server', '--set', 'GREETING=from-e2e', '--json');
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(sh('cat /srv/app/.env').out, /^GREETING=from-e2e$/m);
    const id = execFileSync('docker', ['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=web'], { encoding: 'utf8' }).trim();
    assert.ok(id, 'web runs');
    assert.match(execFileSync('docker', ['inspect', '-f', '{{json .Config.Env}}', id], { encoding: 'utf8' }), /"GREETING=from-e2e"/);
  });

  it('kill -9 of the agent: systemd starts it again within 5 s', async () => {
    const old = unit('MainPID');
    sh(`kill -9 ${old}`);
    const { ms } = await restartedFrom(old, 10_000);
    assert.ok(ms <= 5000, `restarted after ${ms} ms`);
  });

  it('a hung agent (SIGSTOP): the watchdog has systemd restart it', async () => {
    await waitFor(() => unit('ActiveState') === 'active', 30_000, () => 'not active');
    const old = unit('MainPID');
    sh(`kill -STOP ${old}`);
    const { ms } = await restartedFrom(old, 60_000);
    assert.ok(ms >= 15_000, `restarted after ${ms} ms: before the watchdog could have fired?`);
    assert.match(sh('journalctl -u deckhand-agent --no-pager').out, /Watchdog timeout/);
  });

  it('a second install upgrades in place and keeps config, data and the token', () => {
    const before = sh('md5sum /etc/deckhand/agent.yaml').out;
    const r = install('--from', `/rel/deckhand-${VERSION}-linux-x64.tar.gz`);
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(r.out, /tokens exist: keeping them/);
    assert.doesNotMatch(r.out, /creating the first admin token/);
    assert.equal(sh('md5sum /etc/deckhand/agent.yaml').out, before, 'config untouched');
    assert.equal(cli('status', '-H', 'e2e-server').code, 0, 'the first token still works');
  });

  it('another version, then --version back to the one before', () => {
    let r = install('--from', `/rel/deckhand-${PREVIOUS}-linux-x64.tar.gz`);
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.equal(sh('readlink /opt/deckhand/current').out.trim(), PREVIOUS);
    assert.match(sh('readlink -f /proc/$(systemctl show -p MainPID --value deckhand-agent)/exe').out, new RegExp(`^/opt/deckhand/${PREVIOUS}/`));
    r = install('--version', VERSION);
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(r.out, new RegExp(`switching to the installed version ${VERSION.replaceAll('.', '\\.')}`));
    assert.equal(sh('readlink /opt/deckhand/current').out.trim(), VERSION);
    assert.match(sh('readlink -f /proc/$(systemctl show -p MainPID --value deckhand-agent)/exe').out, new RegExp(`^/opt/deckhand/${VERSION.replaceAll('.', '\\.')}/`));
    assert.deepEqual(sh('ls /opt/deckhand').out.trim().split('\n').sort(), ['current', 'previous', PREVIOUS, VERSION].sort());
    assert.equal(cli('status', '-H', 'e2e-server').code, 0);
  });

  it('fails clearly: a busy port, a non-root user, another distribution', () => {
    assert.equal(sh('systemctl stop deckhand-agent').code, 0);
    // Something else on the API port.
    sh(`setsid /opt/deckhand/current/node/bin/node -e 'require("net").createServer().listen(7443)' </dev/null >/dev/null 2>&1 &`);
    let r: Run = { code: 0, out: '', err: '' };
    for (let i = 0; i < 50 && !/in use/.test(r.err); i++) r = install('--from', `/rel/deckhand-${VERSION}-linux-x64.tar.gz`);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /port 7443 is already in use/);
    sh(`pkill -f 'listen\\(7443\\)'`);

    r = inside(['bash', '/rel/install.sh', '--from', `/rel/deckhand-${VERSION}-linux-x64.tar.gz`], { user: 'nobody' });
    assert.notEqual(r.code, 0);
    assert.match(r.err, /must run as root/);

    // Another distribution: an os-release of Alpine seen by the installer alone.
    sh(`printf 'ID=alpine\\nVERSION_ID=3.20.0\\n' > /tmp/os-release.alpine`);
    r = sh(`unshare -m sh -c 'mount --bind /tmp/os-release.alpine /etc/os-release && bash /rel/install.sh --from /rel/deckhand-${VERSION}-linux-x64.tar.gz'`);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /unsupported OS: alpine/);
    assert.equal(sh('systemctl start deckhand-agent').code, 0);
  });

  it('--uninstall stops and removes it, and keeps config and data', () => {
    const r = install('--uninstall');
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.notEqual(sh('systemctl is-active deckhand-agent').out.trim(), 'active');
    assert.equal(sh('test -e /opt/deckhand || test -e /etc/systemd/system/deckhand-agent.service || test -e /usr/local/bin/deckhand').code, 1, 'program gone');
    assert.equal(sh('test -f /etc/deckhand/agent.yaml && test -f /etc/deckhand/api.key && test -f /var/lib/deckhand/deckhand.db').code, 0, 'config and data kept');
    assert.match(r.out, /kept \/etc\/deckhand/);
  });
});

