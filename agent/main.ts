// deckhand-agent: the daemon and its local subcommands.
import { Command, CommanderError, Option } from 'commander';
import { SCOPES, type Scope } from './api/protocol.js';
import { TokenError, TokenStore } from './api/tokens.js';
import { checkDataDir } from './config/data-dir.js';
import { ConfigError, configPath, loadConfigFile } from './config/load.js';
import { preflightProblems, preflightWarnings } from './config/preflight.js';
import { runDaemon } from './daemon.js';
import { AuditLog, describeIntact, verifyAudit } from './events/audit.js';
import { EventLog } from './events/log.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from './store/db.js';
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
    // The same checks as check-config, before any duty starts: never half-configured.
    const config = loadOrExit(opts.config, { preflight: true });
    const log = createLogger(undefined, { host: config.host.name });
    for (const w of preflightWarnings(config)) log.warn(w);
    await runDaemon(config, log);
  });

program
  .command('check-config')
  .description('validate the config; exit 0, or 2 with one line per problem')
  .option(...configOption)
  .action((opts: { config?: string }) => {
    const file = configPath(opts.config);
    const config = loadOrExit(opts.config, { preflight: true });
    const warnings = preflightWarnings(config);
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    process.stdout.write(`${file}: ok${warnings.length ? ` (${warnings.length} warning${warnings.length === 1 ? '' : 's'})` : ''}\n`);
  });

// Token and audit commands work on the local database, as root on the box.
const token = program.command('token').description('API tokens (only their hashes are stored)');

token
  .command('create')
  .description('create a token and print it once, alone on stdout')
  .requiredOption('--name <name>', 'a name for the token (who or what uses it)')
  .addOption(new Option('--scope <scope>', 'read < operate < admin').choices(SCOPES).makeOptionMandatory())
  .option(...configOption)
  .action((opts: { name: string; scope: Scope; config?: string }) =>
    withStore(opts.config, {}, (store, audit) => {
      if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(opts.name)) fail(EXIT_USAGE, `invalid token name "${opts.name}" (letters, digits, "_", "-", ".")`);
      const { token: secret } = store.create(opts.name, opts.scope);
      audit.append({ actor: 'local', address: 'local', action: 'token.create', ok: true, message: `token ${opts.name} (${opts.scope}) created on the server`, data: { name: opts.name, scope: opts.scope } });
      process.stderr.write(`created token "${opts.name}" with scope ${opts.scope}; it is shown once:\n`);
      process.stdout.write(`${secret}\n`);
    }),
  );

token
  .command('list')
  .description('list tokens (never their secrets)')
  .option('--json', 'machine-readable output')
  .option(...configOption)
  .action((opts: { json?: boolean; config?: string }) =>
    withStore(opts.config, {}, (store) => {
      const list = store.list();
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(list.map((t) => ({ name: t.name, scope: t.scope, createdAt: new Date(t.createdAt).toISOString(), lastUsedAt: t.lastUsedAt ? new Date(t.lastUsedAt).toISOString() : null })))}\n`);
        return;
      }
      const rows = [['NAME', 'SCOPE', 'CREATED', 'LAST USED'], ...list.map((t) => [t.name, t.scope, new Date(t.createdAt).toISOString(), t.lastUsedAt ? new Date(t.lastUsedAt).toISOString() : 'never'])];
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
    }),
  );

token
  .command('revoke')
  .description('revoke a token; open connections using it are closed')
  .argument('<name>')
  .option(...configOption)
  .action((name: string, opts: { config?: string }) =>
    withStore(opts.config, {}, (store, audit) => {
      store.revoke(name);
      audit.append({ actor: 'local', address: 'local', action: 'token.revoke', ok: true, message: `token ${name} revoked on the server`, data: { name } });
      process.stderr.write(`revoked token "${name}"\n`);
    }),
  );

program
  .command('audit')
  .description('the audit log')
  .command('verify')
  .description("check the audit log's hash chain; exit 1 naming the first broken entry")
  .option(...configOption)
  .action((opts: { config?: string }) =>
    withStore(opts.config, { mustExist: true }, (_store, _audit, db) => {
      const result = verifyAudit(db);
      if (result.ok) {
        process.stdout.write(`${describeIntact(result)}\n`);
        return;
      }
      process.stderr.write(`audit log BROKEN at ${result.badId === null ? 'its head' : `entry ${result.badId}`}: ${result.reason}\n`);
      process.exitCode = 1;
    }),
  );

program
  .command('version')
  .description('print the version')
  .action(() => {
    process.stdout.write(`${VERSION}\n`);
  });

function fail(code: number, message: string): never {
  process.stderr.write(`deckhand-agent: ${message}\n`);
  process.exit(code);
}

type StoreWork = (store: TokenStore, audit: AuditLog, db: ReturnType<typeof openStore>) => void;

/** Runs `work` on the local database; with `mustExist`, a dataDir without one is exit 1 and nothing is created. */
function withStore(flag: string | undefined, opts: { mustExist?: boolean }, work: StoreWork): void {
  const config = loadOrExit(flag);
  const file = join(config.dataDir, 'deckhand.db');
  // Reading must not create: opening the store would make the directory and an empty database.
  if (opts.mustExist && !existsSync(file)) fail(1, `no database at ${file}: the agent has not run with dataDir ${config.dataDir}, so there is no audit log to verify`);
  const db = openStore(config.dataDir);
  try {
    work(new TokenStore(db), new AuditLog(new EventLog(db)), db);
  } catch (err) {
    if (err instanceof TokenError) fail(1, err.message);
    throw err;
  } finally {
    if (db.open) db.close();
  }
}

/**
 * The config, and a dataDir safe to open; exits 2 with one line per problem
 * otherwise. With `preflight` (run, check-config), also everything else `run`
 * needs from the box (preflight.ts), so check-config refuses what run would.
 */
function loadOrExit(flag: string | undefined, opts: { preflight?: boolean } = {}) {
  const file = configPath(flag);
  try {
    const config = loadConfigFile(file);
    const unsafe = checkDataDir(config.dataDir);
    if (unsafe.length > 0) throw new ConfigError(file, unsafe);
    if (opts.preflight) {
      const problems = preflightProblems(config);
      if (problems.length > 0) throw new ConfigError(file, problems);
    }
    return config;
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
