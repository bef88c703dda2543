// What a deckhand deploy costs on top of compose itself: a 3-service stack
// (the test web image, each on its own free port, network_mode host,
// init: true), deployed unchanged with `deploy.start {}` through the API,
// against plain `<compose> -p PROJECT up -d` of the same unchanged stack, in
// the same run, interleaved (the order alternates each repetition).
//
//   node --import tsx test/bench/deploy-overhead.ts [--reps 10] [--watch 1s] [--trace-commands]
//
// deckhand figures: total = deploy.start sent -> the stream's end event;
// "without gate" = total minus the `health` and `watch` steps' own ms from
// the end record's deploy.steps (the watch window is a fixed wait, 1 s at
// least; the gate on an unchanged, healthy stack is one look). Every step's
// ms is reported too, and "tail" = the watch step's ok event -> end event
// (keep tags, re-reading the compose file). The unchanged stack must not be
// recreated by either: container IDs are checked after every run.
//
// --trace-commands puts logging wrappers in front of docker, the compose CLI
// and git on the agent's PATH and prints every program one deploy ran, with
// its ms (a diagnosis: the wrappers add a few ms each; use the plain run's
// figures).
//
// Needs: `npm run build` (dist/), scripts/test-env.sh up (dockerd, docker-compose, test images).
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, removeDir, waitFor } from '../helpers/agent.js';
import { composeCli, requireDocker, TestStack } from '../helpers/stack.js';
import { flagOption, goalLine, goalMet, machineInfo, numberOption, option, percentile, printMachine, printResult, round, sleep, cleanupRegistry, removeKeepTags, startDeployBenchAgent } from './lib.js';

const REPS = numberOption('reps', 10);
const WATCH = option('watch') || '1s';
const TRACE = flagOption('trace-commands');
const GOAL_EXTRA_MS = 1500;
const SERVICES = ['web1', 'web2', 'web3'];

// ------------------------------------------------------------- small helpers --

const { cleanups, cleanup } = cleanupRegistry();

function timeCommand(argv: string[], cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${argv.join(' ')}: exit ${code}: ${err}`))));
  });
}

/** Wrappers for docker, docker-compose and git that log "ms argv" to a file; returns the PATH to give the agent. */
function commandShims(dir: string, log: string): string {
  mkdirSync(dir, { recursive: true });
  for (const tool of ['docker', 'docker-compose', 'git']) {
    let real: string;
    try {
      real = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
    } catch {
      continue;
    }
    const shim = join(dir, tool);
    writeFileSync(
      shim,
      `#!/bin/sh\nt0=$(date +%s%N)\n"${real}" "$@"\nrc=$?\nt1=$(date +%s%N)\nprintf '%s\\t%s %s\\n' "$(( (t1 - t0) / 1000000 ))" "${tool}" "$*" >>"${log}"\nexit $rc\n`,
    );
    chmodSync(shim, 0o755);
  }
  return `${dir}:${process.env.PATH ?? ''}`;
}

const stat = (xs: number[]) => ({ p50: round(percentile(xs, 50), 0), min: round(Math.min(...xs), 0), max: round(Math.max(...xs), 0) });

/**
 * The agent tags every deploy's images `deckhand-keep/<project>-<service>:deploy-N[-before]`
 * and never removes those tags; they are counted, then removed (tags only: the images
 * are the shared test images).
 */

// ---------------------------------------------------------------- the bench --

interface DeployRun {
  totalMs: number;
  recordMs: number;
  steps: Record<string, number>;
  withoutGateMs: number;
  tailMs: number;
  /** Time outside any step, seen on the stream: "before record", "before images", ..., "after watch". */
  gaps: Record<string, number>;
}

async function main(): Promise<void> {
  requireDocker();
  const machine = machineInfo(true);
  const cli = composeCli();
  const composeVersion = await new Promise<string>((resolve) => {
    const child = spawn(cli[0]!, [...cli.slice(1), 'version', '--short'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('exit', () => resolve(out.trim()));
  });
  printMachine(machine);
  console.log(`compose: ${cli.join(' ')} ${composeVersion}`);

  const services: Record<string, { environment: Record<string, string> }> = {};
  for (const s of SERVICES) services[s] = { environment: { PORT: String(await freePort()) } };
  const stack = TestStack.unique('bench-deploy', services);
  cleanups.push(() => removeDir(stack.dir));
  cleanups.push(() => stack.down());
  let keepTagsRemoved = false;
  cleanups.push(async () => void (keepTagsRemoved || (await removeKeepTags(stack))));
  await stack.up();

  const deployConfig = { healthTimeout: '60s', stableFor: '1s', watch: WATCH };
  const traceLog = join(stack.dir, 'commands.log');
  const { agent: a, client: c, streams, allHealthy } = await startDeployBenchAgent({
    stack,
    services: SERVICES,
    deploy: deployConfig,
    env: { ...(TRACE ? { PATH: commandShims(join(stack.dir, 'shims'), traceLog) } : {}) },
    cleanups,
  });

  const ids = async () => (await Promise.all(SERVICES.map((s) => stack.containerId(s)))).join(',');
  const idsAtStart = await ids();
  let recreated = 0;

  const tracedCommands: string[][] = [];
  const deckhandDeploy = async (): Promise<DeployRun> => {
    if (TRACE) writeFileSync(traceLog, '');
    const t0 = performance.now();
    const r = await c.call('deploy.start', {});
    if (!r.result?.stream) throw new Error(`deploy.start: ${JSON.stringify(r)}`);
    const end = await streams.waitEnd(r.result.stream, 180_000);
    const totalMs = end.at - t0;
    const d = end.event.deploy;
    if (!end.event.ok || d?.result !== 'succeeded') throw new Error(`deploy did not succeed: ${JSON.stringify(end.event)}`);
    const steps: Record<string, number> = {};
    for (const s of d.steps as { step: string; status: string; ms?: number }[]) if (s.status === 'ok' && s.ms !== undefined) steps[s.step] = s.ms;
    if (TRACE) tracedCommands.push(readFileSync(traceLog, 'utf8').split('\n').filter(Boolean));
    const mine = streams.arrivals.filter((x) => x.stream === r.result.stream);
    const watchOk = mine.find((x) => x.event.type === 'step' && x.event.step === 'watch' && x.event.status === 'ok');
    const gaps: Record<string, number> = {};
    let boundary = t0;
    let last = 'call';
    for (const x of mine) {
      if (x.event.type === 'step' && x.event.status === 'started') gaps[`before ${x.event.step}`] = round(x.at - boundary, 0);
      else if (x.event.type === 'step') {
        boundary = x.at;
        last = x.event.step;
      } else if (x.event.type === 'end') gaps[`after ${last}`] = round(x.at - boundary, 0);
    }
    return {
      totalMs,
      recordMs: d.durationMs,
      steps,
      withoutGateMs: totalMs - (steps.health ?? 0) - (steps.watch ?? 0),
      tailMs: watchOk ? end.at - watchOk.at : Number.NaN,
      gaps,
    };
  };
  const plainCompose = () => timeCommand([...cli, '-p', stack.project, 'up', '-d'], stack.dir);
  const settle = async () => {
    if ((await ids()) !== idsAtStart) recreated++;
    await waitFor(allHealthy, 60_000, () => 'all three services healthy again');
    await sleep(1000);
  };

  // Warm-up (caches, first tags), not counted.
  const warmDeploy = await deckhandDeploy();
  await settle();
  const warmCompose = await plainCompose();
  await settle();
  console.log(`warm-up (not counted): deckhand ${round(warmDeploy.totalMs, 0)} ms, compose ${round(warmCompose, 0)} ms`);

  const deploys: DeployRun[] = [];
  const composes: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const order = i % 2 === 0 ? ['deckhand', 'compose'] : ['compose', 'deckhand'];
    for (const which of order) {
      if (which === 'deckhand') deploys.push(await deckhandDeploy());
      else composes.push(await plainCompose());
      await settle();
    }
    const d = deploys.at(-1)!;
    const stepText = Object.entries(d.steps).map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(`rep ${String(i + 1).padStart(2)}: deckhand ${round(d.totalMs, 0)} ms (without gate ${round(d.withoutGateMs, 0)}; ${stepText}; tail ${round(d.tailMs, 0)})   compose ${round(composes.at(-1)!, 0)} ms`);
  }

  const total = stat(deploys.map((d) => d.totalMs));
  const without = stat(deploys.map((d) => d.withoutGateMs));
  const compose = stat(composes);
  const stepNames = [...new Set(deploys.flatMap((d) => Object.keys(d.steps)))];
  const stepMedians = Object.fromEntries(stepNames.map((s) => [s, round(percentile(deploys.map((d) => d.steps[s] ?? 0), 50), 0)]));
  const tail = stat(deploys.map((d) => d.tailMs).filter(Number.isFinite));
  const extra = without.p50 - compose.p50;
  const paired = round(percentile(deploys.map((d, i) => d.withoutGateMs - composes[i]!), 50), 0);

  console.log('');
  console.log(`${REPS} repetitions each, interleaved                 p50        min        max`);
  const row = (label: string, s: ReturnType<typeof stat>) => console.log(`${label.padEnd(46)} ${String(s.p50).padStart(7)} ms ${String(s.min).padStart(7)} ms ${String(s.max).padStart(7)} ms`);
  row('deckhand deploy.start {} (call -> end event)', total);
  row('deckhand, without health and watch steps', without);
  row(`plain ${cli.join(' ')} -p P up -d`, compose);
  row('deckhand tail (watch ok -> end event)', tail);
  console.log(`deckhand steps, p50 ms: ${Object.entries(stepMedians).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const gapNames = [...new Set(deploys.flatMap((d) => Object.keys(d.gaps)))];
  const gapMedians = Object.fromEntries(gapNames.map((g) => [g, round(percentile(deploys.map((d) => d.gaps[g] ?? 0), 50), 0)]));
  console.log(`deckhand outside any step, p50 ms: ${Object.entries(gapMedians).filter(([, v]) => v >= 20).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(`containers recreated by an unchanged deploy or up: ${recreated} of ${REPS * 2 + 2} runs`);
  console.log(`extra over plain compose (p50 - p50): ${extra} ms; paired p50: ${paired} ms`);
  if (TRACE && tracedCommands.length) {
    const last = tracedCommands.at(-1)!;
    const byTool = new Map<string, { n: number; ms: number }>();
    console.log(`programs the agent ran during the last deploy (${last.length}):`);
    for (const line of last) {
      const [ms, cmd] = line.split('\t') as [string, string];
      console.log(`  ${ms.padStart(6)} ms  ${cmd.replaceAll(stack.dir, 'DIR').replaceAll(stack.project, 'PROJECT').replace(/sha256:[0-9a-f]{64}/, 'IMAGE').slice(0, 140)}`);
      const words = cmd.replaceAll(stack.dir, 'DIR').split(' ').filter((w) => w !== '--project-name' && w !== stack.project && w !== '-C' && w !== 'DIR');
      const tool = words.slice(0, words[1] === 'image' || words[0] === 'docker-compose' ? 3 : 2).filter((w) => !w.startsWith('--') || w === '--services' || w === '--quiet').join(' ');
      const t = byTool.get(tool) ?? { n: 0, ms: 0 };
      t.n++;
      t.ms += Number(ms);
      byTool.set(tool, t);
    }
    console.log(`  by program: ${[...byTool].map(([k, v]) => `${k} x${v.n} ${v.ms} ms`).join('; ')}`);
  }
  const keepTags = await removeKeepTags(stack);
  keepTagsRemoved = true;
  console.log(`image tags deckhand-keep/${stack.project}-* left by ${REPS + 1} deploys: ${keepTags} (removed now)`);
  console.log(goalLine('deckhand extra, gate excluded', extra, 'ms', { max: GOAL_EXTRA_MS }));

  printResult('deploy-overhead', {
    machine,
    compose: `${cli.join(' ')} ${composeVersion}`,
    reps: REPS,
    deployConfig,
    deckhandTotalMs: total,
    deckhandWithoutGateMs: without,
    composeUpMs: compose,
    tailMs: tail,
    stepP50Ms: stepMedians,
    outsideStepsP50Ms: gapMedians,
    extraMs: extra,
    pairedExtraMs: paired,
    recreated,
    keepTagsLeft: keepTags,
    perRep: deploys.map((d, i) => ({ deckhandMs: round(d.totalMs, 0), withoutGateMs: round(d.withoutGateMs, 0), steps: d.steps, tailMs: round(d.tailMs, 0), composeMs: round(composes[i]!, 0) })),
    goal: { extraMaxMs: GOAL_EXTRA_MS, met: goalMet(extra, { max: GOAL_EXTRA_MS }) },
  });
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await cleanup();
}
