// Services an operator stopped through deckhand (stack.stop) stay down until
// started again, across agent restarts: the set lives in the database.
import type { Db } from '../../store/db.js';
import { migrate } from '../../store/db.js';

const MIGRATIONS = [
  {
    version: 1,
    sql: `CREATE TABLE stack_operator_stops (
      project TEXT NOT NULL,
      service TEXT NOT NULL,
      actor TEXT NOT NULL,
      since INTEGER NOT NULL,
      PRIMARY KEY (project, service)
    ) WITHOUT ROWID`,
  },
];

export class OperatorStops {
  private readonly stopped = new Map<string, { actor: string; since: number }>();

  constructor(
    private readonly db: Db,
    private readonly project: string,
  ) {
    migrate(db, 'stack', MIGRATIONS);
    const rows = db.prepare('SELECT service, actor, since FROM stack_operator_stops WHERE project = ?').all(project) as { service: string; actor: string; since: number }[];
    for (const r of rows) this.stopped.set(r.service, { actor: r.actor, since: r.since });
  }

  has(service: string): boolean {
    return this.stopped.has(service);
  }

  get(service: string): { actor: string; since: number } | undefined {
    return this.stopped.get(service);
  }

  add(service: string, actor: string): void {
    const since = Date.now();
    this.db.prepare('INSERT OR REPLACE INTO stack_operator_stops (project, service, actor, since) VALUES (?, ?, ?, ?)').run(this.project, service, actor, since);
    this.stopped.set(service, { actor, since });
  }

  remove(service: string): void {
    this.db.prepare('DELETE FROM stack_operator_stops WHERE project = ? AND service = ?').run(this.project, service);
    this.stopped.delete(service);
  }
}
