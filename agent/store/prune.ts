// Retention in small bites: a table with a large backlog (an agent upgraded
// on a box with a year of events) is emptied a batch at a time, each batch in
// its own transaction, yielding to the event loop between batches, so /health
// and the API keep answering while it runs, and a run stops after a budget;
// the next run carries on.

export interface PruneBudget {
  /** Rows per batch (per transaction): what one batch holds the event loop for. */
  batchSize: number;
  /** Batches per run: the most one run deletes is batchSize × maxBatches. */
  maxBatches: number;
}

export const DEFAULT_PRUNE_BUDGET: PruneBudget = { batchSize: 2000, maxBatches: 50 };

/**
 * Calls `deleteBatch(limit)` until it deletes fewer than `limit` rows (nothing
 * left), the budget is spent, or `stopped()` says the agent is stopping.
 * Returns the rows deleted.
 */
export async function pruneInBatches(deleteBatch: (limit: number) => number, budget: PruneBudget = DEFAULT_PRUNE_BUDGET, stopped: () => boolean = () => false): Promise<number> {
  let total = 0;
  for (let batch = 0; batch < budget.maxBatches && !stopped(); batch++) {
    const deleted = deleteBatch(budget.batchSize);
    total += deleted;
    if (deleted < budget.batchSize) break;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return total;
}
