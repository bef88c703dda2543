// Sorting by UTF-16 code units. ISO timestamps and paths sort correctly this
// way, the same on every machine, and String#localeCompare would load an ICU
// collator (and its data pages) into the agent for no benefit.

/** Comparator for Array#sort: a before b when a's code units sort first. */
export function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
