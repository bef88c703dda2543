// One command's conversation with one agent: connect (pin first), call, close.
import { RpcClient } from './client.js';
import { CONNECT_TIMEOUT_MS, openApi, type Target } from './connect.js';

export async function withClient<T>(target: Target, fn: (client: RpcClient) => Promise<T>, connectTimeoutMs = CONNECT_TIMEOUT_MS): Promise<T> {
  const ws = await openApi(target, connectTimeoutMs);
  const client = new RpcClient(ws, target.name);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}
