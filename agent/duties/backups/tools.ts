// Builds, for one configured backup, the PostgreSQL tools its runs and
// restores use: inside the compose service's container (source.service) or
// the host's programs against a URL (source.url).
import type { DockerEngine } from '../../docker/engine.js';
import { failed } from '../../errors.js';
import type { BackupConfig } from './config.js';
import type { BackupTools } from './duty.js';
import { containerTarget, hostTarget, verifyByRestore } from './pg-target.js';
import { containerSource, serviceContainer } from './source-container.js';
import { hostSource } from './source-host.js';

export interface StackAccess {
  engine: DockerEngine;
  project: string;
}

export function backupTools(c: BackupConfig, stack: StackAccess | undefined): BackupTools {
  const { database } = c.source;
  const user = c.source.user;
  if (c.source.service) {
    if (!stack) throw new Error(`backup ${c.name} dumps service ${c.source.service}, but no stack is configured`);
    const { engine, project } = stack;
    const service = c.source.service;
    const target = containerTarget(engine, { project, service, database, ...(user ? { user } : {}) });
    return {
      source: containerSource(engine, { project, service, database, ...(user ? { user } : {}) }),
      verifyRead: (file, o) => target.verifyRead(file, o),
      // The image of the service's container now: the one whose PostgreSQL wrote the dump.
      verifyByRestore: async (file, o) => {
        const id = await serviceContainer(engine, project, service);
        const image = (await engine.listProjectContainers(project)).find((x) => x.id === id)?.imageId;
        if (!image) throw failed(`cannot tell the image of service ${service}'s container`);
        return verifyByRestore(engine, { image, file, database, ...(user ? { user } : {}), ...o });
      },
      databaseSize: () => target.databaseSize(database),
      restore: (file, db, o) => target.restore(file, db, o),
      databaseExists: (db) => target.databaseExists(db),
      createDatabase: (db) => target.createDatabase(db),
    };
  }
  const url = c.source.url!;
  const target = hostTarget({ url, database, ...(user ? { user } : {}) });
  return {
    source: hostSource({ url, database, ...(user ? { user } : {}) }),
    verifyRead: (file, o) => target.verifyRead(file, o),
    databaseSize: () => target.databaseSize(database),
    restore: (file, db, o) => target.restore(file, db, o),
    databaseExists: (db) => target.databaseExists(db),
    createDatabase: (db) => target.createDatabase(db),
  };
}
