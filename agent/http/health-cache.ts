// /health is read far more often than the state behind it changes, so the
// document is serialized once and served as bytes until a duty's state
// changes (invalidate()) or the copy is a second old. The age limit is what
// keeps checks that move with time alone true ("restarted within the last
// hour", a certificate's days left): the answer is never staler than that.
import type { OutgoingHttpHeaders } from 'node:http';
import type { CheckStatus } from '../duty.js';
import { answerHeaders } from './answer.js';
import type { HealthDocument } from './health.js';

export const HEALTH_MAX_AGE_MS = 1000;
/** With the charset that fastify used to add to a JSON type sent as a string: the header stays what it was. */
export const HEALTH_TYPE = 'application/health+json; charset=utf-8';

export interface SerializedHealth {
  status: CheckStatus;
  /** SPEC 4: 503 when the document says fail, 200 for pass and warn. */
  httpStatus: 200 | 503;
  body: Buffer;
  headers: OutgoingHttpHeaders;
}

export function serializeHealth(doc: HealthDocument): SerializedHealth {
  const body = Buffer.from(JSON.stringify(doc));
  return { status: doc.status, httpStatus: doc.status === 'fail' ? 503 : 200, body, headers: answerHeaders(HEALTH_TYPE, body) };
}

export class HealthCache {
  private current: SerializedHealth | undefined;
  private builtAt = 0;

  /** `now` is monotonic (performance.now): a wall clock set back must not freeze the copy. */
  constructor(
    private readonly build: () => HealthDocument,
    private readonly maxAgeMs = HEALTH_MAX_AGE_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The document as bytes; rebuilt here, on the read after a change or once it is too old. */
  get(): SerializedHealth {
    const now = this.now();
    if (this.current === undefined || now - this.builtAt >= this.maxAgeMs) {
      this.current = serializeHealth(this.build());
      this.builtAt = now;
    }
    return this.current;
  }

  /**
   * A duty's state changed. The rebuild waits for the next read: a burst of
   * changes (a deploy records many events) then costs one build, not one each.
   */
  invalidate(): void {
    this.current = undefined;
  }
}
