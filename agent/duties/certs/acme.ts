// One certificate order against an ACME CA, step by step over acme-client:
// account, newOrder (with the ARI `replaces` and a CA profile, which
// acme-client 5.4 neither types nor carries through `auto()`), the
// challenges of each authorization, finalize, download. Every challenge
// presented is cleaned up again, on success, failure or abort.
import { Agent } from 'node:https';
import * as acme from 'acme-client';
import type { Challenge, Identifier, OrderCreateRequest } from 'acme-client/types/rfc8555.js';
import { DomainError, failed } from '../../errors.js';

export interface AcmeOrderRequest {
  domains: string[];
  /** The certificate's private key, PKCS#8 PEM. */
  keyPem: string;
  /** ARI certID (RFC 9773) of the certificate this order renews. */
  replaces?: string;
  /** A profile the CA lists in its directory's meta.profiles. */
  profile?: string;
}

export interface ChallengeParams {
  domain: string;
  token: string;
  keyAuthorization: string;
  /** For dns-01: the TXT value of _acme-challenge.<domain>. */
  dnsValue?: string;
}

export interface ChallengeSolver {
  type: 'http-01' | 'dns-01';
  present(o: ChallengeParams): Promise<void>;
  cleanup(o: ChallengeParams): Promise<void>;
}

export interface Issued {
  fullchainPem: string;
  orderUrl: string;
  /** Whether the order that issued it carried `replaces` (false when the CA refused it and the order was retried without). */
  usedReplaces: boolean;
}

export interface DirectoryInfo {
  newOrder: string;
  renewalInfo?: string;
  /** Profile name to description, as the CA lists them (empty: none offered). */
  profiles: Record<string, string>;
  termsOfService?: string;
}

/** newOrder as the drafts extend it: RFC 9773 `replaces`, the ACME profiles extension's `profile`. */
export interface ExtendedOrderCreateRequest extends OrderCreateRequest {
  replaces?: string;
  profile?: string;
}

/** The ACME problem document of a refused request. */
export interface AcmeProblem {
  status: number;
  type?: string;
  detail?: string;
}

export type StepFn = (step: string, detail?: string) => void;

// acme-client's HttpClient, which it does not type: its request() is where
// the per-CA TLS trust goes in and where the last response is seen.
interface RawResponse {
  status: number;
  data: unknown;
}
interface RawHttpClient {
  request(url: string, method: string, opts?: Record<string, unknown>): Promise<RawResponse>;
}
interface RawClient {
  http: RawHttpClient;
}

/** Per client: the problem of the last refused request to each URL. */
const problems = new WeakMap<acme.Client, Map<string, AcmeProblem>>();

function problemOf(resp: RawResponse): AcmeProblem | undefined {
  if (resp.status < 400) return undefined;
  const d = resp.data;
  if (d && typeof d === 'object') {
    const o = d as { type?: unknown; detail?: unknown };
    return {
      status: resp.status,
      type: typeof o.type === 'string' ? o.type : undefined,
      detail: typeof o.detail === 'string' ? o.detail : undefined,
    };
  }
  return { status: resp.status };
}

/**
 * Wraps the client's HTTP requests: a CA bundle trusted for this client's
 * requests only (acme-client's axios instance is shared process-wide, so its
 * defaults are left alone), and the problem of each refused request kept.
 */
function instrument(client: acme.Client, caBundle?: string): void {
  const http = (client as unknown as RawClient).http;
  if (!http || typeof http.request !== 'function') throw new Error('acme-client: no HttpClient to configure');
  const original = http.request.bind(http);
  const agent = caBundle ? new Agent({ ca: caBundle, keepAlive: false }) : undefined;
  const seen = new Map<string, AcmeProblem>();
  problems.set(client, seen);
  http.request = async (url, method, opts = {}) => {
    let resp: RawResponse;
    try {
      resp = await original(url, method, agent ? { ...opts, httpsAgent: agent } : opts);
    } catch (err) {
      // acme-client 5.4, out of retries on a connection error, fails in its own
      // interceptor ("reading 'config'"): say what happened instead.
      if (err instanceof TypeError && /reading 'config'/.test(err.message)) throw failed(`no answer from the ACME server ${new URL(url).host}: the connection failed after retries (is the CA down or the address wrong?)`);
      throw err;
    }
    const p = problemOf(resp);
    if (p) seen.set(url, p);
    else seen.delete(url);
    return resp;
  };
}

function readDirectory(raw: unknown): DirectoryInfo {
  const d = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const meta = (d.meta && typeof d.meta === 'object' ? d.meta : {}) as Record<string, unknown>;
  const profiles: Record<string, string> = {};
  if (meta.profiles && typeof meta.profiles === 'object') {
    for (const [k, v] of Object.entries(meta.profiles as Record<string, unknown>)) profiles[k] = typeof v === 'string' ? v : '';
  }
  if (typeof d.newOrder !== 'string') throw failed('ACME directory has no newOrder URL');
  return {
    newOrder: d.newOrder,
    renewalInfo: typeof d.renewalInfo === 'string' ? d.renewalInfo : undefined,
    termsOfService: typeof meta.termsOfService === 'string' ? meta.termsOfService : undefined,
    profiles,
  };
}

async function fetchDirectory(client: acme.Client): Promise<DirectoryInfo> {
  const http = (client as unknown as { http: { getDirectory(): Promise<unknown> } }).http;
  return readDirectory(await http.getDirectory());
}

const directories = new WeakMap<acme.Client, DirectoryInfo>();

export interface OpenAccountOptions {
  directoryUrl: string;
  accountKeyPem: string;
  email: string;
  /** PEM: trusted for this CA's endpoints only, never process-wide. */
  caBundle?: string;
  /** A known account URL: skips the lookup/creation. */
  accountUrl?: string;
  /** Minimum delay between status polls, ms (acme-client's default: 5000). */
  pollMinMs?: number;
  /** Maximum delay between status polls, ms. */
  pollMaxMs?: number;
}

/**
 * A client for one CA and one account: reads the directory, and registers the
 * account (agreeing to the terms) unless its URL is given. Orders go through
 * `issue` with the client returned here, which alone knows the CA's answers.
 */
export async function openAccount(o: OpenAccountOptions): Promise<{ client: acme.Client; accountUrl: string; directory: DirectoryInfo }> {
  const pollMinMs = o.pollMinMs ?? 1000;
  const client = new acme.Client({
    directoryUrl: o.directoryUrl,
    accountKey: o.accountKeyPem,
    ...(o.accountUrl ? { accountUrl: o.accountUrl } : {}),
    backoffMin: pollMinMs,
    backoffMax: Math.max(pollMinMs, o.pollMaxMs ?? 10_000),
    backoffAttempts: 10,
  });
  instrument(client, o.caBundle);
  const directory = await fetchDirectory(client);
  directories.set(client, directory);
  if (!o.accountUrl) {
    await client.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${o.email}`] });
  }
  return { client, accountUrl: client.getAccountUrl(), directory };
}

function aborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : failed('certificate order aborted');
}

/** Runs P, rejecting as soon as SIGNAL aborts (the request itself may still finish in the background). */
function step<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  aborted(signal);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : failed('certificate order aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** Whether the CA refused a newOrder because of its `replaces`. */
export function refusedForReplaces(p: AcmeProblem | undefined): boolean {
  if (!p) return false;
  if (p.type === 'urn:ietf:params:acme:error:alreadyReplaced') return true;
  if (p.type === 'urn:ietf:params:acme:error:malformed' && /replaces/i.test(p.detail ?? '')) return true;
  return p.status >= 400 && p.status < 500;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export interface IssueOptions {
  signal?: AbortSignal;
  onStep?: StepFn;
}

/**
 * One order: newOrder (with `replaces` and `profile` when asked), the
 * SOLVER's challenge for each pending authorization, finalize with a CSR of
 * the given key, download. A `replaces` the CA refuses is dropped and the
 * order made once more without it (`usedReplaces: false`). Rejects with a
 * `failed` DomainError carrying the CA's detail, or with the signal's reason
 * on abort; every challenge presented is cleaned up first. (acme-client
 * cannot cancel a status poll it has started: on abort that poll ends on its
 * own, its result unused.)
 */
export async function issue(client: acme.Client, req: AcmeOrderRequest, solver: ChallengeSolver, o: IssueOptions = {}): Promise<Issued> {
  const { signal } = o;
  const report: StepFn = (s, d) => o.onStep?.(s, d);
  if (req.domains.length === 0) throw failed('certificate order: no domains');
  const directory = directories.get(client) ?? (await step(fetchDirectory(client), signal));

  if (req.profile !== undefined) {
    const offered = Object.keys(directory.profiles);
    if (offered.length === 0) throw failed(`ACME profile "${req.profile}" was asked for, but the CA offers no profiles`, { profile: req.profile, offered });
    if (!offered.includes(req.profile)) {
      throw failed(`ACME profile "${req.profile}" is not offered by the CA (it offers: ${offered.join(', ')})`, { profile: req.profile, offered });
    }
  }

  const identifiers: Identifier[] = req.domains.map((value) => ({ type: 'dns', value }));
  const base: ExtendedOrderCreateRequest = { identifiers, ...(req.profile !== undefined ? { profile: req.profile } : {}) };

  let usedReplaces = false;
  let order: acme.Order;
  report('order', req.domains.join(', '));
  if (req.replaces !== undefined) {
    try {
      // Only the answer to this newOrder counts, not one left from an earlier order.
      problems.get(client)?.delete(directory.newOrder);
      const withReplaces: ExtendedOrderCreateRequest = { ...base, replaces: req.replaces };
      order = await step(client.createOrder(withReplaces), signal);
      usedReplaces = true;
    } catch (e) {
      aborted(signal);
      const p = problems.get(client)?.get(directory.newOrder);
      if (!refusedForReplaces(p)) throw failed(`ACME newOrder failed: ${message(e)}`, p);
      report('order-retry', `without replaces: ${p?.detail ?? message(e)}`);
      order = await step(client.createOrder(base), signal);
    }
  } else {
    order = await step(client.createOrder(base), signal);
  }

  const presented: ChallengeParams[] = [];
  try {
    if (order.status !== 'ready' && order.status !== 'valid') {
      const authzs = await step(client.getAuthorizations(order), signal);
      for (const authz of authzs) {
        if (authz.status === 'valid') continue;
        const domain = authz.identifier.value;
        const challenge: Challenge | undefined = authz.challenges.find((c) => c.type === solver.type);
        if (!challenge) throw failed(`ACME authorization for ${domain} offers no ${solver.type} challenge`, { offered: authz.challenges.map((c) => c.type) });
        // acme-client answers dns-01 with the TXT digest; the key authorization itself is the http-01 form.
        const keyAuthorization = await client.getChallengeKeyAuthorization({ ...challenge, type: 'http-01' });
        const params: ChallengeParams = { domain, token: challenge.token, keyAuthorization };
        if (solver.type === 'dns-01') params.dnsValue = await client.getChallengeKeyAuthorization(challenge);
        report('present', `${solver.type} ${domain}`);
        presented.push(params);
        await step(solver.present(params), signal);
        await step(client.completeChallenge(challenge), signal);
        report('validate', domain);
        try {
          await step(client.waitForValidStatus(challenge), signal);
        } catch (e) {
          aborted(signal);
          throw failed(`ACME validation of ${domain} failed: ${message(e)}`);
        }
      }
    }

    report('finalize');
    const [, csr] = await acme.crypto.createCsr({ commonName: req.domains[0], altNames: req.domains }, req.keyPem);
    const finalized = await step(client.finalizeOrder(order, csr), signal);
    const valid = finalized.status === 'valid' ? finalized : await step(client.waitForValidStatus(finalized), signal);
    report('download');
    const fullchainPem = await step(client.getCertificate(valid), signal);
    return { fullchainPem, orderUrl: order.url, usedReplaces };
  } catch (e) {
    if (e instanceof DomainError) throw e;
    if (signal?.aborted) throw e;
    throw failed(`ACME order failed: ${message(e)}`);
  } finally {
    for (const p of presented) {
      try {
        await solver.cleanup(p);
        report('cleanup', p.domain);
      } catch (e) {
        report('cleanup-failed', `${p.domain}: ${message(e)}`);
      }
    }
  }
}
