// How long a bad deploy leaves the stack broken once deckhand knows it is
// bad: a 3-service stack (the test web image, network_mode host, init: true,
// ports from .env), deployed with `deploy.start {env: {WEB2_HEALTHY: "0"}}`
// so web2's new container never passes its healthcheck (the image serves no
// /health then); healthTimeout 10s. Measured from the `health` step's failed
// event on the stream (the gate gave up) to the stream's end event (the
// rollback done, itself health-gated: the old version healthy again).
//
//   node --import tsx test/bench/deploy-rollback.ts [--reps 5] [--health-timeout 10s]
//
// Also reported: deploy.start -> gate failure (how long the gate took to see
// it, and why: the healthcheck turning unhealthy, or the timeout), the same
// interval from the end record's own timestamps (health step failed `at` ->
// finishedAt), and the rollback step's ms. After each repetition web2 must
// run with WEB_HEALTHY=1 again, healthy, and .env must be byte for byte what
// it was.
//
// Needs: `npm run build` (dist/), scripts/test-env.sh up (dockerd, docker-compose, test images).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, removeDir, waitFor } from '../helpers/agent.js';
import { requireDocker, TestStack } from '../helpers/stack.js';
import { goalLine, goalMet, machineInfo, numberOption, option, percentile, printMachine, printResult, round, sleep, cleanupRegistry, removeKeepTags, startDeployBenchAgent } from './lib.js';

const REPS = numberOption('reps', 5);
const HEALTH_TIMEOUT = option('health-timeout') || '10s';
const GOAL_MS = 15_000;
const SERVICES = ['web1', 'web2', 'web3'];

const composeFile = `version: "2.4"
services:
${SERVICES.map(
  (s) => `  ${s}:
    image: deckhand-test/web:latest
    network_mode: host
    init: true
    labels: { deckhand.test: "1" }
    environment:
      PORT: "\${${s.toUpperCase()}_PORT}"
      WEB_HEALTHY: "\${${s.toUpperCase()}_HEALTHY:-1}"
`,
).join('')}`;

// ------------------------------------------------------------- small helpers --

const { cleanups, cleanup } = cleanupRegistry();

const stat = (xs: number[]) => ({ p50: round(percentile(xs, 50), 0), min: round(Math.min(...xs), 0), max: round(Math.max(...xs), 0) });

/**
 * The agent tags every deploy's images `deckhand-keep/<project>-<service>:deploy-N[-before]`
 * and never removes those tags; they are counted, then removed (tags only: the images
 * are the shared test images).
 */

// ---------------------------------------------------------------- the bench --

interface Rep {
  /** health step failed event -> end event, on the stream. */
  failToEndMs: number;
  /** deploy.start sent -> health step failed event. */
  callToFailMs: number;
  /** up step ok -> health failed: how long the gate waited. */
  gateMs: number;
  /** From the record: health step failed `at` -> finishedAt. */
  recordFailToEndMs: number;
  rollbackStepMs: number;
  reason: string;
}

async function main(): Promise<void> {
  requireDocker();
  const machine = machineInfo(true);
  printMachine(machine);

  const stack = TestStack.unique('bench-rollback', {});
  cleanups.push(() => removeDir(stack.dir));
  cleanups.push(() => stack.down());
  let keepTagsRemoved = false;
  cleanups.push(async () => void (keepTagsRemoved || (await removeKeepTags(stack))));
  const envFile = join(stack.dir, '.env');
  writeFileSync(join(stack.dir, 'compose.yaml'), composeFile);
  const ports: Record<string, number> = {};
  for (const s of SERVICES) ports[s] = await freePort();
  writeFileSync(envFile, SERVICES.map((s) => `${s.toUpperCase()}_PORT=${ports[s]}\n`).join(''));
  await stack.up();

  const deployConfig = { healthTimeout: HEALTH_TIMEOUT, stableFor: '1s', watch: '1s' };
  const { agent: a, client: c, streams, allHealthy } = await startDeployBenchAgent({ stack, services: SERVICES, deploy: deployConfig, cleanups });
  const envBefore = readFileSync(envFile, 'utf8');

  const reps: Rep[] = [];
  const problems: string[] = [];
  for (let i = 1; i <= REPS; i++) {
    await waitFor(allHealthy, 60_000, () => 'all three services healthy before the deploy');
    await sleep(1000);
    const t0 = performance.now();
    const r = await c.call('deploy.start', { env: { WEB2_HEALTHY: '0' } });
    if (!r.result?.stream) throw new Error(`deploy.start: ${JSON.stringify(r)}`);
    const end = await streams.waitEnd(r.result.stream, 300_000);
    const mine = streams.arrivals.filter((x) => x.stream === r.result.stream);
    const failed = mine.find((x) => x.event.type === 'step' && x.event.step === 'health' && x.event.status === 'failed');
    const upOk = mine.find((x) => x.event.type === 'step' && x.event.step === 'up' && x.event.status === 'ok');
    const d = end.event.deploy;
    if (!failed || !upOk || d?.result !== 'rolled_back') {
      throw new Error(`repetition ${i}: expected a failed health gate and a rollback, got ${JSON.stringify(end.event).slice(0, 2000)}`);
    }
    const recFail = (d.steps as { step: string; status: string; at: string; ms?: number }[]).find((s) => s.step === 'health' && s.status === 'failed')!;
    const rollback = (d.steps as { step: string; status: string; ms?: number }[]).find((s) => s.step === 'rollback' && s.status === 'ok');
    const rep: Rep = {
      failToEndMs: round(end.at - failed.at, 0),
      callToFailMs: round(failed.at - t0, 0),
      gateMs: round(failed.at - upOk.at, 0),
      recordFailToEndMs: Date.parse(d.finishedAt) - Date.parse(recFail.at),
      rollbackStepMs: rollback?.ms ?? Number.NaN,
      reason: String(failed.event.detail ?? ''),
    };
    reps.push(rep);

    // The old version is back: web2 runs with WEB_HEALTHY=1, healthy; .env as it was.
    const id = await stack.containerId('web2');
    const [health, env] = (await stack.docker('inspect', '-f', '{{.State.Health.Status}}|{{json .Config.Env}}', id)).trim().split('|');
    const oldVersion = (JSON.parse(env!) as string[]).includes('WEB_HEALTHY=1');
    if (health !== 'healthy' || !oldVersion) problems.push(`repetition ${i}: at the end event web2 was ${health}, ${oldVersion ? 'old' : 'NEW'} env`);
    if (readFileSync(envFile, 'utf8') !== envBefore) problems.push(`repetition ${i}: .env not restored`);
    console.log(`rep ${i}: gate failed -> rolled back ${rep.failToEndMs} ms (record ${rep.recordFailToEndMs} ms, rollback step ${rep.rollbackStepMs} ms); call -> gate failed ${rep.callToFailMs} ms, gate waited ${rep.gateMs} ms: ${rep.reason}; web2 ${health}`);
  }

  const failToEnd = stat(reps.map((r) => r.failToEndMs));
  const recordFailToEnd = stat(reps.map((r) => r.recordFailToEndMs));
  const rollbackStep = stat(reps.map((r) => r.rollbackStepMs));
  const callToFail = stat(reps.map((r) => r.callToFailMs));
  const gate = stat(reps.map((r) => r.gateMs));
  const byTimeout = reps.filter((r) => /not healthy within/.test(r.reason)).length;
  console.log('');
  console.log(`${REPS} bad deploys                                     p50        min        max`);
  const row = (label: string, s: ReturnType<typeof stat>) => console.log(`${label.padEnd(46)} ${String(s.p50).padStart(7)} ms ${String(s.min).padStart(7)} ms ${String(s.max).padStart(7)} ms`);
  row('gate failed -> end event (stream)', failToEnd);
  row('gate failed -> finished (record timestamps)', recordFailToEnd);
  row('rollback step', rollbackStep);
  row('deploy.start -> gate failed', callToFail);
  row('up ok -> gate failed (the gate waiting)', gate);
  console.log(`gate failures by timeout: ${byTimeout} of ${REPS} (the rest: healthcheck turned unhealthy first)`);
  const keepTags = await removeKeepTags(stack);
  keepTagsRemoved = true;
  console.log(`image tags deckhand-keep/${stack.project}-* left by ${REPS} deploys: ${keepTags} (removed now)`);
  for (const p of problems) console.log(`PROBLEM: ${p}`);
  console.log(goalLine('gate failed -> rolled back (max)', failToEnd.max, 'ms', { below: GOAL_MS }));

  printResult('deploy-rollback', {
    machine,
    reps: REPS,
    deployConfig,
    failToEndMs: failToEnd,
    recordFailToEndMs: recordFailToEnd,
    rollbackStepMs: rollbackStep,
    callToFailMs: callToFail,
    gateWaitMs: gate,
    gateTimeouts: byTimeout,
    perRep: reps,
    problems,
    keepTagsLeft: keepTags,
    goal: { belowMs: GOAL_MS, met: goalMet(failToEnd.max, { below: GOAL_MS }) && problems.length === 0 },
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
