// The order process: gets one OrderJob over IPC, opens the account, runs the
// order with the configured challenge solver, sends the chain back, exits.
// Its own entry point in dist/ (deckhand-cert-order.js); run only by
// order-runner.ts.
import { issue, openAccount } from './acme.js';
import { solverFor } from './challenges/index.js';
import type { OrderJob, OrderMessage } from './order-protocol.js';

const send = (m: OrderMessage) => new Promise<void>((resolve) => process.send!(m, undefined, {}, () => resolve()));

async function runJob(job: OrderJob): Promise<void> {
  try {
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
  } catch (err) {
    const e = err as Error & { details?: unknown };
    const m = /^ACME validation of (\S+) failed/.exec(e.message ?? '');
    await send({ type: 'error', message: e.message ?? String(err), ...(e.details !== undefined ? { details: e.details } : {}), failedValidations: m ? [m[1]!] : [] });
  }
}

process.once('message', (job: OrderJob) => {
  void runJob(job).finally(() => process.disconnect());
});
