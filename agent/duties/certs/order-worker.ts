// The order process: gets one OrderJob over IPC, opens the account, runs the
// order with the configured challenge solver, sends the chain back, exits.
// Its own entry point in dist/ (deckhand-cert-order.js); run only by
// order-runner.ts.
import { axios as acmeAxios } from 'acme-client';
import { issue, openAccount } from './acme.js';
import { solverFor } from './challenges/index.js';
import type { OrderJob, OrderMessage } from './order-protocol.js';

const send = (m: OrderMessage) => new Promise<void>((resolve) => process.send!(m, undefined, {}, () => resolve()));

/** The CA no longer knows the kept account URL (a test CA restarted, an account deactivated elsewhere). */
const UNKNOWN_ACCOUNT = /accountDoesNotExist|account with ID .* does not exist|account does not exist|Account \S+ not found/i;

async function runJob(job: OrderJob): Promise<void> {
  try {
    await orderOnce(job);
  } catch (err) {
    if (job.accountUrl && UNKNOWN_ACCOUNT.test(`${(err as Error).message} ${JSON.stringify((err as { details?: unknown }).details ?? '')}`)) {
      // Registered again with the same key: the CA finds or makes the account, and says its URL.
      await send({ type: 'step', step: 'account', detail: 'the CA does not know the kept account URL: registering again with the same key' });
      const { accountUrl: _dropped, ...fresh } = job;
      try {
        await orderOnce(fresh);
      } catch (again) {
        await sendError(again);
      }
      return;
    }
    await sendError(err);
  }
}

async function sendError(err: unknown): Promise<void> {
  const e = err as Error & { details?: unknown };
  const m = /^ACME validation of (\S+) failed/.exec(e.message ?? '');
  await send({ type: 'error', message: e.message ?? String(err), ...(e.details !== undefined ? { details: e.details } : {}), failedValidations: m ? [m[1]!] : [] });
}

async function orderOnce(job: OrderJob): Promise<void> {
  const { client, accountUrl } = await openAccount({
    directoryUrl: job.directoryUrl,
    accountKeyPem: job.accountKeyPem,
    email: job.email,
    ...(job.caBundle ? { caBundle: job.caBundle } : {}),
    ...(job.accountUrl ? { accountUrl: job.accountUrl } : {}),
    ...(job.pollMinMs ? { pollMinMs: job.pollMinMs } : {}),
  });
  await send({ type: 'account', url: accountUrl });
  const solver = solverFor(job.challenge);
  const issued = await issue(
    client,
    { domains: job.domains, keyPem: job.keyPem, ...(job.replaces ? { replaces: job.replaces } : {}), ...(job.profile ? { profile: job.profile } : {}) },
    solver,
    {
      onStep: (step, detail) => {
        void send({ type: 'step', step, ...(detail !== undefined ? { detail } : {}) });
      },
    },
  );
  await send({ type: 'done', fullchainPem: issued.fullchainPem, orderUrl: issued.orderUrl, usedReplaces: issued.usedReplaces });
}

// This process runs one order: acme-client's process-wide retry settings are
// this order's own. Fewer, shorter retries than its 5 x 5 s: the duty's
// backoff, not a minute of retries inside one attempt, spaces the attempts.
const defaults = acmeAxios.defaults as typeof acmeAxios.defaults & { acmeSettings?: Record<string, unknown> };
defaults.acmeSettings = { ...defaults.acmeSettings, retryMaxAttempts: 3, retryDefaultDelay: 2 };

process.once('message', (job: OrderJob) => {
  void runJob(job).finally(() => {
    process.removeAllListeners('disconnect');
    process.disconnect();
  });
});

// The agent went away (killed, or it gave up on us): an order nobody will install is not worth finishing.
process.once('disconnect', () => process.exit(1));
