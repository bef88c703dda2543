// Who the agent runs as, named the way an operator types it into chgrp or
// usermod: user and group names from the passwd and group files, not numbers.
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';

export interface AgentIdentity {
  user: string;
  /** The primary group (systemd's Group=). */
  group: string;
  uid: number;
  gid: number;
  /** Every group the process holds, primary and supplementary. */
  gids: readonly number[];
}

/** The name of group GID in TEXT (the group file's format), or the number when it has none. */
export function groupNameIn(text: string, gid: number): string {
  for (const line of text.split('\n')) {
    const [name, , id] = line.split(':');
    if (name && id !== undefined && Number(id) === gid && id.trim() !== '') return name;
  }
  return String(gid);
}

export function groupName(gid: number): string {
  try {
    return groupNameIn(readFileSync('/etc/group', 'utf8'), gid);
  } catch {
    return String(gid);
  }
}

export function agentIdentity(): AgentIdentity {
  const uid = process.getuid?.() ?? -1;
  const gid = process.getegid?.() ?? -1;
  let user = String(uid);
  try {
    user = userInfo().username;
  } catch {
    /* a uid without a passwd entry: the number is all there is */
  }
  return { user, group: groupName(gid), uid, gid, gids: [...new Set([gid, ...(process.getgroups?.() ?? [])])] };
}
