// deckhand token list | create | revoke: API tokens, through the agent's
// token.* methods (admin scope). A new token is printed alone on stdout,
// like `deckhand-agent token create`, so a script can capture it.
import { type Command, InvalidArgumentError } from 'commander';
import { nameParam, SCOPES, type Scope, type TokenListResult } from '../../agent/api/protocol.js';
import type { Target } from '../connect.js';
import { CliError, EXIT } from '../errors.js';
import { renderTable } from '../render/table.js';
import { relativeTime } from '../render/time.js';
import { withClient } from '../session.js';
import { resolveTarget } from '../target.js';
import { type CommonOptions, type Ctx, note, printJson, withCommonOptions } from './common.js';

export function registerTokenCommands(program: Command, ctx: Ctx): void {
  const token = program.command('token').description('API tokens of a host (needs an admin token)');

  withCommonOptions(token.command('list').description('list tokens (never the secrets)')).action(async (opts: CommonOptions) => {
    const target = resolveTarget(opts, ctx.io.env);
    const result = await withClient(target, (c) => c.call('token.list', {}));
    if (opts.json) printJson(ctx.io, result);
    else if (result.tokens.length === 0) note(ctx, `no tokens on ${target.name}`);
    else ctx.io.stdout.write(renderTokens(ctx, result));
  });

  withCommonOptions(token.command('create').description('create a token; it is shown once').argument('<name>', 'what the token is for, e.g. ci-deploy', nameArgument))
    .requiredOption('--scope <scope>', `one of ${SCOPES.join(', ')}`, scopeArgument)
    .action(async (name: string, opts: CommonOptions & { scope: Scope }) => {
      const target = resolveTarget(opts, ctx.io.env);
      const result = await withClient(target, (c) => c.call('token.create', { name, scope: opts.scope }));
      if (opts.json) {
        printJson(ctx.io, result);
        return;
      }
      note(ctx, `created token ${result.name} (scope ${result.scope}) on ${target.name}; it is shown only this once:`);
      ctx.io.stdout.write(`${result.token}\n`);
    });

  withCommonOptions(token.command('revoke').description('revoke a token; connections using it are refused from now on').argument('<name>', 'the token name', nameArgument))
    .option('--yes', 'revoke it even if it is the token this command uses')
    .action(async (name: string, opts: CommonOptions & { yes?: boolean }) => {
      const target = resolveTarget(opts, ctx.io.env);
      const own = await withClient(target, async (c) => {
        // The agent marks the caller's own token in the list: refuse before anything is revoked.
        const own = (await c.call('token.list', {})).tokens.some((t) => t.name === name && t.current === true);
        if (own && !opts.yes) throw ownTokenError(name, target);
        try {
          await c.call('token.revoke', { name });
        } catch (err) {
          // The agent drops the connections of a revoked token at once, ours too, maybe before its answer.
          if (!(own && c.closeCode === TOKEN_REVOKED_CLOSE)) throw err;
        }
        return own;
      });
      if (opts.json) {
        printJson(ctx.io, { revoked: name, ...(own ? { current: true, host: target.name } : {}) });
        return;
      }
      ctx.io.stdout.write(`revoked token ${name} on ${target.name}\n`);
      if (own) note(ctx, `${name} was the token this CLI uses for ${target.name}: calls to ${target.name} are refused until ${tokenFix(target)}`);
    });
}

/** The close code the agent ends a revoked token's connections with. */
const TOKEN_REVOKED_CLOSE = 4001;

function tokenFix(target: Target): string {
  return target.source === 'env'
    ? 'DECKHAND_TOKEN is set to another token'
    : `you \`deckhand host remove ${target.name}\` and add it again with another --token`;
}

function ownTokenError(name: string, target: Target): CliError {
  const via = target.source === 'env' ? 'DECKHAND_TOKEN' : `the hosts file entry of ${target.name}`;
  return new CliError(
    `not revoked: ${name} is the token this command uses for ${target.name} (${via}); revoking it locks this CLI out of ${target.name}. Run again with --yes if that is what you want`,
    EXIT.usage,
    'own token',
  );
}

function nameArgument(text: string): string {
  if (!nameParam.safeParse(text).success) throw new InvalidArgumentError('expected a name: letters, digits, "_", "-", "." (at most 63)');
  return text;
}

function scopeArgument(text: string): Scope {
  if (!(SCOPES as readonly string[]).includes(text)) throw new InvalidArgumentError(`expected one of ${SCOPES.join(', ')}`);
  return text as Scope;
}

export function renderTokens(ctx: Ctx, result: TokenListResult): string {
  const now = ctx.io.now();
  const rows = result.tokens.map((t) => [t.current ? `${t.name} ${ctx.out.dim('(this CLI)')}` : t.name, t.scope, relativeTime(t.createdAt, now), t.lastUsedAt ? relativeTime(t.lastUsedAt, now) : 'never']);
  return renderTable(rows, { header: ['NAME', 'SCOPE', 'CREATED', 'LAST USED'], headerStyle: ctx.out.bold });
}
