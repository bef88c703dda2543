import { ERROR } from '../protocol.js';
import { RpcFailure, type MethodTable } from '../rpc.js';
import { TokenError, type TokenStore } from '../tokens.js';

export function tokenMethods(tokens: TokenStore, closeSessionsOf: (tokenId: number) => void): MethodTable {
  return {
    // `current` marks the caller's own token, so a client can tell before revoking the one it is using.
    'token.list': (_params, call) => ({
      tokens: tokens.list().map((t) => ({
        name: t.name,
        scope: t.scope,
        createdAt: new Date(t.createdAt).toISOString(),
        ...(t.lastUsedAt ? { lastUsedAt: new Date(t.lastUsedAt).toISOString() } : {}),
        ...(t.name === call.actor ? { current: true } : {}),
      })),
    }),
    'token.create': ({ name, scope }) => {
      try {
        const { token } = tokens.create(name, scope);
        return { name, scope, token };
      } catch (err) {
        if (err instanceof TokenError) throw new RpcFailure(ERROR.conflict, err.message);
        throw err;
      }
    },
    'token.revoke': ({ name }) => {
      let id: number;
      try {
        id = tokens.revoke(name);
      } catch (err) {
        if (err instanceof TokenError) throw new RpcFailure(ERROR.notFound, err.message);
        throw err;
      }
      closeSessionsOf(id);
      return { ok: true };
    },
  };
}
