// deckhand-agent: the daemon and its local subcommands.
import { Command, CommanderError } from 'commander';
import { ConfigError, configPath, loadConfigFile } from './config/load.js';
import { runDaemon } from './daemon.js';
import { createLogger } from './logger.js';
import { VERSION } from './version.js';

const EXIT_USAGE = 2;

const program = new Command('deckhand-agent')
  .description('Keeps this server healthy: supervises the compose stack, deploys, certificates, backups, metrics.')
  .version(VERSION, '-V, --version')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

const configOption = ['-c, --config <path>', 'config file (default: $DECKHAND_CONFIG or /etc/deckhand/agent.yaml)'] as const;

program
  .command('run')
  .description('run the daemon in the foreground (what systemd starts)')
  .option(...configOption)
  .action(async (opts: { config?: string }) => {
    const config = loadOrExit(opts.config);
    const log = createLogger(undefined, { host: config.host.name });
    await runDaemon(config, log);
  });

program
  .command('check-config')
  .description('validate the config; exit 0, or 2 with one line per problem')
  .option(...configOption)
  .action((opts: { config?: string }) => {
    const file = configPath(opts.config);
    loadOrExit(opts.config);
    process.stdout.write(`${file}: ok\n`);
  });

program
  .command('version')
  .description('print the version')
  .action(() => {
    process.stdout.write(`${VERSION}\n`);
  });

function loadOrExit(flag: string | undefined) {
  const file = configPath(flag);
  try {
    return loadConfigFile(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.problems.join('\n')}\n`);
      process.exit(EXIT_USAGE);
    }
    throw err;
  }
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
  process.stderr.write(`deckhand-agent: ${(err as Error).message}\n`);
  process.exit(1);
}
