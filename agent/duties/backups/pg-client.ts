// pg is loaded on the first connection, not when the agent starts: evaluating
// it makes Node load its fetch implementation (pg looks for Cloudflare
// Workers' `Response` at load), 17 MB of RSS on Node 24 in a process of its
// own. The connections are rare: a backup's version check and a restore's
// few questions.
import type { Client, ClientConfig } from 'pg';

export async function pgClient(config: ClientConfig): Promise<Client> {
  const { default: pg } = await import('pg');
  return new pg.Client(config);
}
