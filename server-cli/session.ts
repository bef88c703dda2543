// One command's conversation with one agent: connect (pin first), call, close.
import { VERSION } from '../agent/version.js';
import { RpcClient } from './client.js';
import { agentVersionOf, CONNECT_TIMEOUT_MS, openApi, type Target } from './connect.js';
import { checkAgentVersion } from './version-check.js';

export async function withClient<T>(target: Target, fn: (client: RpcClient) => Promise<T>, connectTimeoutMs = CONNECT_TIMEOUT_MS): Promise<T> {
  const ws = await openApi(target, connectTimeoutMs);
  checkAgentVersion(target.name, VERSION, agentVersionOf(ws));
  const client = new RpcClient(ws, target.name);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}
