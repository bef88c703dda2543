// List replies page by count and by bytes (SPEC: at most `limit` items and at
// most 4 MiB; `next` when more remain, passed back as `cursor`). Items are
// measured as they are taken from an iterator, so a list is never built
// beyond one page, whatever the rows hold.

/** SPEC: no reply exceeds 4 MiB. */
export const REPLY_BUDGET_BYTES = 4 << 20;
/** Room left for the JSON-RPC envelope and `next`. */
const ENVELOPE_BYTES = 4096;

export interface Page<T> {
  items: T[];
  /** The cursor of the next page, when more remain. */
  next?: string;
}

/**
 * Takes items until `limit`, or until one more would pass the byte budget.
 * `cursorOf(item)` is what the next page starts after.
 */
export function takePage<T>(items: Iterable<T>, limit: number, cursorOf: (item: T) => string, budget = REPLY_BUDGET_BYTES - ENVELOPE_BYTES): Page<T> {
  const page: T[] = [];
  let bytes = 2; // []
  for (const item of items) {
    const size = Buffer.byteLength(JSON.stringify(item)) + 1;
    if (page.length >= limit || bytes + size > budget) {
      // One item is always room for: an item too large for a page on its own
      // is the producer's bug (rows are capped when written and read).
      if (page.length === 0) throw new Error(`a list item of ${size} bytes exceeds the reply budget`);
      return { items: page, next: cursorOf(page[page.length - 1]!) };
    }
    page.push(item);
    bytes += size;
  }
  return { items: page };
}

/** Items transformed as they are taken (a page never maps more than it keeps, plus one). */
export function* mapped<A, B>(items: Iterable<A>, f: (a: A) => B): Generator<B> {
  for (const a of items) yield f(a);
}
