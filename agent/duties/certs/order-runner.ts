// Runs one order in a short-lived child process (order-worker.ts) and
// relays its steps. The child is killed on abort, on a timeout, or when it
// lingers after its answer.
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DomainError, failed } from '../../errors.js';
import type { OrderJob, OrderMessage } from './order-protocol.js';

/** An order that has not finished in this long is given up (polls, slow DNS, a stuck CA). */
export const ORDER_TIMEOUT_MS = 10 * 60_000;
const LINGER_MS = 2000;

export interface OrderResult {
  fullchainPem: string;
  orderUrl: string;
  usedReplaces: boolean;
  accountUrl?: string;
}

export class OrderFailed extends DomainError {
  constructor(
    message: string,
    readonly failedValidations: string[],
    details?: unknown,
  ) {
    super('failed', message, details);
  }
}

/** The worker next to this module: source (under tsx) or the bundle's own entry point. */
export function orderWorkerPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'order-worker.ts'), join(here, 'deckhand-cert-order.js'), join(here, '..', 'deckhand-cert-order.js')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw failed(`the certificate order program is missing (looked for ${candidates.join(', ')}); reinstall deckhand`);
  return found;
}

export function runOrder(job: OrderJob, o: { signal?: AbortSignal; onStep?: (step: string, detail?: string) => void; timeoutMs?: number } = {}): Promise<OrderResult> {
  const worker = orderWorkerPath();
  return new Promise<OrderResult>((resolve, reject) => {
    const child = fork(worker, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json', ...(worker.endsWith('.ts') ? {} : { execArgv: [] }) });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    let accountUrl: string | undefined;
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      fn();
      // Gone soon after its answer, or made to go.
      const linger = setTimeout(() => child.kill('SIGKILL'), LINGER_MS);
      linger.unref();
      child.once('exit', () => clearTimeout(linger));
    };
    const onAbort = () => {
      child.kill('SIGTERM');
      finish(() => reject(o.signal!.reason instanceof Error ? o.signal!.reason : failed('certificate order aborted')));
    };
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      finish(() => reject(failed(`certificate order gave up after ${Math.round((o.timeoutMs ?? ORDER_TIMEOUT_MS) / 60_000)} minutes`)));
    }, o.timeoutMs ?? ORDER_TIMEOUT_MS);
    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('message', (m: OrderMessage) => {
      if (m.type === 'account') accountUrl = m.url;
      else if (m.type === 'step') o.onStep?.(m.step, m.detail);
      else if (m.type === 'done') finish(() => resolve({ fullchainPem: m.fullchainPem, orderUrl: m.orderUrl, usedReplaces: m.usedReplaces, ...(accountUrl ? { accountUrl } : {}) }));
      else if (m.type === 'error') finish(() => reject(Object.assign(new OrderFailed(m.message, m.failedValidations, m.details), { accountUrl })));
    });
    child.on('error', (err) => finish(() => reject(failed(`certificate order process failed: ${err.message}`))));
    child.on('exit', (code, signal) => {
      const tail = stderr.trim().split('\n').slice(-3).join(' | ');
      finish(() => reject(failed(`certificate order process ended (${signal ?? `exit ${code}`}) before answering${tail ? `: ${tail}` : ''}`)));
    });
    child.send(job);
  });
}
