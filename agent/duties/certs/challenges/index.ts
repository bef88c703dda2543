// The challenge solver an order uses, chosen from certs.challenge:
//   http-01 + webroot  files in a directory another program serves
//   http-01 (+ listen) the agent's own responder (default: every address, port 80)
//   dns-01  + hook     the operator's hook program, then a propagation wait
// Responders are shared per address: two orders at once must not both try
// to listen on port 80, and one responder serves the tokens of both.
import type { ChallengeSolver, StepFn } from '../acme.js';
import type { CertsConfig } from '../config.js';
import { dnsHookSolver } from './dns-hook.js';
import { DEFAULT_HTTP01_ADDRESS, formatAddress, httpResponder, type HttpResponder, type ResponderAddress } from './http-responder.js';
import { webrootSolver } from './webroot.js';

export type ChallengeConfig = CertsConfig['challenge'];

export interface SolverDeps {
  /** The order's signal: aborts a dns-01 hook's present and the propagation wait. */
  signal?: AbortSignal;
  onStep?: StepFn;
}

const responders = new Map<string, HttpResponder>();

/** The one responder for ADDRESS in this process. */
export function responderFor(address: ResponderAddress): HttpResponder {
  const key = formatAddress(address);
  let r = responders.get(key);
  if (!r) {
    r = httpResponder(address);
    responders.set(key, r);
  }
  return r;
}

/** Stops every responder (agent shutdown); a later order starts them again. */
export async function closeResponders(): Promise<void> {
  await Promise.all([...responders.values()].map((r) => r.close()));
}

export function solverFor(c: ChallengeConfig, deps: SolverDeps = {}): ChallengeSolver {
  if (c.type === 'dns-01') {
    // The schema makes dns-01 name a hook; this guards a config built elsewhere.
    if (!c.hook) throw new Error('certs.challenge: dns-01 needs a hook program');
    return dnsHookSolver({ hook: c.hook, resolver: c.resolver, propagationTimeoutMs: c.propagationTimeout, signal: deps.signal, onStep: deps.onStep });
  }
  if (c.webroot) return webrootSolver(c.webroot);
  return responderFor(c.listen ?? DEFAULT_HTTP01_ADDRESS);
}

export { challengeRecordName, dnsHookSolver, hookArgv, runHook, waitForTxt } from './dns-hook.js';
export { httpResponder, type HttpResponder } from './http-responder.js';
export { isAcmeToken } from './token.js';
export { webrootSolver } from './webroot.js';
