// Colour only on a terminal, never with NO_COLOR (https://no-color.org) or
// TERM=dumb: piped output and CI logs stay plain text.
import type { OutStream } from '../io.js';

export interface Palette {
  readonly enabled: boolean;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  blue(text: string): string;
  magenta(text: string): string;
  cyan(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

export function colourEnabled(stream: Pick<OutStream, 'isTTY'>, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.TERM === 'dumb') return false;
  return stream.isTTY;
}

const sgr = (open: number, close: number) => (text: string) => `\x1b[${open}m${text}\x1b[${close}m`;
const plain = (text: string) => text;

export function palette(enabled: boolean): Palette {
  if (!enabled) {
    return { enabled, red: plain, green: plain, yellow: plain, blue: plain, magenta: plain, cyan: plain, dim: plain, bold: plain };
  }
  return {
    enabled,
    red: sgr(31, 39),
    green: sgr(32, 39),
    yellow: sgr(33, 39),
    blue: sgr(34, 39),
    magenta: sgr(35, 39),
    cyan: sgr(36, 39),
    dim: sgr(2, 22),
    bold: sgr(1, 22),
  };
}

const ANSI = /\x1b\[[0-9;]*m/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/** Columns a string takes on screen: escape codes take none, a code point takes one. */
export function visibleLength(text: string): number {
  return [...stripAnsi(text)].length;
}

/** The colour for a check or health status. */
export function statusColour(p: Palette, status: string): (text: string) => string {
  switch (status) {
    case 'pass':
    case 'healthy':
    case 'running':
      return p.green;
    case 'warn':
    case 'starting':
      return p.yellow;
    case 'fail':
    case 'unhealthy':
    case 'exited':
    case 'dead':
      return p.red;
    default:
      return plain;
  }
}
