// A Pebble (ACME test CA) of a test file's own, with a pebble-challtestsrv as
// its DNS server, both on free loopback ports: the binaries and the TLS
// certificates of Pebble's HTTPS endpoint come from `scripts/test-env.sh
// pebble-certs` (Debian trixie's Pebble, which serves ACME Renewal
// Information). Every name resolves to 127.0.0.1, so HTTP-01 validation goes
// to `httpPort` on loopback and nothing leaves the machine.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { freePort, ROOT, tempDir } from './agent.js';

export interface PebbleOptions {
  /** Lifetime of issued certificates, in seconds (Pebble's default: 5 years). */
  validitySeconds?: number;
  /** Where Pebble validates HTTP-01: the port of the agent's responder (default: a free one). */
  httpPort?: number;
  /** Percentage of good nonces Pebble rejects as badNonce (unset: Pebble's default, 5). */
  nonceReject?: number;
  /** Percentage of orders that reuse a valid authorization (Pebble's PEBBLE_AUTHZREUSE); default 0. */
  authzReuse?: number;
  /**
   * Debian bookworm's Pebble (2.4) instead: a CA whose directory has no
   * renewalInfo, as many CAs still have, so the lifetime rule plans renewals.
   */
  withoutAri?: boolean;
}

export interface RenewalWindow {
  start: Date | string;
  end: Date | string;
}

export interface ChallTestSrv {
  /** The DNS server Pebble asks (`host:port`). */
  dnsAddress: string;
  managementUrl: string;
  /** Serves a TXT record for NAME (a trailing dot is added when missing). */
  addTxt(name: string, value: string): Promise<void>;
  clearTxt(name: string): Promise<void>;
}

export interface Pebble {
  /** Debian package version of the binary, e.g. "2.6.0+ds1-1+b7". */
  version: string;
  directoryUrl: string;
  managementUrl: string;
  /** CA of Pebble's own HTTPS endpoints (ACME and management); not the issuer of its certificates. */
  caBundlePath: string;
  caBundle: string;
  httpPort: number;
  tlsPort: number;
  challtestsrv: ChallTestSrv;
  /** Where Pebble's and challtestsrv's output go. */
  logDir: string;
  /** The ACME directory as Pebble serves it. */
  directory(): Promise<Record<string, unknown>>;
  /** PEM of the root that signs this run's certificates (GET /roots/0 on management); new at every (re)start. */
  issuerRoots(): Promise<string>;
  /**
   * Whether the management API has /set-renewal-info/ (Pebble 2.8 and later;
   * Debian trixie's 2.6 serves renewalInfo but cannot be told a window).
   */
  canSetRenewalInfo: boolean;
  /** Makes renewalInfo answer WINDOW for CERT (PEM; Pebble looks it up by serial). */
  setRenewalInfo(certPem: string, window: RenewalWindow): Promise<void>;
  /** GET of an HTTPS URL of Pebble's, trusting its CA: status, headers and body. */
  get(url: string): Promise<HttpResult>;
  /** Stops Pebble and challtestsrv (the CA is "down" until restart()); the temp dir goes when the process exits. */
  stop(): Promise<void>;
  /** Starts Pebble again on the same ports (and challtestsrv if stopped). Pebble keeps no state: accounts, orders and roots are new. */
  restart(): Promise<void>;
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

interface Paths {
  PEBBLE: string;
  PEBBLE_WITHOUT_ARI: string;
  PEBBLE_WITHOUT_ARI_VERSION: string;
  CHALLTESTSRV: string;
  /** -dns01 (up to 2.6) or -dnsserver. */
  CHALLTESTSRV_DNS_FLAG: string;
  PEBBLE_VERSION: string;
  TLS_CA: string;
  TLS_CERT: string;
  TLS_KEY: string;
}

let paths: Paths | undefined;

/** Installs Pebble and its TLS certificates if needed (scripts/test-env.sh pebble-certs) and returns their paths. */
export function pebblePaths(): Paths {
  if (paths) return paths;
  const out = execFileSync('bash', [join(ROOT, 'scripts/test-env.sh'), 'pebble-certs'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const kv: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv[line.slice(0, i)] = line.slice(i + 1);
  }
  for (const k of ['PEBBLE', 'PEBBLE_WITHOUT_ARI', 'CHALLTESTSRV', 'CHALLTESTSRV_DNS_FLAG', 'PEBBLE_VERSION', 'TLS_CA', 'TLS_CERT', 'TLS_KEY']) {
    if (!kv[k]) throw new Error(`scripts/test-env.sh pebble-certs printed no ${k}`);
  }
  paths = kv as unknown as Paths;
  return paths;
}

// Every child of every helper in this process, killed when the process exits
// however the tests end.
// Their temporary directories (config, logs) go at the same time.
const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let exitHook = false;
function track(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (!exitHook) {
    exitHook = true;
    const cleanup = () => {
      for (const c of children) c.kill('SIGKILL');
      for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
      tempDirs.clear();
    };
    process.once('exit', cleanup);
    // A test run cut short by a signal ('exit' does not fire then): clean
    // up, then die of the same signal as without this handler.
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        cleanup();
        process.kill(process.pid, sig);
      });
    }
  }
}

function request(url: string, opts: { method?: string; body?: string; ca?: string; timeoutMs?: number } = {}): Promise<HttpResult> {
  const u = new URL(url);
  const fn = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = fn(
      u,
      {
        method: opts.method ?? 'GET',
        ca: opts.ca,
        timeout: opts.timeoutMs ?? 5000,
        // Pebble 2.8 and later refuse requests without a User-Agent.
        headers: {
          'user-agent': 'deckhand-test',
          ...(opts.body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(opts.body)) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function waitUntil(what: string, child: ChildProcess, logFile: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}):\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
    }
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} did not answer in ${timeoutMs} ms:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function spawnLogged(bin: string, args: string[], logFile: string, env: NodeJS.ProcessEnv): ChildProcess {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(bin, args, { stdio: ['ignore', fd, fd], env });
    track(child);
    return child;
  } finally {
    closeSync(fd);
  }
}

async function kill(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

export async function startPebble(opts: PebbleOptions = {}): Promise<Pebble> {
  const p = pebblePaths();
  const dir = tempDir('pebble');
  const logDir = join(dir, 'logs');
  mkdirSync(logDir);
  const caBundle = readFileSync(p.TLS_CA, 'utf8');
  const [acmePort, mgmtPort, dnsPort, ctsMgmtPort, tlsPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const httpPort = opts.httpPort ?? (await freePort());
  const directoryUrl = `https://127.0.0.1:${acmePort}/dir`;
  const managementUrl = `https://127.0.0.1:${mgmtPort}`;
  const dnsAddress = `127.0.0.1:${dnsPort}`;
  const ctsUrl = `http://127.0.0.1:${ctsMgmtPort}`;

  const config: Record<string, unknown> = {
    listenAddress: `127.0.0.1:${acmePort}`,
    managementListenAddress: `127.0.0.1:${mgmtPort}`,
    certificate: p.TLS_CERT,
    privateKey: p.TLS_KEY,
    httpPort,
    tlsPort,
    ocspResponderURL: '',
    externalAccountBindingRequired: false,
  };
  if (opts.validitySeconds !== undefined) {
    // 2.6 reads the first; later versions the default profile's.
    config.certificateValidityPeriod = opts.validitySeconds;
    config.profiles = { default: { description: 'The default profile', validityPeriod: opts.validitySeconds } };
  }
  const configFile = join(dir, 'pebble-config.json');
  writeFileSync(configFile, JSON.stringify({ pebble: config }, null, 2));

  // AUTHZREUSE 0: every order really validates. Pebble's default reuses a
  // valid authorization half the time, which would let a test of a failing
  // or a particular challenge pass or fail by chance.
  const env: NodeJS.ProcessEnv = { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_AUTHZREUSE: String(opts.authzReuse ?? 0) };
  delete env.PEBBLE_WFE_NONCEREJECT;
  if (opts.nonceReject !== undefined) env.PEBBLE_WFE_NONCEREJECT = String(opts.nonceReject);
  const pebbleLog = join(logDir, 'pebble.log');
  const ctsLog = join(logDir, 'challtestsrv.log');

  let pebbleProc: ChildProcess | undefined;
  let ctsProc: ChildProcess | undefined;

  const startCts = async () => {
    if (ctsProc && ctsProc.exitCode === null && ctsProc.signalCode === null) return;
    // DNS only: its HTTP-01, HTTPS-01, TLS-ALPN-01 and DoH listeners are off;
    // A answers 127.0.0.1, no AAAA, so validation never tries ::1.
    const child = spawnLogged(
      p.CHALLTESTSRV,
      [p.CHALLTESTSRV_DNS_FLAG, dnsAddress, '-http01', '', '-https01', '', '-tlsalpn01', '', '-doh', '', '-management', `127.0.0.1:${ctsMgmtPort}`, '-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''],
      ctsLog,
      env,
    );
    ctsProc = child;
    // Any HTTP answer (404 for GET /) means it listens.
    await waitUntil('pebble-challtestsrv', child, ctsLog, async () => (await request(`${ctsUrl}/`, { timeoutMs: 1000 })).status > 0);
  };
  const startPebbleProc = async () => {
    const child = spawnLogged(opts.withoutAri ? p.PEBBLE_WITHOUT_ARI : p.PEBBLE, ['-config', configFile, '-dnsserver', dnsAddress], pebbleLog, env);
    pebbleProc = child;
    await waitUntil('pebble', child, pebbleLog, async () => (await request(directoryUrl, { ca: caBundle, timeoutMs: 1000 })).status === 200);
  };

  const mgmt = (path: string, body?: string) => request(`${managementUrl}${path}`, { method: body === undefined ? 'GET' : 'POST', body, ca: caBundle });
  const cts = async (path: string, body: unknown) => {
    const res = await request(`${ctsUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
    if (res.status !== 200) throw new Error(`challtestsrv ${path}: HTTP ${res.status} ${res.body}`);
  };
  const fqdn = (name: string) => (name.endsWith('.') ? name : `${name}.`);

  const stop = async () => {
    await kill(pebbleProc);
    await kill(ctsProc);
  };

  tempDirs.add(dir);
  try {
    await startCts();
    await startPebbleProc();
  } catch (err) {
    await stop();
    throw err;
  }
  // 2.8 and later answer a POST without a certificate with 400; without the endpoint, 404.
  const probe = await mgmt('/set-renewal-info/', '{}');
  const canSetRenewalInfo = probe.status !== 404;

  const pebble: Pebble = {
    version: opts.withoutAri ? p.PEBBLE_WITHOUT_ARI_VERSION : p.PEBBLE_VERSION,
    directoryUrl,
    managementUrl,
    caBundlePath: p.TLS_CA,
    caBundle,
    httpPort,
    tlsPort,
    logDir,
    canSetRenewalInfo,
    challtestsrv: {
      dnsAddress,
      managementUrl: ctsUrl,
      addTxt: (name, value) => cts('/set-txt', { host: fqdn(name), value }),
      clearTxt: (name) => cts('/clear-txt', { host: fqdn(name) }),
    },
    async directory() {
      const res = await request(directoryUrl, { ca: caBundle });
      if (res.status !== 200) throw new Error(`GET ${directoryUrl}: HTTP ${res.status}`);
      return JSON.parse(res.body) as Record<string, unknown>;
    },
    async issuerRoots() {
      const res = await mgmt('/roots/0');
      if (res.status !== 200) throw new Error(`GET /roots/0: HTTP ${res.status} ${res.body}`);
      return res.body;
    },
    async setRenewalInfo(certPem, window) {
      if (!canSetRenewalInfo) {
        throw new Error(`pebble ${p.PEBBLE_VERSION} has no /set-renewal-info/ (added in Pebble 2.8)`);
      }
      const iso = (d: Date | string) => (d instanceof Date ? d.toISOString() : d);
      const ariResponse = JSON.stringify({ suggestedWindow: { start: iso(window.start), end: iso(window.end) } });
      const res = await mgmt('/set-renewal-info/', JSON.stringify({ Certificate: certPem, ARIResponse: ariResponse }));
      if (res.status !== 200) throw new Error(`POST /set-renewal-info/: HTTP ${res.status} ${res.body}`);
    },
    get: (url) => request(url, { ca: caBundle }),
    stop,
    async restart() {
      await kill(pebbleProc);
      await startCts();
      await startPebbleProc();
    },
  };
  return pebble;
}
