// The audit log: events of type "audit", each holding the SHA-256 of the one
// before it, plus a head row with the last hash and the count. Changing or
// removing any entry, or the newest ones, breaks the chain that `verify`
// walks. Writers (the agent, and `deckhand-agent token` on the same file)
// append inside an IMMEDIATE transaction so two can never fork the chain.
// Entries are kept 400 days: the oldest are pruned as a prefix of the chain,
// and the hash of the last one pruned stays behind as the anchor that the
// oldest kept entry must follow, so the chain still proves itself.
import { createHash } from 'node:crypto';
import type { Db } from '../store/db.js';
import type { Severity } from './catalog.js';
import { toEvent, type EventLog, type EventRow, type StoredEvent } from './log.js';

export const GENESIS = '0'.repeat(64);

/** SPEC: audit entries are kept 400 days. */
export const AUDIT_RETENTION_MS = 400 * 24 * 3600_000;

/** The last pruned entry: the chain's starting point once entries are pruned. */
export interface AuditAnchor {
  lastId: number;
  lastTs: number;
  hash: string;
  /** Entries pruned so far, all told. */
  pruned: number;
}

export interface AuditEntry {
  actor: string;
  address: string;
  /** What was done: a method name, "auth", "token.create" ... */
  action: string;
  ok: boolean;
  message: string;
  data?: Record<string, unknown>;
}

/**
 * What one entry may hold, so no caller can make the log grow by its input:
 * well under 8 KiB an entry, whatever was refused and why.
 */
export const AUDIT_CAP = { message: 1000, data: 4096 };

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}

/** The entry's data as JSON, or, past the cap, what kind of data it was and how big. */
function cappedData(ok: boolean, data: Record<string, unknown> | undefined): string {
  const full = JSON.stringify({ ok, ...data });
  if (Buffer.byteLength(full) <= AUDIT_CAP.data) return full;
  const keys = Object.keys(data ?? {}).slice(0, 20).map((k) => cut(k, 64));
  return JSON.stringify({ ok, truncated: true, bytes: Buffer.byteLength(full), keys });
}

interface ChainRow extends EventRow {
  prev_hash: string;
  hash: string;
}

/** The hash of one entry: its content and the previous hash, in a fixed order. */
export function entryHash(prev: string, row: Pick<EventRow, 'ts' | 'type' | 'severity' | 'subject' | 'message' | 'data' | 'actor' | 'address'>): string {
  const content = JSON.stringify([prev, row.ts, row.type, row.severity, row.subject, row.message, row.data, row.actor, row.address]);
  return createHash('sha256').update(content).digest('hex');
}

export class AuditLog {
  private readonly db: Db;

  constructor(private readonly events: EventLog) {
    this.db = events.db;
  }

  /** Prunes one batch of entries past the retention; see pruneAuditBatch. */
  pruneBatch(nowMs: number, limit: number): number {
    return pruneAuditBatch(this.db, nowMs, limit);
  }

  append(entry: AuditEntry): StoredEvent {
    const severity: Severity = entry.ok ? 'info' : 'warning';
    const row = {
      ts: this.events.now(),
      type: 'audit',
      severity,
      subject: cut(entry.action, 64),
      message: cut(entry.message, AUDIT_CAP.message),
      data: cappedData(entry.ok, entry.data),
      actor: cut(entry.actor, 128),
      address: cut(entry.address, 64),
    };
    const stored = this.db
      .transaction(() => {
        const head = this.db.prepare('SELECT hash, count FROM audit_head WHERE one = 1').get() as { hash: string; count: number } | undefined;
        const prev = head?.hash ?? GENESIS;
        const hash = entryHash(prev, row);
        const info = this.db
          .prepare('INSERT INTO events (ts, type, severity, subject, message, data, actor, address, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
          .run(row.ts, row.type, row.severity, row.subject, row.message, row.data, row.actor, row.address, prev, hash);
        const id = Number(info.lastInsertRowid);
        this.db.prepare('INSERT OR REPLACE INTO audit_head (one, last_id, hash, count) VALUES (1, ?, ?, ?)').run(id, hash, (head?.count ?? 0) + 1);
        return toEvent({ id, ...row });
      })
      .immediate();
    this.events.notify(stored);
    return stored;
  }
}

export function readAnchor(db: Db): AuditAnchor | undefined {
  return db.prepare('SELECT last_id AS lastId, last_ts AS lastTs, hash, pruned FROM audit_anchor WHERE one = 1').get() as AuditAnchor | undefined;
}

export class AuditChainBroken extends Error {}

/**
 * Deletes up to `limit` of the oldest entries older than the retention, and
 * moves the anchor to the last one, in one transaction. Only a prefix of the
 * chain goes (an entry stamped old after a newer one waits for it), and each
 * entry is checked as it goes: a broken chain is never pruned away, it stays
 * for `audit verify` to name, and the prune stops with AuditChainBroken.
 */
export function pruneAuditBatch(db: Db, nowMs: number, limit: number): number {
  const cutoff = nowMs - AUDIT_RETENTION_MS;
  return db
    .transaction(() => {
      const anchor = readAnchor(db);
      const rows = db.prepare('SELECT * FROM events WHERE hash IS NOT NULL ORDER BY id LIMIT ?').all(limit) as ChainRow[];
      let prev = anchor?.hash ?? GENESIS;
      let last: ChainRow | undefined;
      let count = 0;
      for (const row of rows) {
        if (row.ts >= cutoff) break;
        const problem = chainProblem(row, prev);
        if (problem) throw new AuditChainBroken(`audit entries not pruned: ${problem}; run deckhand-agent audit verify`);
        prev = row.hash;
        last = row;
        count++;
      }
      if (!last) return 0;
      db.prepare('DELETE FROM events WHERE hash IS NOT NULL AND id <= ?').run(last.id);
      db.prepare('INSERT OR REPLACE INTO audit_anchor (one, last_id, last_ts, hash, pruned) VALUES (1, ?, ?, ?, ?)').run(last.id, last.ts, last.hash, (anchor?.pruned ?? 0) + count);
      return count;
    })
    .immediate();
}

/** Why `row` does not follow an entry whose hash is `prev`, or undefined if it does. */
function chainProblem(row: ChainRow, prev: string): string | undefined {
  if (row.type !== 'audit') return `entry ${row.id} is not an audit entry but carries a hash`;
  if (row.prev_hash !== prev) return `entry ${row.id} does not follow the entry before it (an entry before it was changed or removed)`;
  if (entryHash(prev, row) !== row.hash) return `entry ${row.id} was changed after it was written`;
  return undefined;
}

export type VerifyResult =
  | {
      ok: true;
      /** Entries kept and verified. */
      entries: number;
      /** When the oldest kept entry was written: the chain is proven from there. */
      oldestTs?: number;
      /** Older entries pruned by retention, and the hash they left as anchor. */
      pruned: number;
      anchor?: string;
    }
  | { ok: false; entries: number; badId: number | null; reason: string };

/**
 * Walks the chain from its anchor (or from the start, if nothing was pruned);
 * names the first entry that does not fit.
 */
export function verifyAudit(db: Db): VerifyResult {
  // One read transaction: the chain, the head and the anchor as of one
  // moment, while the agent may be appending (it writes failed logins on a
  // timer) or pruning.
  return db.transaction(() => verifyAuditSnapshot(db))();
}

function verifyAuditSnapshot(db: Db): VerifyResult {
  const anchor = readAnchor(db);
  const rows = db.prepare('SELECT * FROM events WHERE hash IS NOT NULL ORDER BY id').iterate() as IterableIterator<ChainRow>;
  let prev = anchor?.hash ?? GENESIS;
  let count = 0;
  let lastId = anchor?.lastId ?? 0;
  let oldestTs: number | undefined;
  for (const row of rows) {
    const problem = chainProblem(row, prev);
    if (problem) {
      // The oldest kept entry not following the anchor: the ones after the prune were changed or removed.
      const reason = count === 0 && anchor && row.prev_hash !== prev ? `entry ${row.id} does not follow the last pruned entry (anchor ${anchor.hash}): the oldest kept entries were changed or removed` : problem;
      return { ok: false, entries: count, badId: row.id, reason };
    }
    oldestTs ??= row.ts;
    prev = row.hash;
    count++;
    lastId = row.id;
  }
  // Audit rows whose hash was wiped stop being chained: they would be found as gaps above,
  // unless they were the newest; the head row catches that and a removed tail.
  const head = db.prepare('SELECT last_id, hash, count FROM audit_head WHERE one = 1').get() as { last_id: number; hash: string; count: number } | undefined;
  const unchained = db.prepare("SELECT min(id) FROM events WHERE type = 'audit' AND hash IS NULL").pluck().get() as number | null;
  if (unchained !== null) return { ok: false, entries: count, badId: unchained, reason: `entry ${unchained} lost its hash` };
  const pruned = anchor?.pruned ?? 0;
  if (!head) return count === 0 && !anchor ? { ok: true, entries: 0, pruned: 0 } : { ok: false, entries: count, badId: null, reason: 'the audit head record is missing' };
  if (head.count !== pruned + count || head.hash !== prev || head.last_id !== lastId) {
    return {
      ok: false,
      entries: count,
      badId: head.last_id,
      reason: `the newest entries were removed or changed: the head says ${head.count} entries ending at entry ${head.last_id}, the chain has ${pruned + count} ending at entry ${lastId}${pruned ? ` (${pruned} of them pruned)` : ''}`,
    };
  }
  return { ok: true, entries: count, ...(oldestTs === undefined ? {} : { oldestTs }), pruned, ...(anchor ? { anchor: anchor.hash } : {}) };
}

/** The line `audit verify` prints for an intact chain. */
export function describeIntact(result: Extract<VerifyResult, { ok: true }>): string {
  const from = result.oldestTs === undefined ? '' : ` from ${new Date(result.oldestTs).toISOString()}`;
  const pruned = result.pruned > 0 ? `; ${result.pruned} older entries pruned (anchor ${result.anchor})` : '';
  return `audit chain intact: ${result.entries} entries${from}${pruned}`;
}
