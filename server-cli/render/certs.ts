// How certificates read on screen: the `deckhand certs` table (days left,
// the next renewal and why: the CA's ARI window or the lifetime rule, the
// last error under a failing one) and the line a renewal ends with.
import type { CertificateInfo, CertListResult } from '../../agent/api/protocol.js';
import { type Palette, statusColour } from './colour.js';
import { renderTable } from './table.js';
import { relativeTime } from './time.js';

const WHY: Record<string, string> = {
  ari: "the CA's ARI window",
  lifetime: 'lifetime rule',
  override: 'renewBefore',
  urgent: 'under 1/20 left',
  missing: 'not issued yet',
  changed: 'config changed',
};

export function daysCell(p: Palette, c: CertificateInfo): string {
  if (c.daysLeft === undefined) return p.dim('-');
  const text = `${c.daysLeft.toFixed(1)} d`;
  return c.check === 'fail' ? p.red(p.bold(text)) : c.check === 'warn' ? p.yellow(text) : text;
}

export function nextCell(c: CertificateInfo, now: number): string {
  if (c.renewing) return 'renewing now';
  if (!c.nextRenewal) return '-';
  const when = Date.parse(c.nextRenewal) <= now ? 'due now' : relativeTime(c.nextRenewal, now);
  const why = c.backoffUntil ? `backoff after ${c.failures} failure${c.failures === 1 ? '' : 's'}` : (WHY[c.reason ?? ''] ?? c.reason ?? '');
  return why ? `${when} (${why})` : when;
}

export function renderCerts(p: Palette, result: CertListResult, now: number): string {
  const rows: string[][] = [];
  for (const c of result.certificates) {
    rows.push([p.bold(c.name), c.domains.join(', '), daysCell(p, c), c.notAfter ? c.notAfter.slice(0, 10) : '-', nextCell(c, now), statusColour(p, c.check)(c.check)]);
    if (c.lastError) rows.push([`  ${p.red('last error')} ${c.lastAttempt ? relativeTime(c.lastAttempt.at, now) : ''}: ${c.lastError}`]);
    if (c.probe && !c.probe.ok) rows.push([`  ${p.yellow('served')}: ${c.probe.detail}`]);
    if (c.issuedFor) rows.push([`  ${p.yellow('issued for')} ${c.issuedFor.join(', ')}: a new order follows the config`]);
  }
  return renderTable(rows, { header: ['NAME', 'DOMAINS', 'LEFT', 'EXPIRES', 'NEXT RENEWAL', 'CHECK'].map((h) => p.dim(h)) });
}

export function renderRenewEnd(p: Palette, c: CertificateInfo, now: number): string {
  return `${p.green('renewed')} ${p.bold(c.name)}: serial ${c.serial ?? '?'}, valid until ${c.notAfter ?? '?'}; next renewal ${nextCell(c, now)}\n`;
}
