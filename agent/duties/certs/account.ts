// The ACME account: one ECDSA P-256 key, created once and kept 0600 in
// <dataDir>/certs/account.json with the account URL each CA directory gave
// it, so a restart (or a change of directory and back) reuses the account
// instead of registering a new one every time.
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeOwnFileAtomic } from '../../store/files.js';

export interface AccountFile {
  /** PKCS#8 PEM of the account key. */
  keyPem: string;
  /** Directory URL to the account URL it registered there. */
  urls: Record<string, string>;
}

export class AccountStore {
  readonly file: string;

  constructor(dataDir: string) {
    const dir = join(dataDir, 'certs');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = join(dir, 'account.json');
  }

  /** The account, its key made now when there is none yet. */
  load(): AccountFile {
    let raw: string | undefined;
    try {
      raw = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (raw !== undefined) {
      const parsed = JSON.parse(raw) as Partial<AccountFile>;
      if (typeof parsed.keyPem !== 'string' || !parsed.keyPem.includes('PRIVATE KEY')) throw new Error(`${this.file} holds no account key; move it away to register a new account`);
      return { keyPem: parsed.keyPem, urls: parsed.urls && typeof parsed.urls === 'object' ? parsed.urls : {} };
    }
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const account: AccountFile = { keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), urls: {} };
    this.save(account);
    return account;
  }

  /** Keeps the URL a directory gave the account. */
  remember(directoryUrl: string, accountUrl: string): void {
    const a = this.load();
    if (a.urls[directoryUrl] === accountUrl) return;
    this.save({ ...a, urls: { ...a.urls, [directoryUrl]: accountUrl } });
  }

  private save(a: AccountFile): void {
    writeOwnFileAtomic(this.file, `${JSON.stringify(a, null, 2)}\n`, 0o600);
  }
}
