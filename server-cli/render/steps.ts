// Live progress of work made of named steps (a deploy, a rollback). On a
// terminal, each finished step stays as a line with its timing, the running
// step has a spinner and its time so far, and what it waits for shows under
// it; only those last lines are redrawn. Elsewhere, one plain line per
// finished step (`[  0.4s] validate ok`) and each new kind of wait once, so
// CI logs read top to bottom. Under a failed health step come the reasons
// each service gave (exit code, healthcheck output, its last log lines).
import type { DeployEvent } from '../../agent/api/protocol.js';
import type { OutStream } from '../io.js';
import type { Palette } from './colour.js';
import { failureLines } from './failures.js';
import { truncate } from './table.js';
import { formatElapsed } from './time.js';

export interface StepList {
  event(e: DeployEvent): void;
  /**
   * How far the running step is ("dump 412 MiB at 95 MiB/s"): on a terminal
   * a live line under it, replaced by the next; elsewhere a plain line each
   * call (the caller decides how often). Cleared when a step starts or ends.
   */
  progress(text: string): void;
  /** Stops the spinner and erases the live lines; finished steps stay. Later events are ignored. */
  done(): void;
  /** Lines written that stay (finished steps, plain waits). */
  readonly lines: number;
}

export interface StepListOptions {
  stream: OutStream;
  palette: Palette;
  now: () => number;
  /** Spinner frame interval on a terminal. */
  tickMs?: number;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/** Step names are short ("validate", "rollback"); a longer one just pushes its line. */
const NAME_WIDTH = 8;
/** Where a plain line's step name starts: after `[  0.4s] `. */
export const PLAIN_INDENT = ' '.repeat(9);

export function createStepList(opts: StepListOptions): StepList {
  return opts.stream.isTTY ? liveList(opts) : plainList(opts);
}

/** `[  0.4s] validate ok`, `[ 30.0s] health failed: web: healthcheck failing`. */
export function plainStepLine(p: Palette, e: Extract<DeployEvent, { type: 'step' }>): string {
  const seconds = ((e.ms ?? 0) / 1000).toFixed(1).padStart(5);
  return `[${seconds}s] ${e.step} ${statusWord(p, e.status)}${e.detail ? `: ${e.detail}` : ''}`;
}

/** Waits repeat every half second, often with a count that moves ("running 3s of 10s"): print each kind once. */
function waitShape(detail: string): string {
  return detail.replace(/\d+(\.\d+)?/g, '#');
}

function plainList({ stream, palette: p }: StepListOptions): StepList {
  let lastWait = '';
  let lines = 0;
  let ended = false;
  const write = (text: string) => {
    stream.write(`${text}\n`);
    lines++;
  };
  return {
    event(e) {
      if (ended) return;
      if (e.type === 'waiting') {
        const shape = waitShape(e.detail);
        if (shape !== lastWait) write(`${PLAIN_INDENT}${p.dim(`waiting: ${e.detail}`)}`);
        lastWait = shape;
        return;
      }
      if (e.type !== 'step') return;
      lastWait = '';
      if (e.status === 'started') return;
      write(plainStepLine(p, e));
      for (const line of failureLines(p, e.failures ?? [], PLAIN_INDENT)) write(line);
    },
    progress(text) {
      if (!ended) write(`${PLAIN_INDENT}${p.dim(text)}`);
    },
    done() {
      ended = true;
    },
    get lines() {
      return lines;
    },
  };
}

function liveList({ stream, palette: p, now, tickMs = 100 }: StepListOptions): StepList {
  let running: { step: string; since: number } | undefined;
  let waiting: string | undefined;
  let progress: string | undefined;
  /** Live lines on screen; the cursor is at the start of the line below them. */
  let drawn = 0;
  let frame = 0;
  let lines = 0;
  let ended = false;
  const fit = (text: string) => truncate(text, Math.max(10, stream.columns - 1));
  const erase = () => (drawn > 0 ? `\x1b[${drawn}A\x1b[J` : '');
  const live = (): string[] => {
    const out: string[] = [];
    if (running) out.push(`${p.cyan(SPINNER[frame % SPINNER.length]!)} ${running.step.padEnd(NAME_WIDTH)} ${p.dim(formatElapsed(now() - running.since).padStart(6))}`);
    if (progress) out.push(`  ${' '.repeat(NAME_WIDTH)} ${progress}`);
    if (waiting) out.push(`  ${' '.repeat(NAME_WIDTH)} ${p.dim(`waiting: ${waiting}`)}`);
    return out;
  };
  /** One write per change: the live lines erased, what stays, the live lines again. */
  const redraw = (keep: string[] = []) => {
    const next = live();
    stream.write(`${erase()}${[...keep, ...next].map((l) => `${fit(l)}\n`).join('')}`);
    drawn = next.length;
    lines += keep.length;
  };
  const timer = setInterval(() => {
    frame++;
    if (running) redraw();
  }, tickMs);
  timer.unref();

  return {
    event(e) {
      if (ended) return;
      if (e.type === 'waiting') {
        waiting = e.detail;
        redraw();
        return;
      }
      if (e.type !== 'step') return;
      waiting = undefined;
      progress = undefined;
      if (e.status === 'started') {
        running = { step: e.step, since: now() };
        redraw();
        return;
      }
      const ms = e.ms ?? (running?.step === e.step ? now() - running.since : 0);
      if (running?.step === e.step) running = undefined;
      redraw([finishedLine(p, e.step, e.status, ms, e.detail), ...failureLines(p, e.failures ?? [], `  ${' '.repeat(NAME_WIDTH)} `)]);
    },
    progress(text) {
      if (ended) return;
      progress = text;
      redraw();
    },
    done() {
      if (ended) return;
      ended = true;
      clearInterval(timer);
      stream.write(erase());
      drawn = 0;
    },
    get lines() {
      return lines;
    },
  };
}

function finishedLine(p: Palette, step: string, status: 'started' | 'ok' | 'failed' | 'skipped', ms: number, detail: string | undefined): string {
  const time = p.dim(formatElapsed(ms).padStart(6));
  const name = step.padEnd(NAME_WIDTH);
  switch (status) {
    case 'failed':
      return `${p.red('✗')} ${name} ${time}  ${p.red(detail ?? 'failed')}`;
    case 'skipped':
      return `${p.dim('-')} ${p.dim(name)} ${' '.repeat(6)}  ${p.dim(detail ? `skipped: ${detail}` : 'skipped')}`;
    default:
      return `${p.green('✓')} ${name} ${time}${detail ? `  ${p.dim(detail)}` : ''}`;
  }
}

function statusWord(p: Palette, status: string): string {
  if (status === 'ok') return p.green('ok');
  if (status === 'failed') return p.red('failed');
  if (status === 'skipped') return p.dim('skipped');
  return status;
}
