// dataDir holds the token hashes, the audit log, deploy snapshots and
// certificate keys. A directory another user may write to lets that user
// replace the database or plant a symbolic link where the agent writes, so it
// is refused before the agent opens anything in it, with the command to fix it.
import { statSync } from 'node:fs';
import { agentIdentity } from '../identity.js';

export interface DirState {
  isDirectory: boolean;
  /** st_mode: type and permission bits. */
  mode: number;
  /** The owner. */
  uid: number;
}

export interface RunningUser {
  uid: number;
  name: string;
}

/** The mode the installer and the unit's StateDirectoryMode= give dataDir. */
const SAFE_MODE = '0750';

/** One line per reason this directory must not be the agent's dataDir; empty when it may. */
export function dataDirProblems(dir: string, st: DirState, user: RunningUser): string[] {
  if (!st.isDirectory) return [`dataDir: ${dir} exists but is not a directory`];
  const problems: string[] = [];
  const writable = writableBy(st.mode);
  if (writable) {
    problems.push(`dataDir: ${dir} is ${writable} (mode ${octalMode(st.mode)}), so other users could replace the agent's database and keys; run: chmod ${SAFE_MODE} ${shellWord(dir)}`);
  }
  // As root (token and audit commands on the box) the directory is the
  // service user's by design; root itself needs no protection from it.
  if (user.uid !== 0 && st.uid !== user.uid && st.uid !== 0) {
    problems.push(`dataDir: ${dir} belongs to uid ${st.uid}, neither the agent's user ${user.name} (uid ${user.uid}) nor root, so that user could replace the agent's database and keys; run: chown ${shellWord(user.name)} ${shellWord(dir)}`);
  }
  return problems;
}

/** The problems of dataDir as it is on disk now; none when it does not exist yet (the agent creates it, 0750). */
export function checkDataDir(dir: string, user: RunningUser = runningUser()): string[] {
  try {
    const st = statSync(dir);
    return dataDirProblems(dir, { isDirectory: st.isDirectory(), mode: st.mode, uid: st.uid }, user);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    return [`dataDir: cannot inspect ${dir}: ${code ?? (err as Error).message}`];
  }
}

function runningUser(): RunningUser {
  const { uid, user } = agentIdentity();
  return { uid, name: user };
}

function writableBy(mode: number): string | null {
  const group = (mode & 0o020) !== 0;
  const world = (mode & 0o002) !== 0;
  if (group && world) return 'group- and world-writable';
  if (group) return 'group-writable';
  if (world) return 'world-writable';
  return null;
}

function octalMode(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}

/** A path as one word in a shell command the operator pastes. */
export function shellWord(text: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}
