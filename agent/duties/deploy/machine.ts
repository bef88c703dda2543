// A deploy as an explicit sequence of recorded steps. Until `up`, nothing
// running is touched, and a failure only puts the files back (git commit,
// .env). From `up` on, a failure rolls back to the recorded images (by ID,
// re-tagged to the names compose uses), .env and commit, health-gated.
//
// A rollback or recovery drives the stack to a recorded goal state. The goal
// is saved with its record before anything changes, so an interrupted one is
// resumed towards the same goal, never towards the half-applied state it
// found (DeployDuty.recover). A stop of the agent (SIGTERM) ends a run at
// once and leaves its record unfinished, for the next start to complete.
import { accessSync, constants, existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { DockerEngine } from '../../docker/engine.js';
import type { Progress } from '../../errors.js';
import { agentIdentity } from '../../identity.js';
import { run, runChecked, type Command } from '../../exec/runner.js';
import type { StackControl } from '../faces.js';
import type { ComposeProject } from '../stack/compose.js';
import type { StackConfig } from '../stack/config.js';
import {
  composeBuild,
  composeMigrate,
  composePull,
  composeResolved,
  composeUp,
  gitCheckout,
  gitFetch,
  gitHead,
  gitIsRepo,
  gitRemotes,
  gitResolve,
  keepTag,
} from './commands.js';
import type { EnvSnapshots } from './env-snapshots.js';
import { applyEnvChanges, changedEnvKeys, readEnvFile, writeFileAtomic } from './envfile.js';
import { collectFailures, secretsOf, type ServiceFailure } from './failures.js';
import { healthGate, watchWindow, type ContainerSnapshot } from './gate.js';
import type { DeployKind, DeployRecord, DeployRecords, StackState, StepRecord } from './records.js';

/** Deploys whose images keep a tag (so a rollback to them can find them); older tags are removed. */
export const KEEP_DEPLOYS = 10;

/** Free space the Docker root must keep for a deploy to start. */
export const MIN_FREE_DISK_BYTES = 1 << 30;

/** Where a deploy wants the stack to be. */
export type Target =
  | { kind: 'deploy'; ref?: string; env?: Record<string, string> }
  | { kind: 'rollback' | 'recovery'; state: StackState; targetId?: number; note?: string };

export interface StepEvent {
  type: 'step';
  step: string;
  status: StepRecord['status'];
  ms?: number;
  detail?: string;
  /** On a failed health or watch step: why each service failed it. */
  failures?: ServiceFailure[];
}

export type DeployProgress = StepEvent | { type: 'waiting'; detail: string };

export interface MachineDeps {
  records: DeployRecords;
  snapshots: EnvSnapshots;
  stack: StackControl;
  config: StackConfig;
  progress: Progress<DeployProgress>;
  /** Aborted when the agent stops: the run ends at once, its record left for the next start. */
  signal?: AbortSignal;
  /** Runs the named backup for `stack.deploy.backupFirst`; resolves with a line for the step, rejects with why it failed. */
  backupFirst?: (name: string, actor: string) => Promise<string>;
  /** Test hook for kill-at-each-step tests: called when a step starts. */
  onStep?: (step: string, kind: DeployKind) => void;
}

class StepFailure extends Error {}

/** The gate or the watch window failed these services: the step reads why before anything replaces them. */
class GateFailed extends Error {
  constructor(
    reason: string,
    readonly services: string[],
  ) {
    super(reason);
  }
}

/** The agent is stopping: the record stays unfinished and the next start completes it. */
export class Interrupted extends Error {}

export async function runDeploy(target: Target, actor: string, services: readonly string[], deps: MachineDeps): Promise<DeployRecord> {
  const { records, stack, config, snapshots } = deps;
  const signal = deps.signal;
  const project = await stack.project();
  const envFile = join(config.dir, '.env');
  const exec = (cmd: Command) => runChecked(cmd, signal ? { signal } : {});
  // Saved before the record refers to it: a crash never leaves a record pointing at nothing.
  const envBefore = readEnvFile(envFile);
  const record = records.create({
    kind: target.kind as DeployKind,
    startedAt: Date.now(),
    actor,
    result: 'running',
    services: [...services],
    envBefore: snapshots.save(envBefore),
    // Until a step changes it, the .env after is the one before (a deploy without --set).
    envAfter: snapshots.save(envBefore),
    envKeys: target.kind === 'deploy' ? Object.keys(target.env ?? {}) : [],
    envChanges: [],
    imageRefs: { before: {} },
    imagesBefore: {},
    steps: [],
    ...(target.kind !== 'deploy' ? { goal: target.state, ...(target.targetId !== undefined ? { targetId: target.targetId } : {}) } : {}),
  });
  const note = (step: string, status: StepRecord['status'], detail: string) => {
    record.steps.push({ step, status, at: Date.now(), detail });
    records.save(record);
    deps.progress({ type: 'step', step, status, detail });
  };
  const step = async <T>(name: string, work: () => Promise<T>, detail?: (t: T) => string | undefined): Promise<T> => {
    if (signal?.aborted) throw new Interrupted(name);
    const t0 = Date.now();
    record.steps.push({ step: name, status: 'started', at: t0 });
    records.save(record);
    deps.onStep?.(name, record.kind);
    deps.progress({ type: 'step', step: name, status: 'started' });
    try {
      const out = await work();
      if (signal?.aborted) throw new Interrupted(name);
      const d = detail?.(out);
      record.steps.push({ step: name, status: 'ok', at: Date.now(), ms: Date.now() - t0, ...(d ? { detail: d } : {}) });
      records.save(record);
      deps.progress({ type: 'step', step: name, status: 'ok', ms: Date.now() - t0, ...(d ? { detail: d } : {}) });
      return out;
    } catch (err) {
      if (signal?.aborted || err instanceof Interrupted) throw new Interrupted(name);
      const msg = (err as Error).message;
      const ms = Date.now() - t0;
      // Read now: the rollback replaces these containers, and their log goes with them.
      const failures = err instanceof GateFailed && err.services.length ? await collectFailures(stack.engine, project.project, err.services, envSecrets()).catch(() => undefined) : undefined;
      if (failures) record.failures = [...(record.failures ?? []), ...failures];
      record.steps.push({ step: name, status: 'failed', at: Date.now(), ms, detail: msg });
      records.save(record);
      deps.progress({ type: 'step', step: name, status: 'failed', ms, detail: msg, ...(failures ? { failures } : {}) });
      throw new StepFailure(`${name}: ${msg}`);
    }
  };
  /** Every value of the .env before, after and on disk now: what a failed container's log must not show. */
  const envSecrets = () => {
    const texts = [envBefore];
    for (const read of [() => readEnvFile(envFile), () => snapshots.load(record.envAfter)]) {
      try {
        texts.push(read());
      } catch {
        /* one of the two is enough: the file on disk is the .env after */
      }
    }
    return secretsOf(texts);
  };
  const finish = (result: DeployRecord['result'], error?: string): DeployRecord => {
    record.result = result;
    record.finishedAt = Date.now();
    if (error) record.error = error;
    records.save(record);
    return record;
  };
  const restore = (state: StackState) => restoreFiles(state, config.dir, envFile, isRepo, record, snapshots, exec);

  // 1. What runs now: enough to put it all back.
  const repoCheck = await run(gitIsRepo(config.dir));
  const isRepo = repoCheck.code === 0;
  // A deploy that changes no file resolves the compose file once, after validation.
  const filesChange = target.kind !== 'deploy' || target.ref !== undefined || Object.keys(target.env ?? {}).length > 0;
  // Services an operator stopped stay stopped: up and the gate leave them out.
  const stopped = stack.operatorStopped();
  await step('record', async () => {
    if (isRepo) record.refBefore = (await exec(gitHead(config.dir))).stdout.trim();
    record.imagesBefore = stack.currentImages();
    if (filesChange) record.imageRefs.before = (await resolveServices(project, exec)).refs;
    for (const [service, id] of Object.entries(record.imagesBefore)) await stack.engine.tagImage(id, `${keepTag(project.project, service, record.id)}-before`);
  }, () => [`${Object.keys(record.imagesBefore).length} services${record.refBefore ? ` at ${record.refBefore.slice(0, 12)}` : ''}`, target.kind !== 'deploy' && target.note].filter(Boolean).join('; '));
  const before: StackState = { ...(record.refBefore ? { ref: record.refBefore } : {}), env: record.envBefore, refs: record.imageRefs.before, images: record.imagesBefore };

  let touched = false;
  let release: (() => void) | undefined;
  let upScope: string[] = [];
  /** The whole stack is in scope (so `up` may remove orphans): no --service and no operator-stopped service. */
  let whole = false;
  let interrupted = false;
  try {
    // 2. Files: the commit and .env the new version wants.
    if (target.kind === 'deploy') {
      if (target.ref) {
        await step('checkout', async () => {
          if (!isRepo) throw new Error(notARepository(config.dir, repoCheck.stderr));
          const remotes = (await run(gitRemotes(config.dir))).stdout.trim();
          if (remotes) await exec(gitFetch(config.dir)).catch(explainGitPermission(config.dir));
          const commit = (await run(gitResolve(config.dir, target.ref!))).stdout.trim();
          if (!commit) throw new Error(`no commit for ref "${target.ref}" in ${config.dir}`);
          await exec(gitCheckout(config.dir, commit)).catch(explainGitPermission(config.dir));
          record.refAfter = commit;
          return commit;
        }, (c) => c.slice(0, 12));
      }
      if (target.env && Object.keys(target.env).length > 0) {
        const changes = target.env;
        await step('env', async () => {
          const text = applyEnvChanges(envBefore, changes);
          record.envAfter = snapshots.save(text);
          record.envChanges = Object.entries(changes).map(([key, value]) => ({ key, hash: snapshots.valueHash(key, value) }));
          records.save(record);
          writeFileAtomic(envFile, text);
        }, () => `set ${Object.keys(changes).join(', ')}`);
      }
    } else {
      await step('restore-files', async () => {
        await restore(target.state);
        // What this run changes in .env, by name: the record of a rollback says so like a deploy's.
        record.envKeys = changedEnvKeys(envBefore, snapshots.load(target.state.env));
      }, () => (record.envKeys.length ? `env ${record.envKeys.join(', ')}` : undefined));
    }

    // 3. Validate (resolving the file is validating it) and get every image before anything running is touched.
    const { refs: refsAfter, built, resolved } = await step('validate', async () => resolveServices(project, exec), (r) => `${Object.keys(r.refs).length} services`);
    record.imageRefs.after = refsAfter;
    if (!filesChange) record.imageRefs.before = before.refs = refsAfter;
    const inScope = (service: string) => services.length === 0 || services.includes(service);
    await step('images', async () => {
      if (target.kind === 'deploy') {
        // Only images that came from a registry are pulled again (their tag may have moved);
        // an image built or loaded on this box has no registry to ask.
        const toPull: string[] = [];
        for (const [service, ref] of Object.entries(refsAfter)) {
          if (!inScope(service) || built.has(service)) continue;
          const image = await stack.engine.imageInfo(ref);
          if (image && image.repoDigests.length === 0) continue;
          toPull.push(service);
        }
        // A registry that cannot be reached fails the deploy: going on would "deploy" the old image.
        if (toPull.length) await exec(composePull(project, toPull));
        const toBuild = [...built].filter(inScope);
        if (toBuild.length) await exec(composeBuild(project, toBuild));
      } else {
        for (const [service, id] of Object.entries(target.state.images)) await stack.engine.tagImage(id, refsAfter[service] ?? target.state.refs[service]!);
      }
      const missing: string[] = [];
      for (const [service, ref] of Object.entries(refsAfter)) {
        if (inScope(service) && !(await stack.engine.imageInfo(ref))) missing.push(`${service} (${ref})`);
      }
      if (missing.length) throw new Error(`image not available: ${missing.join(', ')}`);
    });
    await step('disk', async () => {
      const info = (await stack.engine.api.info()) as { DockerRootDir?: string };
      const root = info.DockerRootDir ?? '/var/lib/docker';
      let s;
      try {
        s = await statfs(root);
      } catch (err) {
        // The engine's data root is not on this machine's file system (an
        // engine in a VM or container, a socket from elsewhere): nothing to
        // measure here, which the step says instead of failing the deploy.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return `not checked: the engine's ${root} is not on this file system`;
        throw err;
      }
      const free = s.bavail * s.bsize;
      if (free < MIN_FREE_DISK_BYTES) throw new Error(`only ${Math.round(free / 1048576)} MiB free under ${root}; need 1 GiB`);
      return free;
    }, (free) => (typeof free === 'string' ? free : `${Math.round(free / 1073741824)} GiB free`));
    // backupFirst: after the images are in and before a migration can change the data; a failure stops here, nothing running touched.
    if (config.deploy.backupFirst && target.kind === 'deploy') {
      const name = config.deploy.backupFirst;
      await step('backup', async () => {
        if (!deps.backupFirst) throw new Error(`backupFirst names ${name}, but no backups duty runs`);
        return deps.backupFirst(name, record.actor);
      }, (line) => line);
    }
    if (config.deploy.migrate && target.kind === 'deploy') {
      const m = config.deploy.migrate;
      await step('migrate', async () => exec(composeMigrate(project, m.service, m.command, resolved)), () => `${m.service}: ${m.command.join(' ')}`);
    }

    // 4. From here on, a failure means rolling back.
    const scope = services.length ? [...services] : Object.keys(refsAfter);
    upScope = scope.filter((s) => !stopped.includes(s));
    const left = scope.filter((s) => stopped.includes(s));
    whole = services.length === 0 && left.length === 0;
    if (left.length) note('stopped-services', 'skipped', `${left.join(', ')} stopped by an operator: left stopped (deckhand start ${left[0]} brings it back on this version)`);
    if (upScope.length === 0) {
      note('up', 'skipped', 'every service in scope is stopped by an operator');
      return finish('succeeded');
    }
    release = stack.hold(upScope);
    touched = true;
    await step('up', async () => exec(composeUp(project, upScope, { whole })));
    const passed = await step('health', async () => {
      const r = await healthGate(stack.engine, gateOptions(project, upScope, config, deps, true));
      if (!r.ok) throw new GateFailed(r.reason, r.services);
      return r.containers;
    }, () => `${upScope.length} services healthy`);
    if (config.deploy.watch > 0) {
      await step('watch', async () => {
        const r = await watchWindow(stack.engine, project.project, passed as Map<string, ContainerSnapshot>, config.deploy.watch, signal);
        if (!r.ok) throw new GateFailed(r.reason, r.services);
      }, () => `stable for ${Math.round(config.deploy.watch / 1000)}s`);
    } else {
      note('watch', 'skipped', 'stack.deploy.watch is 0s');
    }

    record.imagesAfter = Object.fromEntries([...passed].map(([service, c]) => [service, c.imageId]));
    for (const [service, id] of Object.entries(record.imagesAfter)) await stack.engine.tagImage(id, keepTag(project.project, service, record.id));
    await pruneKeepTags(stack.engine, project.project, records.recentIds(KEEP_DEPLOYS)).catch(() => undefined);
    return finish('succeeded');
  } catch (err) {
    if (err instanceof Interrupted) {
      // The record stays 'running': the next start finishes it (DeployDuty.recover).
      interrupted = true;
      noteStop(record, records, err.message);
      throw err;
    }
    const why = err instanceof StepFailure ? err.message : `internal error: ${(err as Error).message}`;
    if (!touched) {
      // A recovery keeps the goal's files: its "before" is the half-applied deploy.
      if (target.kind !== 'recovery') await restore(before).catch(() => undefined);
      return finish('failed', why);
    }
    // A recovery has nowhere better to go: what it found was a half-applied deploy.
    if (target.kind === 'recovery') return finish('failed', `${why}; the stack is on the version it was restoring (deckhand deploys, then deploy a fix)`);
    // Roll back to what ran before, itself health-gated.
    try {
      await step('rollback', async () => {
        await restore(before);
        for (const [service, id] of Object.entries(before.images)) {
          const ref = before.refs[service];
          if (ref) await stack.engine.tagImage(id, ref);
        }
        await exec(composeUp(project, upScope, { whole }));
        const r = await healthGate(stack.engine, gateOptions(project, upScope, config, deps, false));
        if (!r.ok) throw new Error(`the previous version is not healthy either: ${r.reason}`);
      }, () => 'previous version healthy');
      return finish('rolled_back', why);
    } catch (rollbackErr) {
      if (rollbackErr instanceof Interrupted) {
        interrupted = true;
        noteStop(record, records, 'rollback');
        throw rollbackErr;
      }
      return finish('rollback_failed', `${why}; ${(rollbackErr as Error).message}`);
    }
  } finally {
    release?.();
    // The services as the files now on disk declare them (after a rollback: as before).
    if (touched && !interrupted) await stack.reload(Object.keys(record.result === 'succeeded' ? (record.imageRefs.after ?? {}) : record.imageRefs.before)).catch(() => undefined);
  }
}

/** Why --ref cannot be used: not a checkout, or one the agent may not read (git then says "not a git repository" too). */
function notARepository(dir: string, gitStderr: string): string {
  const gitDir = join(dir, '.git');
  if (existsSync(gitDir)) {
    try {
      accessSync(gitDir, constants.R_OK | constants.X_OK);
    } catch {
      const me = agentIdentity();
      return `${gitDir} exists but the agent runs as user ${me.user} (group ${me.group}) and may not read it: let it with: chgrp -R ${me.group} ${dir} && chmod -R g+rwX ${dir}`;
    }
  }
  const git = gitStderr.trim().split('\n').at(-1);
  return `${dir} is not a git repository${git ? ` (git: ${git})` : ''}, so --ref cannot be used`;
}

/** git refused to write the checkout: say who the agent is and what lets it (an installer shares the checkout with its group). */
function explainGitPermission(dir: string): (err: unknown) => never {
  return (err) => {
    const text = (err as Error).message;
    if (!/permission denied|unable to (create|write|unlink)/i.test(text)) throw err;
    const me = agentIdentity();
    throw new Error(`${text}; the agent runs as user ${me.user} (group ${me.group}) and may not change the checkout in ${dir}: let it with: chgrp -R ${me.group} ${dir} && chmod -R g+w ${dir}`);
  };
}

function noteStop(record: DeployRecord, records: DeployRecords, during: string): void {
  record.steps.push({ step: 'stopped', status: 'failed', at: Date.now(), detail: `the agent stopped during step ${during}; its next start completes this` });
  records.save(record);
}

function gateOptions(project: ComposeProject, services: readonly string[], config: StackConfig, deps: MachineDeps, reportWaiting: boolean) {
  return {
    project: project.project,
    services,
    healthTimeoutMs: config.deploy.healthTimeout,
    stableForMs: config.deploy.stableFor,
    ...(config.deploy.probe ? { probe: config.deploy.probe } : {}),
    ...(deps.signal ? { signal: deps.signal } : {}),
    ...(reportWaiting ? { onWaiting: (why: string) => deps.progress({ type: 'waiting', detail: why }) } : {}),
  };
}

/** Removes keep tags of deploys other than the recent ones (the images go once nothing uses them). */
async function pruneKeepTags(engine: DockerEngine, project: string, keep: readonly number[]): Promise<void> {
  const wanted = new Set(keep);
  for (const tag of await engine.listImageTags(`deckhand-keep/${project}-*`)) {
    const id = Number(/:deploy-(\d+)(-before)?$/.exec(tag)?.[1]);
    if (Number.isInteger(id) && !wanted.has(id)) await engine.untagImage(tag);
  }
}

async function restoreFiles(
  state: StackState,
  dir: string,
  envFile: string,
  isRepo: boolean,
  record: DeployRecord,
  snapshots: EnvSnapshots,
  exec: (cmd: Command) => Promise<unknown>,
): Promise<void> {
  const content = snapshots.load(state.env);
  if (isRepo && state.ref) {
    await exec(gitCheckout(dir, state.ref)).catch(explainGitPermission(dir));
    record.refAfter = state.ref;
  }
  if (readEnvFile(envFile) !== content) writeFileAtomic(envFile, content);
  record.envAfter = state.env;
}

/**
 * From the resolved compose file: service -> image reference (a built service
 * without `image` gets compose's default name), and which services are built.
 */
async function resolveServices(p: ComposeProject, exec: (cmd: Command) => Promise<{ stdout: string }>): Promise<{ refs: Record<string, string>; built: Set<string>; resolved: string }> {
  const out = (await exec(composeResolved(p))).stdout;
  const doc = parseYaml(out) as { services?: Record<string, { image?: string; build?: unknown }> };
  const refs: Record<string, string> = {};
  const built = new Set<string>();
  const v1 = p.cli[0] === 'docker-compose';
  for (const [service, def] of Object.entries(doc.services ?? {})) {
    refs[service] = def.image ?? `${p.project}${v1 ? '_' : '-'}${service}`;
    if (def.build !== undefined) built.add(service);
  }
  return { refs, built, resolved: out };
}
