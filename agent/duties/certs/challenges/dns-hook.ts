// DNS-01 through a program of the operator's (certs.challenge.hook), since
// every DNS provider has its own API. The contract, by argv only:
//
//   HOOK present DOMAIN NAME VALUE   add a TXT record NAME with VALUE
//   HOOK cleanup DOMAIN NAME VALUE   remove that record (that value)
//
// NAME is _acme-challenge.<domain> (a wildcard's `*.` dropped: *.example.com
// and example.com share the name, so a hook must add and remove values, not
// replace the record). Exit 0 means done; anything else fails the order with
// the hook's last stderr lines. The hook runs through the one runner with a
// timeout.
//
// A provider's API answering "done" does not mean resolvers see the record
// yet, and the CA asks a resolver: after present, the TXT of NAME is polled
// (at certs.challenge.resolver, else the system's resolver) until VALUE shows
// up, for at most certs.challenge.propagationTimeout, before the CA is told
// to validate.
import { Resolver } from 'node:dns/promises';
import { failed } from '../../../errors.js';
import { run } from '../../../exec/runner.js';
import type { ChallengeParams, ChallengeSolver, StepFn } from '../acme.js';

export const HOOK_TIMEOUT_MS = 60_000;
export const DEFAULT_PROPAGATION_TIMEOUT_MS = 120_000;
export const PROPAGATION_POLL_MS = 1_500;
/** The most of the hook's stderr a message carries. */
const STDERR_TAIL_CHARS = 500;

export type HookAction = 'present' | 'cleanup';

/** A DNS server to ask, as an IP address and port (what Resolver.setServers takes). */
export interface ResolverAddress {
  host: string;
  port: number;
}

/** `_acme-challenge.<domain>`, without a leading `*.` or a trailing dot. */
export function challengeRecordName(domain: string): string {
  const base = domain.replace(/\.$/, '').replace(/^\*\./, '');
  return `_acme-challenge.${base}`;
}

/** The hook's argv: `HOOK ACTION DOMAIN NAME VALUE`. */
export function hookArgv(hook: string, action: HookAction, domain: string, name: string, value: string): string[] {
  return [hook, action, domain, name, value];
}

/** The last lines of a program's stderr, bounded, on one line. */
export function stderrTail(stderr: string, max = STDERR_TAIL_CHARS): string {
  const lines = stderr.trim().split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  const tail = lines.slice(-5).join(' | ');
  return tail.length <= max ? tail : `…${tail.slice(tail.length - max)}`;
}

function formatServer(a: ResolverAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

function formatMs(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : failed('certificate order aborted');
}

/** Resolves after MS, or rejects with the signal's reason when it aborts first. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface HookRunOptions {
  hookTimeoutMs?: number;
  signal?: AbortSignal;
}

/** Runs the hook once; rejects with a `failed` DomainError naming the action, the domain and the hook's stderr tail. */
export async function runHook(hook: string, action: HookAction, domain: string, value: string, o: HookRunOptions = {}): Promise<void> {
  const name = challengeRecordName(domain);
  const timeoutMs = o.hookTimeoutMs ?? HOOK_TIMEOUT_MS;
  let result;
  try {
    result = await run({ argv: hookArgv(hook, action, domain, name, value), timeoutMs }, { signal: o.signal, captureLimit: 64 * 1024 });
  } catch (e) {
    throw failed(`dns-01 hook ${action} for ${domain}: ${e instanceof Error ? e.message : String(e)}`, { hook, action, domain });
  }
  if (o.signal?.aborted) throw abortReason(o.signal);
  if (result.code === 0) return;
  const why = result.timedOut ? `timed out after ${formatMs(timeoutMs)}` : result.signal ? `was killed by ${result.signal}` : `exited with ${result.code}`;
  const tail = stderrTail(result.stderr);
  throw failed(`dns-01 hook ${action} for ${domain} ${why}${tail ? `: ${tail}` : ' (no stderr)'}`, { hook, action, domain, name, code: result.code });
}

export interface PropagationOptions {
  /** Default: the system's resolvers. */
  resolver?: ResolverAddress;
  timeoutMs?: number;
  intervalMs?: number;
  signal?: AbortSignal;
}

function quoteClip(v: string): string {
  return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v);
}

/**
 * Polls the TXT records of NAME until one equals VALUE. Rejects with a
 * `failed` DomainError naming NAME and the last answer once the timeout has
 * passed, or with the signal's reason on abort.
 */
export async function waitForTxt(name: string, value: string, o: PropagationOptions = {}): Promise<void> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_PROPAGATION_TIMEOUT_MS;
  const intervalMs = o.intervalMs ?? PROPAGATION_POLL_MS;
  const { signal } = o;
  // One query may not outlast a poll by much: 1 s per try, 2 tries.
  const resolver = new Resolver({ timeout: 1000, tries: 2 });
  if (o.resolver) resolver.setServers([formatServer(o.resolver)]);
  const onAbort = () => resolver.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  try {
    for (;;) {
      if (signal?.aborted) throw abortReason(signal);
      try {
        const values = (await resolver.resolveTxt(name)).map((chunks) => chunks.join(''));
        if (values.includes(value)) return;
        last = values.length === 0 ? 'no TXT record' : `TXT ${values.slice(0, 3).map(quoteClip).join(', ')}${values.length > 3 ? ` and ${values.length - 3} more` : ''}`;
      } catch (e) {
        if (signal?.aborted) throw abortReason(signal);
        const code = (e as NodeJS.ErrnoException).code;
        last = code === 'ENODATA' ? 'no TXT record' : code === 'ENOTFOUND' ? 'no such name' : e instanceof Error ? e.message : String(e);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        const where = o.resolver ? `the resolver ${formatServer(o.resolver)}` : "the system's resolver";
        throw failed(`dns-01: the TXT record ${name} did not show the challenge value at ${where} within ${formatMs(timeoutMs)} (last answer: ${last}); check that the hook sets it, or raise certs.challenge.propagationTimeout`, {
          name,
          last,
        });
      }
      await sleep(Math.min(intervalMs, left), signal);
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

export interface DnsHookOptions extends HookRunOptions {
  hook: string;
  resolver?: ResolverAddress;
  propagationTimeoutMs?: number;
  pollIntervalMs?: number;
  onStep?: StepFn;
}

export function dnsHookSolver(o: DnsHookOptions): ChallengeSolver {
  const valueOf = (p: ChallengeParams): string => {
    if (p.dnsValue === undefined) throw failed(`dns-01 challenge for ${p.domain} has no TXT value`);
    return p.dnsValue;
  };
  return {
    type: 'dns-01',
    async present(p: ChallengeParams) {
      const value = valueOf(p);
      await runHook(o.hook, 'present', p.domain, value, o);
      const name = challengeRecordName(p.domain);
      o.onStep?.('propagation', name);
      await waitForTxt(name, value, { resolver: o.resolver, timeoutMs: o.propagationTimeoutMs, intervalMs: o.pollIntervalMs, signal: o.signal });
    },
    async cleanup(p: ChallengeParams) {
      // Not abortable: an aborted order still has its record removed.
      await runHook(o.hook, 'cleanup', p.domain, valueOf(p), { hookTimeoutMs: o.hookTimeoutMs });
    },
  };
}
