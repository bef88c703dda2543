// deckhand certs | certs renew NAME [--force]: the managed certificates of a
// host through cert.list, and a renewal watched step by step through the
// streaming cert.renew. Exit 0 only when the new certificate is in place;
// a renewal the agent refuses (not due, backing off, already renewing) or
// one that fails is exit 1 with the reason.
import { type Command, InvalidArgumentError } from 'commander';
import { nameParam, type CertificateInfo, type CertListResult, type StreamEnd } from '../../agent/api/protocol.js';
import { CliError, EXIT } from '../errors.js';
import { renderCerts, renderRenewEnd } from '../render/certs.js';
import { withClient } from '../session.js';
import { resolveTarget } from '../target.js';
import { type CommonOptions, type Ctx, note, printJson, withCommonOptions } from './common.js';
import { watchStream } from './watch.js';

interface RenewOptions extends CommonOptions {
  force?: boolean;
}

function certName(text: string): string {
  if (!nameParam.safeParse(text).success) throw new InvalidArgumentError('expected the name of a configured certificate (letters, digits, "-", "_")');
  return text;
}

export function registerCertCommands(program: Command, ctx: Ctx): void {
  const certs = withCommonOptions(program.command('certs').description('managed certificates: days left, next renewal and why, last error')).action(async (opts: CommonOptions) => {
    const target = resolveTarget(opts, ctx.io.env);
    const result: CertListResult = await withClient(target, (c) => c.call('cert.list', {}));
    if (opts.json) printJson(ctx.io, result);
    else if (result.certificates.length === 0) note(ctx, `no certificates configured on ${target.name}`);
    else ctx.io.stdout.write(renderCerts(ctx.out, result, ctx.io.now()));
  });

  withCommonOptions(certs.command('renew').description('renew a certificate now (refused when not due, unless --force)').argument('<name>', 'the configured certificate', certName))
    .option('--force', 'renew even when not due, or while backing off after failures')
    .action(async (name: string, opts: RenewOptions) => {
      const target = resolveTarget(opts, ctx.io.env);
      const hostFlag = opts.host ? ` -H ${opts.host}` : '';
      const end = await watchStream(ctx, opts, 'cert.renew', { name, ...(opts.force ? { force: true } : {}) }, { what: `renewal of ${name}`, follow: `deckhand certs${hostFlag}` });
      if (!end) return;
      const c = certOf(end);
      if (!end.ok || !c) throw new CliError(`renewal of ${name} on ${target.name} failed: ${end.error ?? 'the agent gave no reason'}`, EXIT.failed, end.error ?? 'failed');
      if (opts.json) printJson(ctx.io, { ok: true, certificate: c });
      else ctx.io.stdout.write(renderRenewEnd(ctx.out, c, ctx.io.now()));
    });
}

function certOf(end: StreamEnd): CertificateInfo | undefined {
  const c = end.certificate as CertificateInfo | undefined;
  return c && typeof c === 'object' && typeof c.name === 'string' ? c : undefined;
}
