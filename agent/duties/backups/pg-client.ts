// pg is loaded on the first connection, not when the agent starts: evaluating
// it makes Node load its fetch implementation (pg looks for Cloudflare
// Workers' `Response` at load), which on Node 24 costs an idle agent about
// 15 MB of RSS. The connections are rare: a backup's version check and a
// restore's few questions.
import type { Client, ClientConfig } from 'pg';

export async function pgClient(config: ClientConfig): Promise<Client> {
  const { default: pg } = await import('pg');
  return new pg.Client(config);
}
