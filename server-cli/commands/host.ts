// deckhand host add | list | remove: the hosts file, with the agent's
// certificate pinned like SSH's known hosts.
import type { Command } from 'commander';
import { probeCertificate, type PeerCertificate, type Target } from '../connect.js';
import { CliError, EXIT, type TargetLabel } from '../errors.js';
import { formatFingerprint, parseFingerprintOption, SERVER_FINGERPRINT_COMMAND } from '../fingerprint.js';
import { hostsFilePath, parseApiUrl, readHostsFile, validateHostName, writeHostsFile, type HostEntry } from '../hosts.js';
import { canPrompt, confirm } from '../prompt.js';
import { renderTable } from '../render/table.js';
import { withClient } from '../session.js';
import { type Ctx, note, printJson, withJsonOption } from './common.js';

interface AddOptions {
  token: string;
  fingerprint?: string;
  json?: boolean;
}

export function registerHostCommands(program: Command, ctx: Ctx): void {
  const host = program.command('host').description('manage the agents this CLI knows (the hosts file)');

  withJsonOption(
    host
      .command('add')
      .description('add an agent: checks its certificate (pin) and the token before saving')
      .argument('<name>', 'a short name for the server, e.g. web-1')
      .argument('<url>', 'the agent API, wss://HOST:PORT (or HOST:PORT)')
      .requiredOption('--token <token>', 'an API token (`deckhand-agent token create` on the server)')
      .option('--fingerprint <sha256>', 'the certificate fingerprint to pin, as shown by the installer'),
  ).action((name: string, url: string, opts: AddOptions) => addHost(ctx, name, url, opts));

  withJsonOption(host.command('list').description('list the hosts (never the tokens)')).action((opts: { json?: boolean }) => listHosts(ctx, opts));

  withJsonOption(host.command('remove').description('forget a host').argument('<name>')).action((name: string, opts: { json?: boolean }) => removeHost(ctx, name, opts));
}

async function addHost(ctx: Ctx, name: string, urlText: string, opts: AddOptions): Promise<void> {
  const { io } = ctx;
  validateHostName(name);
  const url = parseApiUrl(urlText);
  if (opts.token.trim() === '') throw new CliError('--token is empty', EXIT.usage);
  const pinned = opts.fingerprint !== undefined ? parseFingerprintOption(opts.fingerprint) : undefined;
  const path = hostsFilePath(io.env);
  if (Object.hasOwn(readHostsFile(path).hosts, name)) {
    throw new CliError(`host "${name}" already exists in ${path}; remove it first with \`deckhand host remove ${name}\``, EXIT.usage);
  }

  // 'new': messages must not suggest removing a host that was never saved.
  const label: TargetLabel = { name, url: url.href, source: 'new' };
  const fingerprint = pinned ?? (await decideTrust(ctx, label));
  const target: Target = { ...label, token: opts.token, ...(fingerprint ? { fingerprint } : {}) };

  // Prove the pin and the token before saving: a host in the file works.
  await withClient(target, async () => {});

  // Read again: another deckhand may have written meanwhile; keep its hosts.
  const file = readHostsFile(path);
  if (Object.hasOwn(file.hosts, name)) throw new CliError(`host "${name}" was added meanwhile; remove it first with \`deckhand host remove ${name}\``, EXIT.usage);
  const entry: HostEntry = { url: url.href, token: opts.token, ...(fingerprint ? { fingerprint } : {}) };
  file.hosts[name] = entry;
  writeHostsFile(path, file);

  if (opts.json) {
    printJson(io, { name, url: entry.url, fingerprint: entry.fingerprint ?? null, pinned: entry.fingerprint !== undefined });
    return;
  }
  const how = fingerprint ? `certificate pinned: ${formatFingerprint(fingerprint)}` : 'certificate verified by a trusted CA (no pin)';
  io.stdout.write(`added ${name} (${entry.url}), ${how}\n`);
}

/** The fingerprint to pin, or undefined when a trusted CA vouches for the certificate. */
async function decideTrust(ctx: Ctx, label: TargetLabel): Promise<string | undefined> {
  const { io, err: p } = ctx;
  const cert = await probeCertificate(label);
  if (cert.authorized) return undefined;

  const shown = formatFingerprint(cert.fingerprint);
  note(ctx, describeCertificate(label, cert, shown));
  if (!canPrompt(io)) {
    throw new CliError(
      `not added: the certificate of ${label.url} is not one a trusted CA vouches for, and there is no terminal to ask on.\n` +
        `If \`${SERVER_FINGERPRINT_COMMAND}\` on the server shows ${shown}, run the same command again with\n` +
        `  --fingerprint ${shown}`,
      EXIT.usage,
      'fingerprint not confirmed',
      undefined,
      { fingerprint: cert.fingerprint },
    );
  }
  note(ctx, p.dim(`Compare it with \`${SERVER_FINGERPRINT_COMMAND}\` on the server (or the installer's output).`));
  if (!(await confirm(io, 'Trust this certificate? [y/N] '))) throw new CliError(`not added: certificate of ${label.url} not trusted`, EXIT.failed, 'not trusted');
  return cert.fingerprint;
}

function describeCertificate(label: TargetLabel, cert: PeerCertificate, shown: string): string {
  return [
    `The agent at ${label.url} presents a certificate no trusted CA vouches for (${cert.authorizationError ?? 'unknown issuer'}):`,
    `  subject:     ${cert.subject || '-'}`,
    `  issuer:      ${cert.issuer || '-'}`,
    `  valid:       ${cert.validFrom} to ${cert.validTo}`,
    `  fingerprint: ${shown}`,
  ].join('\n');
}

function listHosts(ctx: Ctx, opts: { json?: boolean }): void {
  const { io } = ctx;
  const path = hostsFilePath(io.env);
  const hosts = Object.entries(readHostsFile(path).hosts).sort(([a], [b]) => a.localeCompare(b));
  if (opts.json) {
    printJson(io, { file: path, hosts: hosts.map(([name, h]) => ({ name, url: h.url, fingerprint: h.fingerprint ?? null, pinned: h.fingerprint !== undefined })) });
    return;
  }
  if (hosts.length === 0) {
    note(ctx, `no hosts in ${path}; add one with \`deckhand host add NAME wss://HOST:7443 --token TOKEN\``);
    return;
  }
  const rows = hosts.map(([name, h]) => [name, h.url, h.fingerprint ? shortFingerprint(h.fingerprint) : 'trusted CA (no pin)']);
  io.stdout.write(renderTable(rows, { header: ['NAME', 'URL', 'CERTIFICATE'], headerStyle: ctx.out.bold }));
}

/** Enough of the fingerprint to tell hosts apart in a list; `--json` has all of it. */
function shortFingerprint(hex: string): string {
  const full = formatFingerprint(hex);
  return `${full.slice(0, 'SHA256:'.length + 11)}…${full.slice(-11)}`;
}

function removeHost(ctx: Ctx, name: string, opts: { json?: boolean }): void {
  const { io } = ctx;
  const path = hostsFilePath(io.env);
  const file = readHostsFile(path);
  if (!Object.hasOwn(file.hosts, name)) {
    const known = Object.keys(file.hosts);
    throw new CliError(`no host named "${name}" in ${path} (${known.length > 0 ? `known: ${known.join(', ')}` : 'none configured'})`, EXIT.usage);
  }
  delete file.hosts[name];
  writeHostsFile(path, file);
  if (opts.json) printJson(io, { removed: name });
  else io.stdout.write(`removed ${name}\n`);
}
