// A compose stack whose service `db` is a real PostgreSQL on a free loopback
// port, for the backup tests: the stack, a client, and the URLs to reach it.
import pg from 'pg';
import { freePort, waitFor } from './agent.js';
import { POSTGRES_IMAGE, TestStack, type ServiceSpec } from './stack.js';

export interface PgStack {
  stack: TestStack;
  port: number;
  password: string;
  /** postgres://app:PASSWORD@127.0.0.1:PORT/DB */
  url(database?: string): string;
  /** A new connected client (the caller ends it). */
  client(database?: string): Promise<pg.Client>;
  /** One query on a short-lived connection. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[], database?: string): Promise<R[]>;
  down(): Promise<void>;
}

/** Starts the stack (service `db`, user/database `app`, plus any other services) and waits until PostgreSQL answers. */
export async function startPgStack(prefix: string, opts: { password?: string; extra?: Record<string, ServiceSpec> } = {}): Promise<PgStack> {
  const port = await freePort();
  const password = opts.password ?? 'app-secret';
  const stack = TestStack.unique(prefix, {
    db: { image: POSTGRES_IMAGE, environment: { PGPORT: String(port), POSTGRES_LISTEN_ADDRESSES: '127.0.0.1', POSTGRES_USER: 'app', POSTGRES_PASSWORD: password, POSTGRES_DB: 'app' } },
    ...opts.extra,
  });
  await stack.up();
  const url = (database = 'app') => `postgres://app:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  const client = async (database = 'app') => {
    const c = new pg.Client({ connectionString: url(database) });
    c.on('error', () => undefined);
    try {
      await c.connect();
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
    return c;
  };
  const query = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = [], database = 'app') => {
    const c = await client(database);
    try {
      return (await c.query<R>(sql, params)).rows;
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  await waitFor(
    async () => {
      try {
        await query('SELECT 1');
        return true;
      } catch {
        return false;
      }
    },
    60_000,
    () => `PostgreSQL on 127.0.0.1:${port}`,
  );
  return { stack, port, password, url, client, query, down: () => stack.down() };
}
