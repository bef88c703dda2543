// A deploy as an explicit sequence of recorded steps. Until `up`, nothing
// running is touched, and a failure only puts the files back (git commit,
// .env). From `up` on, a failure rolls back to the recorded images (by ID,
// re-tagged to the names compose uses), .env and commit, health-gated.
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { DockerEngine } from '../../docker/engine.js';
import { run, runChecked } from '../../exec/runner.js';
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
import { applyEnvChanges, readEnvFile, writeFileAtomic } from './envfile.js';
import { healthGate, watchWindow, type ContainerSnapshot } from './gate.js';
import type { DeployKind, DeployRecord, DeployRecords, StepRecord } from './records.js';

/** Deploys whose images keep a tag (so a rollback to them can find them); older tags are removed. */
export const KEEP_DEPLOYS = 10;

/** Free space the Docker root must keep for a deploy to start. */
export const MIN_FREE_DISK_BYTES = 1 << 30;

export interface StackControl {
  engine: DockerEngine;
  project(): Promise<ComposeProject>;
  /** Services of the compose file as last applied. */
  serviceNames(): string[];
  /** service -> image ID of its current container */
  currentImages(): Record<string, string>;
  /** Suspends supervision of these services until the returned function is called. */
  hold(services: readonly string[]): () => void;
  /** After a deploy or rollback: the services the compose file now declares; restart records start afresh. */
  reload(declared: readonly string[]): Promise<void>;
}

/** Where a deploy wants the stack to be. */
export type Target =
  | { kind: 'deploy'; ref?: string; env?: Record<string, string> }
  | { kind: 'rollback' | 'recovery'; state: StackState; targetId?: number };

export interface StackState {
  ref?: string;
  env: string | null;
  refs: Record<string, string>;
  images: Record<string, string>;
}

export interface StepEvent {
  type: 'step';
  step: string;
  status: StepRecord['status'];
  ms?: number;
  detail?: string;
}

export interface MachineDeps {
  records: DeployRecords;
  stack: StackControl;
  config: StackConfig;
  progress: (e: StepEvent | { type: 'waiting'; detail: string }) => void;
  signal?: AbortSignal;
  /** Test hook for kill-at-each-step tests: called when a step starts. */
  onStep?: (step: string) => void;
}

class StepFailure extends Error {}

export async function runDeploy(target: Target, actor: string, services: readonly string[], deps: MachineDeps): Promise<DeployRecord> {
  const { records, stack, config } = deps;
  const project = await stack.project();
  const envFile = join(config.dir, '.env');
  const record = records.create({
    kind: target.kind as DeployKind,
    startedAt: Date.now(),
    actor,
    result: 'running',
    services: [...services],
    envBefore: readEnvFile(envFile),
    envAfter: null,
    envKeys: target.kind === 'deploy' ? Object.keys(target.env ?? {}) : [],
    imageRefs: { before: {} },
    imagesBefore: {},
    steps: [],
    ...(target.kind !== 'deploy' && target.targetId !== undefined ? { targetId: target.targetId } : {}),
  });
  const step = async <T>(name: string, work: () => Promise<T>, detail?: (t: T) => string | undefined): Promise<T> => {
    const t0 = Date.now();
    record.steps.push({ step: name, status: 'started', at: t0 });
    records.save(record);
    deps.onStep?.(name);
    deps.progress({ type: 'step', step: name, status: 'started' });
    try {
      const out = await work();
      const d = detail?.(out);
      record.steps.push({ step: name, status: 'ok', at: Date.now(), ms: Date.now() - t0, ...(d ? { detail: d } : {}) });
      records.save(record);
      deps.progress({ type: 'step', step: name, status: 'ok', ms: Date.now() - t0, ...(d ? { detail: d } : {}) });
      return out;
    } catch (err) {
      const msg = (err as Error).message;
      record.steps.push({ step: name, status: 'failed', at: Date.now(), ms: Date.now() - t0, detail: msg });
      records.save(record);
      deps.progress({ type: 'step', step: name, status: 'failed', ms: Date.now() - t0, detail: msg });
      throw new StepFailure(`${name}: ${msg}`);
    }
  };
  const finish = (result: DeployRecord['result'], error?: string): DeployRecord => {
    record.result = result;
    record.finishedAt = Date.now();
    if (error) record.error = error;
    records.save(record);
    return record;
  };

  // 1. What runs now: enough to put it all back.
  const isRepo = (await run(gitIsRepo(config.dir))).code === 0;
  // A deploy that changes no file resolves the compose file once, after validation.
  const filesChange = target.kind !== 'deploy' || target.ref !== undefined || Object.keys(target.env ?? {}).length > 0;
  await step('record', async () => {
    if (isRepo) record.refBefore = (await runChecked(gitHead(config.dir))).stdout.trim();
    record.imagesBefore = stack.currentImages();
    if (filesChange) record.imageRefs.before = (await resolveServices(project)).refs;
    for (const [service, id] of Object.entries(record.imagesBefore)) await stack.engine.tagImage(id, `${keepTag(project.project, service, record.id)}-before`);
  }, () => `${Object.keys(record.imagesBefore).length} services${record.refBefore ? ` at ${record.refBefore.slice(0, 12)}` : ''}`);
  const before: StackState = { ...(record.refBefore ? { ref: record.refBefore } : {}), env: record.envBefore, refs: record.imageRefs.before, images: record.imagesBefore };

  let touched = false;
  let release: (() => void) | undefined;
  try {
    // 2. Files: the commit and .env the new version wants.
    if (target.kind === 'deploy') {
      if (target.ref) {
        await step('checkout', async () => {
          if (!isRepo) throw new Error(`${config.dir} is not a git repository, so --ref cannot be used`);
          const remotes = (await run(gitRemotes(config.dir))).stdout.trim();
          if (remotes) await runChecked(gitFetch(config.dir));
          const commit = (await run(gitResolve(config.dir, target.ref!))).stdout.trim();
          if (!commit) throw new Error(`no commit for ref "${target.ref}" in ${config.dir}`);
          await runChecked(gitCheckout(config.dir, commit));
          record.refAfter = commit;
          return commit;
        }, (c) => c.slice(0, 12));
      }
      if (target.env && Object.keys(target.env).length > 0) {
        await step('env', async () => {
          record.envAfter = applyEnvChanges(record.envBefore, target.env!);
          writeFileAtomic(envFile, record.envAfter);
        }, () => `set ${Object.keys(target.env!).join(', ')}`);
      }
    } else {
      await step('restore-files', async () => restoreFiles(target.state, config.dir, envFile, isRepo, record));
    }

    // 3. Validate (resolving the file is validating it) and get every image before anything running is touched.
    const { refs: refsAfter, built } = await step('validate', async () => resolveServices(project), (r) => `${Object.keys(r.refs).length} services`);
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
        if (toPull.length) await runChecked(composePull(project, toPull));
        const toBuild = [...built].filter(inScope);
        if (toBuild.length) await runChecked(composeBuild(project, toBuild));
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
      const s = await statfs(info.DockerRootDir ?? '/var/lib/docker');
      const free = s.bavail * s.bsize;
      if (free < MIN_FREE_DISK_BYTES) throw new Error(`only ${Math.round(free / 1048576)} MiB free under ${info.DockerRootDir}; need 1 GiB`);
      return free;
    }, (free) => `${Math.round(free / 1073741824)} GiB free`);
    if (config.deploy.migrate && target.kind === 'deploy') {
      const m = config.deploy.migrate;
      await step('migrate', async () => runChecked(composeMigrate(project, m.service, m.command)), () => `${m.service}: ${m.command.join(' ')}`);
    }

    // 4. From here on, a failure means rolling back.
    const scope = services.length ? [...services] : Object.keys(refsAfter);
    release = stack.hold(scope);
    touched = true;
    await step('up', async () => runChecked(composeUp(project, services)));
    const passed = await step('health', async () => {
      const r = await healthGate(stack.engine, {
        project: project.project,
        services: scope,
        healthTimeoutMs: config.deploy.healthTimeout,
        stableForMs: config.deploy.stableFor,
        ...(config.deploy.probe ? { probe: config.deploy.probe } : {}),
        ...(deps.signal ? { signal: deps.signal } : {}),
        onWaiting: (why) => deps.progress({ type: 'waiting', detail: why }),
      });
      if (!r.ok) throw new Error(r.reason);
      return r.containers;
    }, () => `${scope.length} services healthy`);
    await step('watch', async () => {
      const r = await watchWindow(stack.engine, project.project, passed as Map<string, ContainerSnapshot>, config.deploy.watch, deps.signal);
      if (!r.ok) throw new Error(r.reason);
    }, () => `stable for ${Math.round(config.deploy.watch / 1000)}s`);

    record.imagesAfter = Object.fromEntries([...passed].map(([service, c]) => [service, c.imageId]));
    for (const [service, id] of Object.entries(record.imagesAfter)) await stack.engine.tagImage(id, keepTag(project.project, service, record.id));
    await pruneKeepTags(stack.engine, project.project, records.recentIds(KEEP_DEPLOYS)).catch(() => undefined);
    return finish('succeeded');
  } catch (err) {
    const why = err instanceof StepFailure ? err.message : `internal error: ${(err as Error).message}`;
    if (!touched) {
      await restoreFiles(before, config.dir, envFile, isRepo, record).catch(() => undefined);
      return finish('failed', why);
    }
    // Roll back to what ran before, itself health-gated.
    try {
      await step('rollback', async () => {
        await restoreFiles(before, config.dir, envFile, isRepo, record);
        for (const [service, id] of Object.entries(before.images)) {
          const ref = before.refs[service];
          if (ref) await stack.engine.tagImage(id, ref);
        }
        await runChecked(composeUp(project, services));
        const r = await healthGate(stack.engine, {
          project: project.project,
          services: services.length ? [...services] : Object.keys(before.refs),
          healthTimeoutMs: config.deploy.healthTimeout,
          stableForMs: config.deploy.stableFor,
          ...(config.deploy.probe ? { probe: config.deploy.probe } : {}),
        });
        if (!r.ok) throw new Error(`the previous version is not healthy either: ${r.reason}`);
      }, () => 'previous version healthy');
      return finish('rolled_back', why);
    } catch (rollbackErr) {
      return finish('rollback_failed', `${why}; ${(rollbackErr as Error).message}`);
    }
  } finally {
    release?.();
    // The services as the files now on disk declare them (after a rollback: as before).
    if (touched) await stack.reload(Object.keys(record.result === 'succeeded' ? (record.imageRefs.after ?? {}) : record.imageRefs.before)).catch(() => undefined);
  }
}

/** Removes keep tags of deploys other than the recent ones (the images go once nothing uses them). */
async function pruneKeepTags(engine: DockerEngine, project: string, keep: readonly number[]): Promise<void> {
  const wanted = new Set(keep);
  for (const tag of await engine.listImageTags(`deckhand-keep/${project}-*`)) {
    const id = Number(/:deploy-(\d+)(-before)?$/.exec(tag)?.[1]);
    if (Number.isInteger(id) && !wanted.has(id)) await engine.untagImage(tag);
  }
}

async function restoreFiles(state: StackState, dir: string, envFile: string, isRepo: boolean, record: DeployRecord): Promise<void> {
  if (isRepo && state.ref) {
    await runChecked(gitCheckout(dir, state.ref));
    record.refAfter = state.ref;
  }
  if (readEnvFile(envFile) !== state.env) writeFileAtomic(envFile, state.env);
  record.envAfter = state.env;
}

/**
 * From the resolved compose file: service -> image reference (a built service
 * without `image` gets compose's default name), and which services are built.
 */
async function resolveServices(p: ComposeProject): Promise<{ refs: Record<string, string>; built: Set<string> }> {
  const out = (await runChecked(composeResolved(p))).stdout;
  const doc = parseYaml(out) as { services?: Record<string, { image?: string; build?: unknown }> };
  const refs: Record<string, string> = {};
  const built = new Set<string>();
  const v1 = p.cli[0] === 'docker-compose';
  for (const [service, def] of Object.entries(doc.services ?? {})) {
    refs[service] = def.image ?? `${p.project}${v1 ? '_' : '-'}${service}`;
    if (def.build !== undefined) built.add(service);
  }
  return { refs, built };
}
