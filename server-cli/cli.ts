// The command line: builds the commands, runs one, and turns whatever went
// wrong into a message on stderr and an exit code (SPEC section 6):
// 0 done, 1 the operation failed, 2 usage or config error, 3 cannot connect,
// authenticate or verify the pin, or the token lacks the scope; 130 when
// Ctrl-C stopped the watching of a deploy or a backup (which carries on on
// the server).
import { Command, CommanderError } from 'commander';
import { VERSION } from '../agent/version.js';
import { registerBackupCommands } from './commands/backup.js';
import { registerCertCommands } from './commands/certs.js';
import { type CommonOptions, createCtx, printJson } from './commands/common.js';
import { registerDeployCommands } from './commands/deploy.js';
import { registerEventsCommand } from './commands/events.js';
import { registerHostCommands } from './commands/host.js';
import { registerLogsCommand } from './commands/logs.js';
import { registerMetricsCommand } from './commands/metrics.js';
import { registerPsCommand } from './commands/ps.js';
import { registerStackCommands } from './commands/stack.js';
import { registerStatusCommand } from './commands/status.js';
import { registerTokenCommands } from './commands/token.js';
import { asCliError, EXIT, type ExitCode } from './errors.js';
import type { Io } from './io.js';
import { setVersionWarningSink } from './version-check.js';

export async function runCli(argv: string[], io: Io): Promise<ExitCode> {
  const ctx = createCtx(io);
  setVersionWarningSink((m) => io.stderr.write(ctx.err.yellow(m)));
  const program = new Command('deckhand')
    .description('See and run deckhand servers from a laptop or CI.')
    .version(VERSION, '-V, --version')
    .option('-H, --host <name>', 'the host to talk to (default: $DECKHAND_HOST, or the only one); before or after the subcommand')
    .option('--json', 'machine-readable output, before or after the subcommand')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(ctx.err.red(s)),
    })
    .addHelpText(
      'after',
      `
Hosts: ~/.config/deckhand/hosts.json ($XDG_CONFIG_HOME). Choose one with -H NAME or DECKHAND_HOST;
DECKHAND_URL + DECKHAND_TOKEN (+ DECKHAND_FINGERPRINT) skip the hosts file (CI).
Exit codes: 0 done, 1 operation failed (a deploy that rolled back too), 2 usage or config error,
3 cannot connect, authenticate, verify the certificate pin, or the token lacks the scope; 130 Ctrl-C.`,
    );

  // Commander reads the program's options anywhere on the line, so they never
  // reach the subcommand: hand them over before it runs (SPEC: -H and --json
  // before or after the subcommand).
  program.hook('preAction', (_program, action) => {
    const global = program.opts<CommonOptions>();
    if (global.host !== undefined) action.setOptionValue('host', global.host);
    if (global.json) action.setOptionValue('json', true);
  });

  registerHostCommands(program, ctx);
  registerStatusCommand(program, ctx);
  registerPsCommand(program, ctx);
  registerLogsCommand(program, ctx);
  registerStackCommands(program, ctx);
  registerDeployCommands(program, ctx);
  registerBackupCommands(program, ctx);
  registerCertCommands(program, ctx);
  registerMetricsCommand(program, ctx);
  registerEventsCommand(program, ctx);
  registerTokenCommands(program, ctx);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      const code = commanderExitCode(err);
      if (code !== EXIT.ok && argv.includes('--json')) printJsonAs(io, argv, { error: { message: err.message.replace(/^error: /, ''), reason: 'usage', exitCode: code } });
      return code;
    }
    const e = asCliError(err);
    if (argv.includes('--json')) {
      printJsonAs(io, argv, { error: { message: e.message, reason: e.reason, exitCode: e.exitCode, ...(e.rpcCode !== undefined ? { code: e.rpcCode } : {}), ...e.data } });
    }
    io.stderr.write(`${ctx.err.red('deckhand:')} ${e.message}\n`);
    // Not a CliError: something unforeseen; the stack helps a bug report.
    if (err !== e && io.env.DECKHAND_DEBUG && err instanceof Error) io.stderr.write(`${err.stack}\n`);
    return e.exitCode;
  }
}

/** `logs --json` prints one JSON object per line, its error too; every other command one document. */
function printJsonAs(io: Io, argv: string[], value: unknown): void {
  if (subcommandOf(argv) === 'logs') io.stdout.write(`${JSON.stringify(value)}\n`);
  else printJson(io, value);
}

/** The first word that is not an option (nor the value of -H). */
function subcommandOf(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-H' || arg === '--host') i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

/** Help and version are not errors; anything else commander complains about is a usage error. */
function commanderExitCode(err: CommanderError): ExitCode {
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
  return EXIT.usage;
}
