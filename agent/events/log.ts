// The events table and the bus on top of it: an event is written first and
// only then handed to listeners (alerts, API streams), so it is kept whether
// or not any webhook answers.
import type { Db } from '../store/db.js';
import { migrate } from '../store/db.js';
import type { EventType, Severity } from './catalog.js';

export interface NewEvent {
  type: EventType;
  severity: Severity;
  /** What the event is about: a service, a certificate, a mount point. */
  subject?: string;
  message: string;
  data?: Record<string, unknown>;
}

export interface StoredEvent extends NewEvent {
  id: number;
  ts: number;
  /** Audit entries: who (token name, or "local") and from where. */
  actor?: string;
  address?: string;
}

export type EventListener = (event: StoredEvent) => void;

const MIGRATIONS = [
  {
    version: 1,
    sql: `CREATE TABLE events (
      id INTEGER PRIMARY KEY,
      ts INTEGER NOT NULL,
      type TEXT NOT NULL,
      severity TEXT NOT NULL,
      subject TEXT,
      message TEXT NOT NULL,
      data TEXT
    );
    CREATE INDEX events_ts ON events (ts);
    CREATE INDEX events_type_ts ON events (type, ts);
    CREATE TABLE open_conditions (
      type TEXT NOT NULL,
      subject TEXT NOT NULL,
      since INTEGER NOT NULL,
      event_id INTEGER NOT NULL,
      PRIMARY KEY (type, subject)
    ) WITHOUT ROWID;`,
  },
  {
    // Audit entries are events of type "audit", hash-chained (see audit.ts).
    version: 2,
    sql: `ALTER TABLE events ADD COLUMN actor TEXT;
    ALTER TABLE events ADD COLUMN address TEXT;
    ALTER TABLE events ADD COLUMN prev_hash TEXT;
    ALTER TABLE events ADD COLUMN hash TEXT;
    CREATE INDEX events_audit ON events (id) WHERE hash IS NOT NULL;
    CREATE TABLE audit_head (one INTEGER PRIMARY KEY CHECK (one = 1), last_id INTEGER NOT NULL, hash TEXT NOT NULL, count INTEGER NOT NULL);`,
  },
  {
    // Retention. The partial index lets the events prune walk only the rows it
    // may delete, never the audit entries it keeps for longer; the anchor is
    // the last pruned audit entry, which the oldest kept one must follow.
    version: 3,
    sql: `CREATE INDEX events_unchained_ts ON events (ts) WHERE hash IS NULL;
    CREATE TABLE audit_anchor (one INTEGER PRIMARY KEY CHECK (one = 1), last_id INTEGER NOT NULL, last_ts INTEGER NOT NULL, hash TEXT NOT NULL, pruned INTEGER NOT NULL);`,
  },
];

/** SPEC: events are kept 90 days (audit entries have their own rule, see audit.ts). */
export const EVENT_RETENTION_MS = 90 * 24 * 3600_000;

export interface EventRow {
  id: number;
  ts: number;
  type: string;
  severity: string;
  subject: string | null;
  message: string;
  data: string | null;
  actor: string | null;
  address: string | null;
}

export class EventLog {
  private readonly listeners = new Set<EventListener>();
  private readonly insert;

  private readonly deleteOld;

  constructor(
    readonly db: Db,
    private readonly onListenerError: (err: unknown) => void = () => {},
    /** The clock events are stamped with (tests pass their own). */
    readonly now: () => number = Date.now,
  ) {
    migrate(db, 'events', MIGRATIONS);
    this.insert = db.prepare('INSERT INTO events (ts, type, severity, subject, message, data) VALUES (?, ?, ?, ?, ?, ?)');
    // An open condition's event stays however old it is: status.get shows
    // what raised the alert for as long as the alert is open.
    this.deleteOld = db.prepare(
      `DELETE FROM events WHERE id IN (
         SELECT id FROM events INDEXED BY events_unchained_ts
         WHERE hash IS NULL AND ts < ? AND type <> 'audit' AND id NOT IN (SELECT event_id FROM open_conditions)
         LIMIT ?)`,
    );
  }

  /** Deletes up to `limit` events older than the retention; returns how many. */
  pruneBatch(nowMs: number, limit: number): number {
    return this.deleteOld.run(nowMs - EVENT_RETENTION_MS, limit).changes;
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Writes the event (and `alsoWrite`, in the same transaction), then tells
   * the listeners: they only ever see events that are committed.
   */
  record(event: NewEvent, alsoWrite?: (stored: StoredEvent) => void): StoredEvent {
    const ts = this.now();
    const stored = this.db.transaction(() => {
      const info = this.insert.run(ts, event.type, event.severity, event.subject ?? null, event.message, event.data ? JSON.stringify(event.data) : null);
      const saved: StoredEvent = { ...event, id: Number(info.lastInsertRowid), ts };
      alsoWrite?.(saved);
      return saved;
    })();
    this.notify(stored);
    return stored;
  }

  /** Tells the listeners of an event written elsewhere (the audit log writes its own rows). */
  notify(stored: StoredEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(stored);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  }

  byIds(ids: readonly number[]): StoredEvent[] {
    const stmt = this.db.prepare('SELECT * FROM events WHERE id = ?');
    return ids.flatMap((id) => {
      const row = stmt.get(id) as EventRow | undefined;
      return row ? [toEvent(row)] : [];
    });
  }

  list(query: { since?: number; type?: string; limit?: number } = {}): StoredEvent[] {
    const out: StoredEvent[] = [];
    const limit = Math.min(query.limit ?? 100, 1000);
    for (const e of this.iterate(query)) {
      if (out.length >= limit) break;
      out.push(e);
    }
    return out;
  }

  /**
   * Events newest first, from `before` (an id, exclusive) down, read one row
   * at a time. A row's message and data are read only up to READ_CAP: rows
   * written before entries were capped can be megabytes, and a list must
   * never load them whole.
   */
  *iterate(query: { since?: number; type?: string; before?: number } = {}): Generator<StoredEvent> {
    const rows = this.db
      .prepare(
        `SELECT id, ts, type, severity, subject, actor, address,
                substr(message, 1, ${READ_CAP.message}) AS message, length(message) AS message_length,
                CASE WHEN length(data) <= ${READ_CAP.data} THEN data END AS data, length(data) AS data_length
         FROM events WHERE id < ? AND ts >= ? AND (? IS NULL OR type = ? OR type LIKE ? || '.%') ORDER BY id DESC`,
      )
      .iterate(query.before ?? Number.MAX_SAFE_INTEGER, query.since ?? 0, query.type ?? null, query.type ?? null, query.type ?? null) as IterableIterator<
      EventRow & { message_length: number; data_length: number | null }
    >;
    for (const row of rows) {
      const event = toEvent(row);
      if (row.message_length > READ_CAP.message) event.message += `… (${row.message_length} characters)`;
      if (row.data === null && row.data_length !== null) event.data = { truncated: true, bytes: row.data_length };
      yield event;
    }
  }
}

/** How much of one stored row a list reads (entries written now are far smaller: see audit.ts). */
export const READ_CAP = { message: 2000, data: 16_384 };

export function toEvent(row: EventRow): StoredEvent {
  return {
    id: row.id,
    ts: row.ts,
    type: row.type as EventType,
    severity: row.severity as Severity,
    ...(row.subject === null ? {} : { subject: row.subject }),
    message: row.message,
    ...(row.data === null ? {} : { data: JSON.parse(row.data) as Record<string, unknown> }),
    ...(row.actor === null ? {} : { actor: row.actor }),
    ...(row.address === null ? {} : { address: row.address }),
  };
}
