// API tokens: 256 random bits, shown once; only their SHA-256 is stored (a
// slow hash buys nothing for a secret this long). Verification compares
// against every active token's hash in constant time, so neither the lookup
// nor the comparison says how close a guess came.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db, Migration } from '../store/db.js';
import { migrate } from '../store/db.js';
import type { Scope } from './protocol.js';

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    sql: `CREATE TABLE api_tokens (
      name TEXT PRIMARY KEY,
      scope TEXT NOT NULL CHECK (scope IN ('read', 'operate', 'admin')),
      hash BLOB NOT NULL,
      created_at INTEGER NOT NULL,
      last_used_at INTEGER
    )`,
  },
  {
    // Each token gets an id of its own that is never reused (AUTOINCREMENT), so
    // a session is bound to the token it authenticated with: revoking "ops"
    // and creating a new "ops" is a new identity, not the old one renamed.
    version: 2,
    sql: `CREATE TABLE api_tokens_v2 (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      name TEXT NOT NULL UNIQUE,
      scope TEXT NOT NULL CHECK (scope IN ('read', 'operate', 'admin')),
      hash BLOB NOT NULL,
      created_at INTEGER NOT NULL,
      last_used_at INTEGER
    );
    INSERT INTO api_tokens_v2 (name, scope, hash, created_at, last_used_at)
      SELECT name, scope, hash, created_at, last_used_at FROM api_tokens ORDER BY created_at, name;
    DROP TABLE api_tokens;
    ALTER TABLE api_tokens_v2 RENAME TO api_tokens;`,
  },
];

/** Who a connection authenticated as: the token row itself, not its name. */
export interface TokenIdentity {
  id: number;
  name: string;
  scope: Scope;
  hash: Buffer;
}

export interface TokenRecord {
  name: string;
  scope: Scope;
  createdAt: number;
  lastUsedAt?: number;
}

export class TokenError extends Error {
  constructor(
    message: string,
    readonly kind: 'exists' | 'not_found',
  ) {
    super(message);
  }
}

const TOKEN_PREFIX = 'dh_';

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export class TokenStore {
  private cache: TokenIdentity[] = [];
  private cachedVersion = -1;
  private readonly lastTouched = new Map<number, number>();

  constructor(private readonly db: Db) {
    migrate(db, 'api', MIGRATIONS);
  }

  create(name: string, scope: Scope): { token: string; record: TokenRecord } {
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const createdAt = Date.now();
    try {
      this.db.prepare('INSERT INTO api_tokens (name, scope, hash, created_at) VALUES (?, ?, ?, ?)').run(name, scope, hashToken(token), createdAt);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new TokenError(`a token named "${name}" exists: revoke it first, or pick another name`, 'exists');
      }
      throw err;
    }
    this.cachedVersion = -1;
    return { token, record: { name, scope, createdAt } };
  }

  /** Deletes the token; returns its id, so the caller can close exactly its sessions. */
  revoke(name: string): number {
    const row = this.db.prepare('DELETE FROM api_tokens WHERE name = ? RETURNING id').get(name) as { id: number } | undefined;
    if (!row) throw new TokenError(`no token named "${name}"`, 'not_found');
    this.cachedVersion = -1;
    return row.id;
  }

  list(): TokenRecord[] {
    const rows = this.db.prepare('SELECT name, scope, created_at, last_used_at FROM api_tokens ORDER BY name').all() as {
      name: string;
      scope: Scope;
      created_at: number;
      last_used_at: number | null;
    }[];
    return rows.map((r) => ({ name: r.name, scope: r.scope, createdAt: r.created_at, ...(r.last_used_at === null ? {} : { lastUsedAt: r.last_used_at }) }));
  }

  /** The token's identity, or null. Constant time in the token's content. */
  verify(token: string): TokenIdentity | null {
    this.refresh();
    const presented = hashToken(token);
    let match: TokenIdentity | null = null;
    for (const t of this.cache) {
      // Every active token is compared, match or not.
      if (timingSafeEqual(presented, t.hash) && match === null) match = t;
    }
    if (match) this.touch(match.id);
    return match;
  }

  /** Whether this very token (id and hash) is still active; sees revocations by another process (the token CLI) at once. */
  isActive(identity: Pick<TokenIdentity, 'id' | 'hash'>): boolean {
    this.refresh();
    return this.cache.some((t) => t.id === identity.id && t.hash.equals(identity.hash));
  }

  /** Re-reads the tokens when this or another connection (the token CLI) changed the database. */
  private refresh(): void {
    // data_version moves when another connection commits; our own writes reset cachedVersion.
    const version = this.db.pragma('data_version', { simple: true }) as number;
    if (version === this.cachedVersion) return;
    this.cache = (this.db.prepare('SELECT id, name, scope, hash FROM api_tokens').all() as TokenIdentity[]).map((r) => ({
      id: r.id,
      name: r.name,
      scope: r.scope,
      hash: Buffer.from(r.hash),
    }));
    this.cachedVersion = version;
  }

  private touch(id: number): void {
    const now = Date.now();
    if (now - (this.lastTouched.get(id) ?? 0) < 60_000) return; // at most once a minute per token
    this.lastTouched.set(id, now);
    if (this.lastTouched.size > 10_000) this.lastTouched.delete(this.lastTouched.keys().next().value!);
    this.db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE id = ?').run(now, id);
  }
}
