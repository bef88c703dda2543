// What the CA says about renewing a certificate (RFC 9773, ACME Renewal
// Information), read with plain HTTPS: the directory's renewalInfo URL and
// the suggested window for one certificate. Kept out of acme-client so the
// agent asks twice a day without loading it.
import { request as httpRequest } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { renewalInfoUrl } from './ari-id.js';
import { parseRetryAfter, type Window } from './plan.js';

const TIMEOUT_MS = 30_000;
const MAX_BODY = 256 << 10;

export interface RenewalInfoAnswer {
  window?: Window;
  explanationUrl?: string;
  retryAfterMs?: number;
}

interface Got {
  status: number;
  retryAfter?: string;
  body: string;
}

function get(url: string, caBundle: string | undefined): Promise<Got> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const opts = { method: 'GET', headers: { accept: 'application/json', 'user-agent': 'deckhand' }, timeout: TIMEOUT_MS };
    const req =
      u.protocol === 'https:'
        ? httpsRequest(u, { ...opts, ...(caBundle ? { agent: new Agent({ ca: caBundle, keepAlive: false }) } : {}) })
        : httpRequest(u, opts);
    req.on('timeout', () => req.destroy(new Error(`no answer from ${u.host} in ${TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
        if (body.length > MAX_BODY) req.destroy(new Error(`answer from ${u.host} over ${MAX_BODY} bytes`));
      });
      res.on('end', () => {
        const ra = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, body, ...(typeof ra === 'string' ? { retryAfter: ra } : {}) });
      });
      res.on('error', reject);
    });
    req.end();
  });
}

/** The directory's renewalInfo URL, or undefined when the CA offers none. */
export async function directoryRenewalInfo(directoryUrl: string, caBundle?: string): Promise<string | undefined> {
  const got = await get(directoryUrl, caBundle);
  if (got.status !== 200) throw new Error(`ACME directory answered ${got.status}`);
  const d = JSON.parse(got.body) as { renewalInfo?: unknown };
  return typeof d.renewalInfo === 'string' ? d.renewalInfo : undefined;
}

/** Parses a renewalInfo answer; a window whose end is not after its start is left out (RFC 9773 4.2). */
export function parseRenewalInfo(body: string, retryAfter: string | undefined, now: number): RenewalInfoAnswer {
  const retryAfterMs = parseRetryAfter(retryAfter, now);
  const d = JSON.parse(body) as { suggestedWindow?: { start?: unknown; end?: unknown }; explanationURL?: unknown };
  const start = typeof d.suggestedWindow?.start === 'string' ? Date.parse(d.suggestedWindow.start) : NaN;
  const end = typeof d.suggestedWindow?.end === 'string' ? Date.parse(d.suggestedWindow.end) : NaN;
  return {
    ...(Number.isFinite(start) && Number.isFinite(end) && end > start ? { window: { start, end } } : {}),
    ...(typeof d.explanationURL === 'string' ? { explanationUrl: d.explanationURL } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  };
}

export async function fetchRenewalInfo(renewalInfo: string, certPem: string, caBundle?: string): Promise<RenewalInfoAnswer> {
  const got = await get(renewalInfoUrl(renewalInfo, certPem), caBundle);
  if (got.status !== 200) throw new Error(`renewalInfo answered ${got.status}${got.body ? `: ${got.body.slice(0, 200)}` : ''}`);
  return parseRenewalInfo(got.body, got.retryAfter, Date.now());
}
