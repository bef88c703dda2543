// The audit log: events of type "audit", each holding the SHA-256 of the one
// before it, plus a head row with the last hash and the count. Changing or
// removing any entry, or the newest ones, breaks the chain that `verify`
// walks. Writers (the agent, and `deckhand-agent token` on the same file)
// append inside an IMMEDIATE transaction so two can never fork the chain.
import { createHash } from 'node:crypto';
import type { Db } from '../store/db.js';
import type { Severity } from './catalog.js';
import { toEvent, type EventLog, type EventRow, type StoredEvent } from './log.js';

export const GENESIS = '0'.repeat(64);

export interface AuditEntry {
  actor: string;
  address: string;
  /** What was done: a method name, "auth", "token.create" ... */
  action: string;
  ok: boolean;
  message: string;
  data?: Record<string, unknown>;
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

  append(entry: AuditEntry): StoredEvent {
    const severity: Severity = entry.ok ? 'info' : 'warning';
    const row = {
      ts: Date.now(),
      type: 'audit',
      severity,
      subject: entry.action,
      message: entry.message,
      data: JSON.stringify({ ok: entry.ok, ...entry.data }),
      actor: entry.actor,
      address: entry.address,
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

export type VerifyResult = { ok: true; entries: number } | { ok: false; entries: number; badId: number | null; reason: string };

/** Walks the chain from the first entry; names the first entry that does not fit. */
export function verifyAudit(db: Db): VerifyResult {
  const rows = db.prepare('SELECT * FROM events WHERE hash IS NOT NULL ORDER BY id').iterate() as IterableIterator<ChainRow>;
  let prev = GENESIS;
  let count = 0;
  let lastId = 0;
  for (const row of rows) {
    if (row.type !== 'audit') return { ok: false, entries: count, badId: row.id, reason: `entry ${row.id} is not an audit entry but carries a hash` };
    if (row.prev_hash !== prev) {
      return { ok: false, entries: count, badId: row.id, reason: `entry ${row.id} does not follow the entry before it (an entry before it was changed or removed)` };
    }
    if (entryHash(prev, row) !== row.hash) return { ok: false, entries: count, badId: row.id, reason: `entry ${row.id} was changed after it was written` };
    prev = row.hash;
    count++;
    lastId = row.id;
  }
  // Audit rows whose hash was wiped stop being chained: they would be found as gaps above,
  // unless they were the newest; the head row catches that and a removed tail.
  const head = db.prepare('SELECT last_id, hash, count FROM audit_head WHERE one = 1').get() as { last_id: number; hash: string; count: number } | undefined;
  const unchained = db.prepare("SELECT min(id) FROM events WHERE type = 'audit' AND hash IS NULL").pluck().get() as number | null;
  if (unchained !== null) return { ok: false, entries: count, badId: unchained, reason: `entry ${unchained} lost its hash` };
  if (!head) return count === 0 ? { ok: true, entries: 0 } : { ok: false, entries: count, badId: null, reason: 'the audit head record is missing' };
  if (head.count !== count || head.hash !== prev || head.last_id !== lastId) {
    return { ok: false, entries: count, badId: head.last_id, reason: `the newest entries were removed or changed: the head says ${head.count} entries ending at entry ${head.last_id}, the chain has ${count} ending at entry ${lastId}` };
  }
  return { ok: true, entries: count };
}
