// The .env contents a rollback may need, kept out of the database (they hold
// passwords): one 0600 file per distinct content under <dataDir>/deploy-env/,
// named by a keyed hash (HMAC-SHA256 with a key of this agent's own), so
// neither the name nor the database row tells anything about the content.
// A snapshot lives while a deploy that can still be rolled back to, or one
// not yet finished, refers to it (DeployRecords.snapshotsInUse).
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { failed } from '../../errors.js';
import { writeOwnFileAtomic } from '../../store/files.js';

const KEY_FILE = 'key';
const ID = /^[0-9a-f]{64}$/;

export class EnvSnapshots {
  private readonly dir: string;
  private readonly key: Buffer;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'deploy-env');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.key = loadOrCreateKey(join(this.dir, KEY_FILE));
  }

  /** Keeps `content` (null: there was no .env) and returns its id; the file is on disk before the id is. */
  save(content: string | null): string | null {
    if (content === null) return null;
    const id = this.mac(`content\0${content}`);
    const file = join(this.dir, id);
    if (readIfExists(file) !== content) writeOwnFileAtomic(file, content, 0o600);
    return id;
  }

  /** The content saved under `id` (null for "no .env"). */
  load(id: string | null): string | null {
    if (id === null) return null;
    const text = ID.test(id) ? readIfExists(join(this.dir, id)) : undefined;
    if (text === undefined) throw failed(`the .env this needs (snapshot ${id.slice(0, 12)}) is no longer kept: only the last deploys can be rolled back to`);
    return text;
  }

  /** A keyed hash of one value, to tell values apart in deploy records without keeping them. */
  valueHash(key: string, value: string): string {
    return this.mac(`value\0${key}\0${value}`).slice(0, 16);
  }

  /** Deletes every snapshot not in `keep`; returns how many. */
  prune(keep: ReadonlySet<string>): number {
    let removed = 0;
    for (const name of readdirSync(this.dir)) {
      if (!ID.test(name) || keep.has(name)) continue;
      rmSync(join(this.dir, name), { force: true });
      removed++;
    }
    return removed;
  }

  private mac(text: string): string {
    return createHmac('sha256', this.key).update(text).digest('hex');
  }
}

function loadOrCreateKey(file: string): Buffer {
  try {
    const key = readFileSync(file);
    if (key.length >= 32) return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = randomBytes(32);
  writeOwnFileAtomic(file, key, 0o600);
  return key;
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
