// Conditions are alert states (disk.low on "/", service.crashloop on "web").
// An event fires only when one starts or clears, never on every check, and
// the open set is kept in the database so a restart does not fire it again.
import type { Db } from '../store/db.js';
import type { ConditionType, Severity } from './catalog.js';
import type { EventLog } from './log.js';

export interface OpenCondition {
  type: ConditionType;
  subject: string;
  since: number;
  eventId: number;
}

export class Conditions {
  private readonly open = new Map<string, OpenCondition>();
  private readonly db: Db;

  constructor(private readonly log: EventLog) {
    this.db = log.db;
    const rows = this.db.prepare('SELECT type, subject, since, event_id AS eventId FROM open_conditions').all() as OpenCondition[];
    for (const r of rows) this.open.set(key(r.type, r.subject), r);
  }

  isOpen(type: ConditionType, subject: string): boolean {
    return this.open.has(key(type, subject));
  }

  /** Raises the condition; records an event only if it was not already open. */
  raise(type: ConditionType, subject: string, severity: Severity, message: string, data?: Record<string, unknown>): boolean {
    const k = key(type, subject);
    if (this.open.has(k)) return false;
    const event = this.log.record({ type, severity, subject, message, ...(data ? { data } : {}) }, (saved) => {
      this.db.prepare('INSERT OR REPLACE INTO open_conditions (type, subject, since, event_id) VALUES (?, ?, ?, ?)').run(type, subject, saved.ts, saved.id);
    });
    this.open.set(k, { type, subject, since: event.ts, eventId: event.id });
    return true;
  }

  /** Clears the condition; records `<type>.resolved` only if it was open. */
  clear(type: ConditionType, subject: string, message: string, data?: Record<string, unknown>): boolean {
    const k = key(type, subject);
    if (!this.open.has(k)) return false;
    this.log.record({ type: `${type}.resolved`, severity: 'info', subject, message, ...(data ? { data } : {}) }, () => {
      this.db.prepare('DELETE FROM open_conditions WHERE type = ? AND subject = ?').run(type, subject);
    });
    this.open.delete(k);
    return true;
  }

  /** Sets the condition to `active`, raising or clearing as needed. */
  set(active: boolean, type: ConditionType, subject: string, severity: Severity, message: string, data?: Record<string, unknown>): void {
    if (active) this.raise(type, subject, severity, message, data);
    else this.clear(type, subject, message, data);
  }

  list(): OpenCondition[] {
    return [...this.open.values()];
  }
}

const key = (type: string, subject: string) => `${type}\u0000${subject}`;
