// Certificate fingerprints as the operator sees them. Stored as 64 lowercase
// hex digits (normalizeFingerprint); shown as `SHA256:AB:CD:...`, the same
// digits `openssl x509 -noout -fingerprint -sha256` prints on the server, so
// the two can be compared by eye.
import { createHash } from 'node:crypto';
import { normalizeFingerprint } from '../agent/api/protocol.js';
import { CliError, EXIT } from './errors.js';

export function fingerprintOf(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

export function formatFingerprint(hex: string): string {
  return `SHA256:${(hex.toUpperCase().match(/../g) ?? []).join(':')}`;
}

/** Parses a fingerprint given by the operator; colons, case and a leading `SHA256:` are ignored. */
export function parseFingerprintOption(text: string, where = '--fingerprint'): string {
  const hex = normalizeFingerprint(text);
  if (!hex) {
    throw new CliError(`${where}: "${text}" is not a SHA-256 fingerprint (64 hex digits, colons and a leading SHA256: allowed)`, EXIT.usage);
  }
  return hex;
}

/** The command an operator runs on the server to read the fingerprint there. */
export const SERVER_FINGERPRINT_COMMAND = 'openssl x509 -noout -fingerprint -sha256 -in /etc/deckhand/api.crt';
