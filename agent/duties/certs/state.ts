// The certificates duty's table: per configured certificate, what must
// outlive a restart so the agent never hammers the CA after one: the failed
// attempts (backoff and the CA's validation limit are computed from them),
// the last attempt and its error, and what the CA's renewalInfo said (the
// window, the point chosen inside it, when to ask again).
import type { Db, Migration } from '../../store/db.js';
import { migrate } from '../../store/db.js';
import type { FailedAttempt } from './backoff.js';
import type { ChosenPoint, Window } from './plan.js';

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    sql: `CREATE TABLE cert_state (
      name TEXT PRIMARY KEY,
      state TEXT NOT NULL
    ) WITHOUT ROWID;`,
  },
];

export interface AriState {
  /** Serial of the certificate the window is for: a new certificate starts afresh. */
  serial: string;
  window?: Window;
  chosen?: ChosenPoint;
  explanationUrl?: string;
  lastFetchAt: number;
  lastFailed: boolean;
  retryAfterMs?: number;
  lastError?: string;
}

export interface ProbeState {
  at: number;
  ok: boolean;
  detail: string;
}

export interface CertState {
  failures: FailedAttempt[];
  lastAttempt?: { at: number; ok: boolean; error?: string; trigger: string };
  lastSuccessAt?: number;
  ari?: AriState;
  probe?: ProbeState;
}

export class CertStateStore {
  constructor(private readonly db: Db) {
    migrate(db, 'certs', MIGRATIONS);
  }

  get(name: string): CertState {
    const row = this.db.prepare('SELECT state FROM cert_state WHERE name = ?').get(name) as { state: string } | undefined;
    if (!row) return { failures: [] };
    try {
      const s = JSON.parse(row.state) as CertState;
      return { ...s, failures: Array.isArray(s.failures) ? s.failures : [] };
    } catch {
      return { failures: [] };
    }
  }

  save(name: string, state: CertState): void {
    this.db.prepare('INSERT OR REPLACE INTO cert_state (name, state) VALUES (?, ?)').run(name, JSON.stringify(state));
  }
}
