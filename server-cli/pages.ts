// List methods answer a page at a time (at most `limit` items and 4 MiB);
// the CLI asks for the next page with `cursor` until it has what the
// operator asked for, or there is no more.

/** The most one page may hold, by the API's own rule. */
export const PAGE_MAX = 1000;

export interface Fetched<T> {
  items: T[];
  next?: string;
}

export async function followPages<T>(want: number, fetchPage: (limit: number, cursor: string | undefined) => Promise<Fetched<T>>): Promise<Fetched<T>> {
  const items: T[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await fetchPage(Math.min(PAGE_MAX, want - items.length), cursor);
    items.push(...page.items.slice(0, want - items.length));
    // A page that brings nothing new cannot lead anywhere: stop rather than loop.
    if (page.next === undefined || page.items.length === 0) return { items };
    if (items.length >= want) return { items, next: page.next };
    cursor = page.next;
  }
}
