// Time to issue and to renew one certificate against the same Pebble in the
// same run, with deckhand and with the two ACME clients a server would
// otherwise use, Debian bookworm's certbot and lego:
//
//   - one Pebble (test/helpers/pebble.ts) for the whole run, its HTTP-01
//     validation on a free loopback port every client listens on in turn;
//     Pebble's default 5 % badNonce rejection stays on (clients must retry);
//     certificates valid 90 days, as Let's Encrypt's; no reuse of valid
//     authorizations (PEBBLE_AUTHZREUSE=0; Pebble's default reuses half of
//     them), so every renewal validates again, as one 60 days later does;
//   - per round and client, in a fresh directory (so "issue" includes the
//     new ACME account, as on a fresh server): (a) issue a certificate for
//     `bench.test` (ECDSA P-256, deckhand's default), then (b) a forced
//     renewal of that certificate (a new key and a new certificate);
//   - wall time around each process (spawn → exit), and its peak RSS
//     (VmHWM in /proc/PID/status, read every 10 ms: the last reading before
//     the exit, so at most 10 ms of the end is missed);
//   - a run counts only if the process exited 0 and the certificate file is
//     there, parses (node:crypto X509Certificate), names bench.test, has a
//     P-256 key, and (renewal) has another serial than the issued one. A
//     failed attempt is listed, not counted, and tried again (at most 5 in all).
//   - the order of the clients rotates each round; one warm-up round first
//     (not counted: page cache, Python byte code).
//
//   node --import tsx test/bench/cert-issue.ts [--rounds 3] [--no-warmup] [--name bench.test] [--authz-reuse 0]
//
// Needs: root (scripts/test-env.sh pebble-certs installs Pebble), the Debian
// packages certbot and lego (scripts/test-env.sh installs them).
//
// deckhand is measured by measureDeckhand() below, the same way, plus the
// agent's RSS around a renewal.
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, removeDir, startAgent, tempDir, type AgentProcess } from '../helpers/agent.js';
import { connect, createToken, makeCert, streamed, type RpcClient } from '../helpers/api.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';
import { cleanupRegistry, flagOption, goalLine, goalMet, machineInfo, memory, option, printMachine, printResult, ProcessSampler, round, sleep } from './lib.js';

const ROUNDS = numberArg('rounds', 3);
const WARMUP = !flagOption('no-warmup');
const NAME = option('name') || 'bench.test';
const EMAIL = 'ops@example.com';
/** Percentage of valid authorizations Pebble reuses for a new order (its own default: 50). */
const AUTHZ_REUSE = percentArg('authz-reuse', 0);
const VALIDITY_SECONDS = 90 * 24 * 3600;
const MAX_ATTEMPTS = 5;
const HWM_EVERY_MS = 10;
/** The issue's goal: deckhand no slower than the faster of the references (median against median). */
const GOAL_RATIO = 1.0;
/** "Agent RSS back to idle within a minute after": 60 s after the last renewal, within this of the idle reading. */
const GOAL_RSS_BACK_MB = 5;

const { cleanups, cleanup } = cleanupRegistry();

function numberArg(name: string, fallback: number): number {
  const v = option(name);
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} wants a positive whole number, got ${JSON.stringify(v)}`);
  return n;
}

function percentArg(name: string, fallback: number): number {
  const v = option(name);
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 100) throw new Error(`--${name} wants a percentage 0-100, got ${JSON.stringify(v)}`);
  return n;
}

// ------------------------------------------------------------ result shapes --

/** What one client's rounds give: the same shape for every client, deckhand included. */
interface Measured<E> {
  /** Wall ms of each counted issue (fresh state: account + order + certificate). */
  issueMs: number[];
  /** Wall ms of each counted forced renewal of the certificate just issued. */
  renewMs: number[];
  extra: E;
}

interface FailedAttempt {
  round: number;
  step: 'issue' | 'renew';
  ms: number;
  reason: string;
}

interface ReferenceExtra {
  version: string;
  /** Peak RSS of the client process, per counted run. */
  issuePeakRssMb: number[];
  renewPeakRssMb: number[];
  failedAttempts: FailedAttempt[];
}

/** What the deckhand measurement adds: the agent's RSS around the certificate work. */
interface DeckhandExtra {
  /** The agent settled, its certificate in place and not due. */
  rssIdleMb: number;
  /** Highest during the issues and renewals. */
  rssPeakMb: number;
  /** 60 s after the last renewal ended. */
  rssAfter60sMb: number;
  /** Peak RSS of the order process (the agent's short-lived child), per counted round. */
  orderPeakRssMb: number[];
  failedAttempts: FailedAttempt[];
}

// ------------------------------------------------------------ running tools --

interface RunResult {
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last 4,000 characters of stdout and stderr together. */
  output: string;
  peakRssKb: number;
}

const running = new Set<ReturnType<typeof spawn>>();
cleanups.push(() => {
  for (const c of running) c.kill('SIGKILL');
});

function vmHwmKb(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0; // gone already
  }
}

/** Environment of a client: this one's, without proxies (everything is on loopback), plus `extra`. */
function clientEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const k of Object.keys(env)) if (/^(https?|all|no)_proxy$/i.test(k)) delete env[k];
  return env;
}

function run(bin: string, args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let output = '';
    const take = (c: Buffer) => (output = (output + c.toString('utf8')).slice(-4000));
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    let peak = 0;
    const poll = setInterval(() => {
      if (child.pid !== undefined) peak = Math.max(peak, vmHwmKb(child.pid));
    }, HWM_EVERY_MS);
    child.on('error', (err) => {
      clearInterval(poll);
      running.delete(child);
      reject(err);
    });
    child.on('exit', (code, signal) => {
      const ms = performance.now() - t0;
      clearInterval(poll);
      running.delete(child);
      // 'exit' may come before the pipes are drained: wait for 'close' for the output.
      child.once('close', () => resolve({ ms, code, signal, output, peakRssKb: peak }));
    });
  });
}

/** Why the certificate at `file` is not what was asked for, or undefined when it is. Returns its serial too. */
function checkCertificate(file: string, name: string, notSerial?: string): { problem?: string; serial?: string } {
  if (!existsSync(file)) return { problem: `no certificate at ${file}` };
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(file));
  } catch (err) {
    return { problem: `certificate does not parse: ${(err as Error).message}` };
  }
  const sans = (cert.subjectAltName ?? '').split(',').map((s) => s.trim());
  if (!sans.includes(`DNS:${name}`)) return { problem: `SAN is ${cert.subjectAltName ?? 'missing'}, not DNS:${name}`, serial: cert.serialNumber };
  const details = cert.publicKey.asymmetricKeyDetails;
  if (cert.publicKey.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'prime256v1') {
    return { problem: `key is ${cert.publicKey.asymmetricKeyType} ${details?.namedCurve ?? ''}, not EC P-256`, serial: cert.serialNumber };
  }
  const now = Date.now();
  if (Date.parse(cert.validFrom) > now + 60_000 || Date.parse(cert.validTo) < now) return { problem: `not valid now: ${cert.validFrom} – ${cert.validTo}`, serial: cert.serialNumber };
  if (notSerial !== undefined && cert.serialNumber === notSerial) return { problem: `serial ${cert.serialNumber} is the issued certificate's: not renewed`, serial: cert.serialNumber };
  return { serial: cert.serialNumber };
}

// -------------------------------------------------------------- the clients --

interface Step {
  bin: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** The certificate file the step writes (the leaf first). */
  certFile: string;
}

interface Reference {
  name: string;
  /** Debian package (for its version). */
  pkg: string;
  issue(dir: string): Step;
  renew(dir: string): Step;
  /** A run that only starts the program and prints its version: the floor under both figures. */
  startup: string[];
}

function references(pebble: Pebble): Reference[] {
  const port = String(pebble.httpPort);
  const certbotCommon = (dir: string) => [
    '--config-dir', join(dir, 'config'),
    '--work-dir', join(dir, 'work'),
    '--logs-dir', join(dir, 'logs'),
    '--non-interactive',
    '--standalone',
    '--http-01-port', port,
    '--http-01-address', '127.0.0.1',
    '--server', pebble.directoryUrl,
  ];
  const certbotEnv = clientEnv({ REQUESTS_CA_BUNDLE: pebble.caBundlePath });
  const certbot: Reference = {
    name: 'certbot',
    pkg: 'certbot',
    issue: (dir) => ({
      bin: 'certbot',
      args: ['certonly', ...certbotCommon(dir), '--agree-tos', '-m', EMAIL, '--no-eff-email', '--key-type', 'ecdsa', '--elliptic-curve', 'secp256r1', '-d', NAME],
      env: certbotEnv,
      certFile: join(dir, 'config/live', NAME, 'cert.pem'),
    }),
    // `renew` as its timer runs it, forced; without --no-random-sleep-on-renew
    // it would first sleep up to 8 minutes (stdin is not a terminal).
    renew: (dir) => ({
      bin: 'certbot',
      args: ['renew', ...certbotCommon(dir), '--cert-name', NAME, '--force-renewal', '--no-random-sleep-on-renew'],
      env: certbotEnv,
      certFile: join(dir, 'config/live', NAME, 'cert.pem'),
    }),
    startup: ['certbot', '--version'],
  };

  // lego solves HTTP-01 without DNS lookups of its own; should it ever make
  // one, it asks challtestsrv (every name is 127.0.0.1), never the system's.
  const legoCommon = (dir: string) => [
    '--server', pebble.directoryUrl,
    '--email', EMAIL,
    '--accept-tos',
    '--http',
    '--http.port', `127.0.0.1:${port}`,
    '--dns.resolvers', pebble.challtestsrv.dnsAddress,
    '--domains', NAME,
    '--path', dir,
    '--key-type', 'ec256',
  ];
  const legoEnv = clientEnv({ LEGO_CA_CERTIFICATES: pebble.caBundlePath });
  const lego: Reference = {
    name: 'lego',
    pkg: 'lego',
    issue: (dir) => ({ bin: 'lego', args: [...legoCommon(dir), 'run'], env: legoEnv, certFile: join(dir, 'certificates', `${NAME}.crt`) }),
    // lego 4.9.1 has no --force: it renews when at most --days days are left,
    // and the certificate has 90 (less a moment). --no-random-sleep: otherwise
    // it may sleep up to 8 minutes first when stdout is not a terminal.
    renew: (dir) => ({ bin: 'lego', args: [...legoCommon(dir), 'renew', '--days', '365', '--no-random-sleep'], env: legoEnv, certFile: join(dir, 'certificates', `${NAME}.crt`) }),
    startup: ['lego', '--version'],
  };
  return [certbot, lego];
}

function packageVersion(pkg: string): string {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`Debian package ${pkg} is not installed (scripts/test-env.sh up installs it)`);
  }
}

interface Attempted {
  run: RunResult;
  serial: string;
}

/** Runs `step` until it succeeds, at most MAX_ATTEMPTS times; `fresh` gives the step for each attempt. */
async function attempt(fresh: () => Step, what: { round: number; step: 'issue' | 'renew'; tool: string }, failures: FailedAttempt[], notSerial?: string): Promise<Attempted> {
  for (let i = 1; ; i++) {
    const step = fresh();
    const r = await run(step.bin, step.args, step.env);
    let reason: string | undefined;
    let serial: string | undefined;
    if (r.code !== 0) reason = `exit ${r.code ?? r.signal}: ${r.output.trim().split('\n').slice(-6).join(' | ')}`;
    else {
      const c = checkCertificate(step.certFile, NAME, notSerial);
      reason = c.problem;
      serial = c.serial;
    }
    if (reason === undefined && serial !== undefined) return { run: r, serial };
    failures.push({ round: what.round, step: what.step, ms: Math.round(r.ms), reason: reason ?? 'no serial' });
    console.log(`  ${what.tool} ${what.step} (round ${what.round}, attempt ${i}) FAILED after ${round(r.ms / 1000, 2)} s, not counted: ${reason}`);
    if (i >= MAX_ATTEMPTS) throw new Error(`${what.tool} ${what.step} failed ${MAX_ATTEMPTS} times; last: ${reason}`);
  }
}

/** One issue and one renewal with `ref` in a fresh directory. Round 0 is the warm-up. */
async function oneRound(ref: Reference, roundNo: number, failures: FailedAttempt[]): Promise<{ issue: RunResult; renew: RunResult }> {
  let dir = '';
  const freshDir = () => {
    if (dir) removeDir(dir);
    dir = tempDir(`cert-${ref.name}`);
    return dir;
  };
  try {
    const issued = await attempt(() => ref.issue(freshDir()), { round: roundNo, step: 'issue', tool: ref.name }, failures);
    const renewed = await attempt(() => ref.renew(dir), { round: roundNo, step: 'renew', tool: ref.name }, failures, issued.serial);
    return { issue: issued.run, renew: renewed.run };
  } finally {
    if (dir) removeDir(dir);
  }
}

// ---------------------------------------------------------------- deckhand --

/**
 * deckhand against the same `pebble`, measured as the references are:
 *   - per round (one warm-up round first, not counted, unless --no-warmup),
 *     an agent with a fresh data directory (new ACME account, no
 *     certificate), directory `pebble.directoryUrl`, trusting
 *     `pebble.caBundlePath`, its HTTP-01 responder on 127.0.0.1:`pebble.httpPort`,
 *     one certificate for NAME with its default key (ECDSA P-256); the agent
 *     runs as the unprivileged user, as the unit runs it;
 *   - issueMs: from spawning the agent (so its start-up counts, as the
 *     references' does) to the certificate at its stable path passing
 *     checkCertificate(); renewMs: `cert.renew {force: true}` over the API,
 *     from the call to the stream's end, the new certificate checked with the
 *     issued serial as `notSerial`; a failed attempt is listed, not counted,
 *     and tried again (the round again, at most MAX_ATTEMPTS);
 *   - the peak RSS of the order process (the agent runs each order in a
 *     short-lived child, so acme-client never loads into the agent itself);
 *   - then the agent's RSS around one more forced renewal, on the last
 *     round's data directory with the agent started again (the certificate
 *     is there and not due, so nothing is ordered at start): idle (settled
 *     15 s, median of 5 readings 1 s apart), peak during the renewal
 *     (100 ms samples), and 60 s after it ended.
 */
interface DeckhandRun {
  dir: string;
  agent: AgentProcess;
}

const SETTLE_MS = 15_000;
const AFTER_MS = 60_000;
const CERT_NAME = 'bench';

/** Every descendant PID of `pid` (the order process is the agent's child). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const t of tasks) {
      let kids = '';
      try {
        kids = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const k of kids.split(' ').filter(Boolean).map(Number)) {
        out.push(k);
        walk(k);
      }
    }
  };
  walk(pid);
  return out;
}

/** Samples the highest VmHWM of the agent's child processes every HWM_EVERY_MS until stopped. */
function childPeakSampler(agentPid: number): { stop(): number } {
  let peak = 0;
  const t = setInterval(() => {
    for (const k of descendants(agentPid)) peak = Math.max(peak, vmHwmKb(k));
  }, HWM_EVERY_MS);
  return {
    stop() {
      clearInterval(t);
      return peak;
    },
  };
}

async function startDeckhand(pebble: Pebble, dir: string): Promise<DeckhandRun> {
  if (!existsSync(join(dir, 'pebble-ca.pem'))) copyFileSync(pebble.caBundlePath, join(dir, 'pebble-ca.pem'));
  const tls = existsSync(join(dir, 'api.crt')) ? { cert: join(dir, 'api.crt'), key: join(dir, 'api.key') } : makeCert(dir, 'api');
  const apiPort = await freePort();
  const agent = await startAgent({
    dir,
    // info, as on a server (the tests' default is debug)
    env: { DECKHAND_LOG_LEVEL: 'info' },
    config: {
      metrics: { interval: '10s' },
      api: { listen: `127.0.0.1:${apiPort}`, tls: { cert: tls.cert, key: tls.key } },
      certs: {
        email: EMAIL,
        directory: pebble.directoryUrl,
        caBundle: join(dir, 'pebble-ca.pem'),
        challenge: { type: 'http-01', listen: `127.0.0.1:${pebble.httpPort}` },
        certificates: [{ name: CERT_NAME, domains: [NAME] }],
      },
    },
  });
  cleanups.push(() => agent.stop('SIGKILL').then(() => undefined));
  return { dir, agent };
}

async function apiClient(r: DeckhandRun): Promise<RpcClient> {
  await r.agent.waitReady(60_000);
  const cfg = readFileSync(r.agent.configFile, 'utf8');
  const listen = /listen: (127\.0\.0\.1:\d+)/.exec(cfg.slice(cfg.indexOf('api:')))![1];
  return connect(`wss://${listen}/v1`, createToken(r.agent.configFile, `bench${Date.now()}`, 'operate', r.agent.user));
}

const stablePath = (r: DeckhandRun) => join(r.agent.dataDir, 'certs', CERT_NAME, 'cert.pem');

/** A forced renewal over the API: wall ms from the call to the stream's end, the new certificate checked. */
async function forcedRenewal(r: DeckhandRun, c: RpcClient, notSerial: string): Promise<{ ms: number; serial?: string; problem?: string }> {
  const t0 = performance.now();
  let end: { ok?: boolean; error?: string };
  try {
    end = (await streamed(c, 'cert.renew', { name: CERT_NAME, force: true }, 120_000)).end;
  } catch (err) {
    return { ms: performance.now() - t0, problem: (err as Error).message };
  }
  const ms = performance.now() - t0;
  if (!end.ok) return { ms, problem: `renewal failed: ${end.error ?? 'no reason'}` };
  const checked = checkCertificate(stablePath(r), NAME, notSerial);
  return { ms, ...checked };
}

/** One round: a fresh agent issues, then renews. Undefined (and the failure listed) when a step failed. */
async function deckhandRound(pebble: Pebble, roundNo: number, failures: FailedAttempt[]): Promise<{ issueMs: number; renewMs: number; orderPeakKb: number; dir: string } | undefined> {
  const dir = tempDir('cert-deckhand');
  let run: DeckhandRun | undefined;
  let c: RpcClient | undefined;
  let keep = false;
  try {
    const t0 = performance.now();
    run = await startDeckhand(pebble, dir);
    const peak = childPeakSampler(run.agent.child.pid!);
    const deadline = t0 + 120_000;
    let issued: { problem?: string; serial?: string } = { problem: 'not issued' };
    for (;;) {
      issued = checkCertificate(stablePath(run), NAME);
      if (!issued.problem) break;
      if (/certificate order failed/.test(run.agent.output) || performance.now() > deadline || run.agent.child.exitCode !== null) break;
      await sleep(20);
    }
    const issueMs = performance.now() - t0;
    if (issued.problem) {
      peak.stop();
      const why = /"err":"([^"]*)"/.exec(run.agent.output)?.[1] ?? issued.problem;
      failures.push({ round: roundNo, step: 'issue', ms: round(issueMs, 0), reason: why });
      return undefined;
    }
    c = await apiClient(run);
    const renewed = await forcedRenewal(run, c, issued.serial!);
    const orderPeakKb = peak.stop();
    if (renewed.problem) {
      failures.push({ round: roundNo, step: 'renew', ms: round(renewed.ms, 0), reason: renewed.problem });
      return undefined;
    }
    keep = true;
    return { issueMs, renewMs: renewed.ms, orderPeakKb, dir };
  } finally {
    c?.close();
    await run?.agent.stop();
    if (!keep) removeDir(dir);
  }
}

async function measureDeckhand(pebble: Pebble, rounds: number): Promise<Measured<DeckhandExtra> | null> {
  const m: Measured<DeckhandExtra> = { issueMs: [], renewMs: [], extra: { rssIdleMb: 0, rssPeakMb: 0, rssAfter60sMb: 0, orderPeakRssMb: [], failedAttempts: [] } };
  let lastDir: string | undefined;
  const one = async (roundNo: number) => {
    for (let k = 0; k < MAX_ATTEMPTS; k++) {
      const got = await deckhandRound(pebble, roundNo, m.extra.failedAttempts);
      if (got) return got;
    }
    throw new Error(`deckhand: round ${roundNo} failed ${MAX_ATTEMPTS} times: ${JSON.stringify(m.extra.failedAttempts.slice(-3))}`);
  };
  if (WARMUP) {
    const w = await one(0);
    removeDir(w.dir);
    console.log(`deckhand warm-up (not counted): issue ${s(w.issueMs)} s, renew ${s(w.renewMs)} s`);
  }
  for (let i = 1; i <= rounds; i++) {
    const got = await one(i);
    m.issueMs.push(got.issueMs);
    m.renewMs.push(got.renewMs);
    m.extra.orderPeakRssMb.push(kbToMb(got.orderPeakKb));
    if (lastDir) removeDir(lastDir);
    lastDir = got.dir;
    console.log(`deckhand round ${i}: issue ${s(got.issueMs)} s, renew ${s(got.renewMs)} s (order process peak RSS ${kbToMb(got.orderPeakKb)} MB)`);
  }

  // The agent's own RSS around a renewal, started again on the last round's data.
  const r = await startDeckhand(pebble, lastDir!);
  const c = await apiClient(r);
  try {
    const pid = r.agent.child.pid!;
    await sleep(SETTLE_MS);
    const idle: number[] = [];
    for (let k = 0; k < 5; k++) {
      idle.push(memory(pid).rssKb);
      await sleep(1000);
    }
    const sampler = new ProcessSampler(pid, 100);
    sampler.start();
    const before = checkCertificate(stablePath(r), NAME);
    const renewed = await forcedRenewal(r, c, before.serial!);
    sampler.stop();
    if (renewed.problem) throw new Error(`deckhand: the renewal for the RSS reading failed: ${renewed.problem}`);
    await sleep(AFTER_MS);
    m.extra.rssIdleMb = kbToMb(median(idle));
    m.extra.rssPeakMb = sampler.summary().rssMaxMb;
    m.extra.rssAfter60sMb = kbToMb(memory(pid).rssKb);
  } finally {
    c.close();
    await r.agent.stop();
    removeDir(lastDir!);
  }
  return m;
}

// -------------------------------------------------------------------- main --

const median = (xs: readonly number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};
const min = (xs: readonly number[]) => (xs.length ? Math.min(...xs) : Number.NaN);
const s = (ms: number) => round(ms / 1000, 2);
const kbToMb = (kb: number) => round(kb / 1024, 1);
/** The 1-minute load average: other work on the machine shows in these timings. */
const loadAverage = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

async function main(): Promise<void> {
  const machine = machineInfo();
  printMachine(machine);

  const httpPort = await freePort();
  const pebble = await startPebble({ httpPort, validitySeconds: VALIDITY_SECONDS, authzReuse: AUTHZ_REUSE });
  cleanups.push(() => pebble.stop());
  const refs = references(pebble);
  const versions = Object.fromEntries(refs.map((r) => [r.name, packageVersion(r.pkg)]));
  console.log(`pebble ${pebble.version} at ${pebble.directoryUrl}, HTTP-01 on 127.0.0.1:${httpPort}, certificates valid ${VALIDITY_SECONDS / 86400} days, authorization reuse ${AUTHZ_REUSE} %, badNonce rejection at Pebble's default (5 %)`);
  console.log(`references: ${refs.map((r) => `${r.name} ${versions[r.name]}`).join(', ')}; name ${NAME}, ECDSA P-256; ${ROUNDS} rounds${WARMUP ? ' after one warm-up round' : ''}`);

  const load0 = loadAverage();
  const startupMs: Record<string, number> = {};
  for (const r of refs) {
    const times: number[] = [];
    for (let k = 0; k < 5; k++) {
      const got = await run(r.startup[0]!, r.startup.slice(1), clientEnv({}));
      if (got.code !== 0) throw new Error(`${r.startup.join(' ')}: exit ${got.code ?? got.signal}: ${got.output}`);
      times.push(got.ms);
    }
    startupMs[r.name] = round(median(times.slice(1)), 0); // the first fills the page cache
  }
  console.log(`start-up alone (\`--version\`, median of 4 after one): ${refs.map((r) => `${r.name} ${startupMs[r.name]} ms`).join(', ')}`);

  const results = new Map<string, Measured<ReferenceExtra>>();
  for (const r of refs) results.set(r.name, { issueMs: [], renewMs: [], extra: { version: versions[r.name]!, issuePeakRssMb: [], renewPeakRssMb: [], failedAttempts: [] } });

  if (WARMUP) {
    const warmFailures: FailedAttempt[] = [];
    const line: string[] = [];
    for (const r of refs) {
      const w = await oneRound(r, 0, warmFailures);
      line.push(`${r.name} issue ${s(w.issue.ms)} s, renew ${s(w.renew.ms)} s`);
    }
    console.log(`warm-up (not counted): ${line.join('; ')}`);
  }

  for (let i = 1; i <= ROUNDS; i++) {
    const order = refs.map((_, k) => refs[(k + i - 1) % refs.length]!);
    const line: string[] = [];
    for (const r of order) {
      const m = results.get(r.name)!;
      const got = await oneRound(r, i, m.extra.failedAttempts);
      m.issueMs.push(got.issue.ms);
      m.renewMs.push(got.renew.ms);
      m.extra.issuePeakRssMb.push(kbToMb(got.issue.peakRssKb));
      m.extra.renewPeakRssMb.push(kbToMb(got.renew.peakRssKb));
      line.push(`${r.name} issue ${s(got.issue.ms)} s (peak RSS ${kbToMb(got.issue.peakRssKb)} MB), renew ${s(got.renew.ms)} s (${kbToMb(got.renew.peakRssKb)} MB)`);
    }
    console.log(`round ${i}: ${line.join('; ')}`);
  }

  const deckhand = await measureDeckhand(pebble, ROUNDS);
  const load1 = loadAverage();

  // The faster reference: the lower median, for issue and for renew apart.
  const fasterOf = (pick: (m: Measured<ReferenceExtra>) => number[]) => {
    let best = { tool: '', ms: Number.POSITIVE_INFINITY };
    for (const [tool, m] of results) {
      const med = median(pick(m));
      if (med < best.ms) best = { tool, ms: med };
    }
    return best;
  };
  const fasterIssue = fasterOf((m) => m.issueMs);
  const fasterRenew = fasterOf((m) => m.renewMs);

  console.log('');
  console.log(`${ROUNDS} rounds each, order rotating; seconds, median (min); peak RSS of the client process, median`);
  const header = `${'client'.padEnd(22)} ${'issue'.padStart(16)} ${'renew'.padStart(16)} ${'peak RSS'.padStart(18)}`;
  console.log(header);
  const cell = (xs: number[]) => `${s(median(xs)).toFixed(2)} (${s(min(xs)).toFixed(2)})`.padStart(16);
  for (const [tool, m] of results) {
    const rss = `${median(m.extra.issuePeakRssMb)} / ${median(m.extra.renewPeakRssMb)} MB`;
    console.log(`${`${tool} ${m.extra.version}`.padEnd(22)} ${cell(m.issueMs)} ${cell(m.renewMs)} ${rss.padStart(18)}`);
  }
  const failed = [...results.values()].reduce((n, m) => n + m.extra.failedAttempts.length, 0);
  if (failed) console.log(`failed attempts (not counted, tried again): ${[...results].map(([t, m]) => `${t} ${m.extra.failedAttempts.length}`).join(', ')}`);
  console.log(`load average (1 min) ${load0} at the start, ${load1} at the end`);
  console.log(`faster reference: issue ${fasterIssue.tool} ${s(fasterIssue.ms)} s, renew ${fasterRenew.tool} ${s(fasterRenew.ms)} s`);

  let deckhandResult: Record<string, unknown> | null = null;
  if (deckhand) {
    console.log(`${'deckhand'.padEnd(22)} ${cell(deckhand.issueMs)} ${cell(deckhand.renewMs)} ${`agent ${deckhand.extra.rssPeakMb} MB`.padStart(18)}`);
    const issueRatio = round(median(deckhand.issueMs) / fasterIssue.ms, 3);
    const renewRatio = round(median(deckhand.renewMs) / fasterRenew.ms, 3);
    const rssBack = round(deckhand.extra.rssAfter60sMb - deckhand.extra.rssIdleMb, 1);
    console.log(`agent RSS: idle ${deckhand.extra.rssIdleMb} MB, peak ${deckhand.extra.rssPeakMb} MB, 60 s after ${deckhand.extra.rssAfter60sMb} MB; order process peak RSS ${median(deckhand.extra.orderPeakRssMb)} MB (median)`);
    if (deckhand.extra.failedAttempts.length) console.log(`deckhand failed attempts (not counted, tried again): ${deckhand.extra.failedAttempts.length}: ${JSON.stringify(deckhand.extra.failedAttempts)}`);
    console.log(goalLine(`issue: deckhand / ${fasterIssue.tool}`, issueRatio, 'x', { max: GOAL_RATIO }));
    console.log(goalLine(`renew: deckhand / ${fasterRenew.tool}`, renewRatio, 'x', { max: GOAL_RATIO }));
    console.log(goalLine('agent RSS 60 s after - idle', rssBack, 'MB', { max: GOAL_RSS_BACK_MB }));
    deckhandResult = {
      issueMs: deckhand.issueMs.map((x) => round(x, 0)),
      renewMs: deckhand.renewMs.map((x) => round(x, 0)),
      medianIssueMs: round(median(deckhand.issueMs), 0),
      medianRenewMs: round(median(deckhand.renewMs), 0),
      ...deckhand.extra,
      issueRatio,
      renewRatio,
      goal: {
        maxRatio: GOAL_RATIO,
        issueMet: goalMet(issueRatio, { max: GOAL_RATIO }),
        renewMet: goalMet(renewRatio, { max: GOAL_RATIO }),
        maxRssBackMb: GOAL_RSS_BACK_MB,
        rssMet: goalMet(rssBack, { max: GOAL_RSS_BACK_MB }),
      },
    };
  }

  printResult('cert-issue', {
    machine,
    pebble: pebble.version,
    name: NAME,
    rounds: ROUNDS,
    warmup: WARMUP,
    validitySeconds: VALIDITY_SECONDS,
    authzReusePercent: AUTHZ_REUSE,
    loadAverage: { start: load0, end: load1 },
    startupMs,
    references: Object.fromEntries(
      [...results].map(([tool, m]) => [
        tool,
        {
          version: m.extra.version,
          issueMs: m.issueMs.map((x) => round(x, 0)),
          renewMs: m.renewMs.map((x) => round(x, 0)),
          medianIssueMs: round(median(m.issueMs), 0),
          medianRenewMs: round(median(m.renewMs), 0),
          minIssueMs: round(min(m.issueMs), 0),
          minRenewMs: round(min(m.renewMs), 0),
          issuePeakRssMb: m.extra.issuePeakRssMb,
          renewPeakRssMb: m.extra.renewPeakRssMb,
          failedAttempts: m.extra.failedAttempts,
        },
      ]),
    ),
    faster: { issue: { tool: fasterIssue.tool, medianMs: round(fasterIssue.ms, 0) }, renew: { tool: fasterRenew.tool, medianMs: round(fasterRenew.ms, 0) } },
    deckhand: deckhandResult,
  });
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await cleanup();
}
