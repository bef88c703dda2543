// Small validated value types shared by every duty's config schema.
// Each one fails with a message an operator can act on; the loader puts the
// key path in front (`metrics.interval: ...`).
import { isAbsolute } from 'node:path';
import { validate as validCron } from 'node-cron';
import * as z from '../validation.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "10s", "5m", "24h", "30d", "1h30m", "0s" into milliseconds; null when malformed. */
export function parseDuration(text: string): number | null {
  const trimmed = text.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(trimmed)) return null;
  let total = 0;
  for (const part of trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) {
    total += Number(part[1]) * (UNIT_MS[part[2]!] ?? 0);
  }
  return Math.round(total);
}

/**
 * A duration string, parsed to milliseconds; zero included. Use it as is
 * where zero turns a window off (stack.deploy.watch: 0s), and positive()
 * where it does not.
 */
export const duration = z.pipe(
  z.string({ error: (i) => `expected a duration like "10s", "5m" or "24h", got ${describe(i.input)}${typeof i.input === 'number' ? ` (a number needs a unit: "${i.input}s")` : ''}` }),
  z.transform((text: string, ctx) => {
    const ms = parseDuration(text);
    if (ms === null) {
      ctx.issues.push({ code: 'custom', message: `invalid duration ${quote(text)} (use a number and a unit: ms, s, m, h, d)`, input: text });
      return z.NEVER;
    }
    return ms;
  }),
);

/** A duration that must be more than zero; `example` shows a sensible one in the message. */
export function positiveDuration(example: string) {
  return duration.check(z.refine((ms: number) => ms > 0, { error: `must be more than 0 (e.g. "${example}")` }));
}

/** `host:port`, `[v6]:port`; port 1-65535. */
export const listenAddress = z.pipe(
  z.string({ error: (i) => `expected "host:port", got ${describe(i.input)}` }),
  z.transform((text: string, ctx) => {
    const parsed = parseListen(text);
    if (!parsed) {
      ctx.issues.push({ code: 'custom', message: `invalid listen address ${quote(text)} (expected host:port, e.g. 127.0.0.1:7070)`, input: text });
      return z.NEVER;
    }
    return parsed;
  }),
);

export interface ListenAddress {
  host: string;
  port: number;
}

export function parseListen(text: string): ListenAddress | null {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+|\*)):(\d{1,5})$/.exec(text.trim());
  if (!match) return null;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return null;
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '*' ? '0.0.0.0' : host, port };
}

export const absolutePath = z.string({ error: (i) => `expected an absolute path, got ${describe(i.input)}` }).check(
  z.refine((p: string) => isAbsolute(p) && !p.includes('\0'), { error: (i) => `must be an absolute path, got ${quote(String(i.input))}` }),
);

export function httpUrl(schemes: readonly string[] = ['http:', 'https:']) {
  return z.string({ error: (i) => `expected a URL, got ${describe(i.input)}` }).check(
    z.refine(
      (text: string) => {
        try {
          return schemes.includes(new URL(text).protocol);
        } catch {
          return false;
        }
      },
      { error: (i) => `invalid URL ${quote(String(i.input))} (expected ${schemes.map((s) => s.replace(':', '')).join(' or ')})` },
    ),
  );
}

export const cronExpression = z.string({ error: (i) => `expected a cron expression, got ${describe(i.input)}` }).check(
  z.refine((expr: string) => validCron(expr), { error: (i) => `invalid cron expression ${quote(String(i.input))}` }),
);

/** A name used in file paths and API params: no traversal, no shell surprises. */
export const safeName = z.string({ error: (i) => `expected a name, got ${describe(i.input)}` }).check(
  z.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, { error: (i) => `invalid name ${quote(String(i.input))} (letters, digits, "_", "-", "." ; at most 63)` }),
);

export const percent = z
  .number({ error: (i) => `expected a number from 1 to 100, got ${describe(i.input)}` })
  .check(z.gte(1, { error: 'must be from 1 to 100' }), z.lte(100, { error: 'must be from 1 to 100' }));

export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return quote(value);
  return clip(String(value));
}

/** The most of one key or value a message echoes: enough to recognise it, never a whole pasted file. */
export const MAX_ECHO = 200;

/** `text`, or its first `max` characters and how long it was. */
export function clip(text: string, max = MAX_ECHO): string {
  if (text.length <= max) return text;
  return `${text.slice(0, cutAt(text, max))}… (${text.length} characters)`;
}

/** `"text"` for a message, clipped like clip() with the length outside the quotes. */
export function quote(text: string, max = MAX_ECHO): string {
  if (text.length <= max) return `"${text}"`;
  return `"${text.slice(0, cutAt(text, max))}…" (${text.length} characters)`;
}

/** `max`, or one less so the cut does not split a surrogate pair into invalid UTF-16. */
function cutAt(text: string, max: number): number {
  const code = text.charCodeAt(max - 1);
  return code >= 0xd800 && code <= 0xdbff ? max - 1 : max;
}
