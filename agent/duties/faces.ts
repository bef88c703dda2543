// The faces one duty shows another: small interfaces, defined once here, so
// a duty depends on what it needs of another and never on its internals. The
// daemon passes the implementing duty in.
import type { DockerEngine, ContainerStats } from '../docker/engine.js';
import type { ComposeProject } from './stack/compose.js';

/** What the metrics duty needs of the stack: which containers run now, and their stats. */
export interface ContainerSource {
  runningContainers(): { service: string; id: string }[];
  restarts(service: string): number;
  stats(id: string): Promise<ContainerStats>;
}

/** What a deploy needs of the stack it changes. */
export interface StackControl {
  engine: DockerEngine;
  project(): Promise<ComposeProject>;
  /** Services of the compose file as last applied. */
  serviceNames(): string[];
  /** service -> image ID of its current container */
  currentImages(): Record<string, string>;
  /** Services an operator stopped through deckhand: a deploy leaves them stopped. */
  operatorStopped(): string[];
  /** Suspends supervision of these services until the returned function is called. */
  hold(services: readonly string[]): () => void;
  /** After a deploy or rollback: the services the compose file now declares; restart records start afresh. */
  reload(declared: readonly string[]): Promise<void>;
}

/** What a deploy needs of the backups duty: `stack.deploy.backupFirst`. */
export interface BackupControl {
  /** Runs the backup; resolves with a line for the deploy's step once it is verified, rejects with why not. */
  backupFirst(name: string, actor: string): Promise<string>;
}
