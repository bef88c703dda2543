// Domain errors: what a duty raises when an operation cannot be done, with
// the reason an operator needs to act. Duties know nothing of JSON-RPC; the
// API (agent/api/rpc.ts) maps each kind to its error code, and a schedule or
// another duty can read the same error as it is.

export type DomainErrorKind = 'not_found' | 'conflict' | 'failed' | 'invalid';

export class DomainError extends Error {
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
    /** Details for the caller (shown by the CLI, carried in --json). */
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

/** The thing named does not exist (a service, a deploy, a series). */
export const notFound = (message: string, details?: unknown) => new DomainError('not_found', message, details);
/** Another operation holds what this one needs (a deploy already running). */
export const conflict = (message: string, details?: unknown) => new DomainError('conflict', message, details);
/** The operation ran and failed; the message says why. */
export const failed = (message: string, details?: unknown) => new DomainError('failed', message, details);
/** The request itself is wrong in a way its schema could not tell (a time range backwards). */
export const invalid = (message: string, details?: unknown) => new DomainError('invalid', message, details);

/**
 * Progress of a long operation (deploy steps, log lines, backup bytes), as
 * plain data. The API forwards each event as a stream notification; a
 * scheduled run logs them or drops them.
 */
export type Progress<E> = (event: E) => void;
