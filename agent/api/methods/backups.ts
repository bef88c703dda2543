// backup.*: the backups duty's operations as JSON-RPC methods and streams.
import type { BackupsDuty } from '../../duties/backups/duty.js';
import { backupInfo, restoreInfo } from '../../duties/backups/info.js';
import type { StoredBackup } from '../../duties/backups/store.js';
import { mapped, takePage } from '../paging.js';
import type { MethodTable } from '../rpc.js';
import { streamOperation } from './streams.js';

const finalBackup = (r: StoredBackup) => ({ ok: r.status === 'verified', backup: backupInfo(r), ...(r.status !== 'verified' ? { error: r.error ?? r.status } : {}) });

export function backupMethods(backups: BackupsDuty): MethodTable {
  return {
    'backup.list': ({ name, limit, cursor }) => {
      const page = takePage(mapped(backups.history(name, cursor ? Number(cursor) : undefined), backupInfo), limit ?? 100, (b) => String(b.id));
      return { backups: page.items, ...(page.next ? { next: page.next } : {}) };
    },
    'backup.run': ({ name }, call) => streamOperation(call, (send) => backups.run(name, call.actor, send), finalBackup),
    'backup.restore': ({ id, to }, call) =>
      streamOperation(call, (send) => backups.restore(id, to, call.actor, send), (r) => ({
        ok: r.status === 'succeeded',
        restore: restoreInfo(r),
        ...(r.status !== 'succeeded' ? { error: r.error ?? r.status } : {}),
      })),
  };
}
