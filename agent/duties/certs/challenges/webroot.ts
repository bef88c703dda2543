// HTTP-01 through a directory another program (a proxy already on port 80)
// serves: the key authorization goes to
// <webroot>/.well-known/acme-challenge/<token> and is removed on cleanup.
// The file is written under a temporary name and renamed into place, so the
// proxy serves either nothing or the whole answer, never half of it. The
// directories are left behind: the proxy's config may point at them.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { failed } from '../../../errors.js';
import type { ChallengeParams, ChallengeSolver } from '../acme.js';
import { assertAcmeToken } from './token.js';

const DIR_MODE = 0o755;
const FILE_MODE = 0o644;

/** `<webroot>/.well-known/acme-challenge`. */
export function challengeDir(webroot: string): string {
  return join(webroot, '.well-known', 'acme-challenge');
}

/** The file of TOKEN under WEBROOT; refuses a token that is not base64url (no `/`, no `..`). */
export function challengeFile(webroot: string, token: string): string {
  assertAcmeToken(token);
  return join(challengeDir(webroot), token);
}

function errno(e: unknown): string | undefined {
  return e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Creates DIR if missing, 0755 whatever the umask (the proxy often runs as another user). */
async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { mode: DIR_MODE });
    await chmod(dir, DIR_MODE);
  } catch (e) {
    if (errno(e) !== 'EEXIST') throw e;
  }
}

export function webrootSolver(webroot: string): ChallengeSolver {
  return {
    type: 'http-01',
    async present(o: ChallengeParams) {
      const file = challengeFile(webroot, o.token);
      // The webroot itself must exist: a missing one is a typo or a proxy not
      // set up yet, which would otherwise only show as the CA's 404.
      const st = await stat(webroot).catch(() => undefined);
      if (!st?.isDirectory()) throw failed(`certs.challenge.webroot ${webroot} is not an existing directory; create it and have the proxy serve it`, { webroot });
      const dir = challengeDir(webroot);
      const tmp = join(dir, `.${o.token}.${randomBytes(6).toString('hex')}.tmp`);
      try {
        await ensureDir(join(webroot, '.well-known'));
        await ensureDir(dir);
        // 'wx': never through a file or symlink already there.
        const fh = await open(tmp, 'wx', FILE_MODE);
        try {
          await fh.writeFile(o.keyAuthorization);
          await fh.chmod(FILE_MODE);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, file);
      } catch (e) {
        await unlink(tmp).catch(() => {});
        throw failed(`cannot write the HTTP-01 challenge file into ${dir}: ${reason(e)}`, { webroot, code: errno(e) });
      }
    },
    async cleanup(o: ChallengeParams) {
      const file = challengeFile(webroot, o.token);
      try {
        await unlink(file);
      } catch (e) {
        if (errno(e) !== 'ENOENT') throw failed(`cannot remove the HTTP-01 challenge file ${file}: ${reason(e)}`, { webroot, code: errno(e) });
      }
    },
  };
}
