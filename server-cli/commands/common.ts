// What every command shares: the -H/--json options, the output helpers and
// the exit code a command may set without throwing (status --all prints its
// table and still exits 3 when a host was unreachable).
import type { Command } from 'commander';
import { EXIT, type ExitCode } from '../errors.js';
import type { Io } from '../io.js';
import { colourEnabled, palette, type Palette } from '../render/colour.js';

export interface Ctx {
  io: Io;
  /** Colours for stdout / stderr: each is a terminal, or not, on its own. */
  out: Palette;
  err: Palette;
  exitCode: ExitCode;
}

export function createCtx(io: Io): Ctx {
  return { io, out: palette(colourEnabled(io.stdout, io.env)), err: palette(colourEnabled(io.stderr, io.env)), exitCode: EXIT.ok };
}

export interface CommonOptions {
  host?: string;
  json?: boolean;
}

export function withHostOption(cmd: Command): Command {
  return cmd.option('-H, --host <name>', 'the host to talk to (default: $DECKHAND_HOST, or the only one)');
}

export function withJsonOption(cmd: Command): Command {
  return cmd.option('--json', 'machine-readable output: one JSON document on stdout');
}

export function withCommonOptions(cmd: Command): Command {
  return withJsonOption(withHostOption(cmd));
}

/** How wide a table may be: the terminal's width; piped output is never cut to fit. */
export function terminalWidth(ctx: Ctx): number | undefined {
  return ctx.io.stdout.isTTY ? ctx.io.stdout.columns : undefined;
}

export function printJson(io: Io, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A note for the operator, on stderr so stdout stays what a script captures. */
export function note(ctx: Ctx, text: string): void {
  ctx.io.stderr.write(`${text}\n`);
}
