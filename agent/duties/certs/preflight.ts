// What the certificates duty will need from the box, looked at before it
// runs: the webroot the token files go to, the dns-01 hook, the caBundle.
// These are warnings, not refusals: a webroot that is missing today fails
// the next order (alert, /health), but must not keep the agent from
// supervising the stack. check-config prints them; run logs them at start.
import { accessSync, constants, statSync } from 'node:fs';
import { agentIdentity } from '../../identity.js';
import type { CertsConfig } from './config.js';

type Kind = 'dir' | 'file';

function problemWith(key: string, path: string, kind: Kind, access: number, needs: string): string | undefined {
  const me = agentIdentity().user;
  try {
    const st = statSync(path);
    if (kind === 'dir' && !st.isDirectory()) return `${key}: ${path} is not a directory`;
    if (kind === 'file' && !st.isFile()) return `${key}: ${path} is not a regular file`;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return `${key}: ${path} does not exist`;
    return `${key}: cannot inspect ${path}: ${code ?? (err as Error).message}`;
  }
  try {
    accessSync(path, access);
    return undefined;
  } catch {
    return `${key}: ${path} is not ${needs} by user ${me}`;
  }
}

export function certsPreflightWarnings(certs: CertsConfig | undefined): string[] {
  if (!certs || certs.certificates.length === 0) return [];
  const c = certs.challenge;
  const found = [
    c.webroot ? problemWith('certs.challenge.webroot', c.webroot, 'dir', constants.W_OK | constants.X_OK, 'writable') : undefined,
    c.type === 'dns-01' && c.hook ? problemWith('certs.challenge.hook', c.hook, 'file', constants.X_OK, 'executable') : undefined,
    certs.caBundle ? problemWith('certs.caBundle', certs.caBundle, 'file', constants.R_OK, 'readable') : undefined,
  ];
  return found.filter((p): p is string => p !== undefined).map((p) => `${p}; certificate orders will fail until it is fixed`);
}
