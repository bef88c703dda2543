// A duty's long operation as a stream: the duty refuses at once (a domain
// error, answered as a JSON-RPC error), or reports progress, which becomes
// stream notifications, and settles with its outcome, which becomes the end.
import type { Progress } from '../../errors.js';
import type { StreamEnd } from '../protocol.js';
import type { CallContext } from '../rpc.js';

type Final = Omit<StreamEnd, 'type'>;

export function streamOperation<E extends object, T>(
  call: CallContext,
  begin: (progress: Progress<E>, signal: AbortSignal) => Promise<T>,
  end: (outcome: T) => Final,
): { stream: number } {
  const stream = call.openStream();
  let outcome: Promise<T>;
  try {
    outcome = begin((event) => stream.send({ ...(event as Record<string, unknown>) }), stream.signal);
  } catch (err) {
    // Refused before any work: the caller gets the error, and the stream never existed.
    stream.discard();
    throw err;
  }
  outcome.then(
    (o) => stream.end(end(o)),
    (err: unknown) => stream.end({ ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
  return { stream: stream.id };
}
