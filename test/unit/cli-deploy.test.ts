// The deploy commands' pieces without an agent: --set parsing, the step list
// (plain lines and the live terminal rendering), the final summary, the
// deploys table and the exit code of a deploy's end event.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeployInfo, StreamEnd } from '../../agent/api/protocol.js';
import type { Ctx } from '../../server-cli/commands/common.js';
import { deployExitCode, describeChange, parseAssignment, renderDeploys, renderDeploySummary, setArgument, shortImageId } from '../../server-cli/commands/deploy.js';
import { EXIT } from '../../server-cli/errors.js';
import type { Io } from '../../server-cli/io.js';
import { palette, stripAnsi } from '../../server-cli/render/colour.js';
import { createStepList, plainStepLine } from '../../server-cli/render/steps.js';
import { formatElapsed } from '../../server-cli/render/time.js';

const NOW = Date.parse('2025-06-01T12:00:00Z');
const ago = (ms: number) => new Date(NOW - ms).toISOString();
const plain = palette(false);
const IMG1 = `sha256:3f2a1b0c9d8e${'a'.repeat(52)}`;
const IMG2 = `sha256:9a8b7c6d5e4f${'b'.repeat(52)}`;
const DB = `sha256:0123456789ab${'c'.repeat(52)}`;

function deploy(over: Partial<DeployInfo> = {}): DeployInfo {
  return {
    id: 7,
    kind: 'deploy',
    actor: 'laptop',
    startedAt: ago(3 * 60_000),
    finishedAt: ago(3 * 60_000 - 14_200),
    durationMs: 14_200,
    result: 'succeeded',
    services: [],
    ref: {},
    envKeys: ['WEB_TAG'],
    images: { before: { web: IMG1, db: DB }, after: { web: IMG2, db: DB } },
    steps: [],
    ...over,
  };
}

function stream(isTTY: boolean, columns = 80) {
  let text = '';
  return { s: { write: (t: string) => void (text += t), isTTY, columns }, text: () => text };
}

function ctxFor(columns = 120): Ctx {
  const out = stream(false, columns).s;
  const io = { env: {}, stdout: out, stderr: out, now: () => NOW } as unknown as Io;
  return { io, out: plain, err: plain, exitCode: EXIT.ok };
}

describe('--set KEY=VALUE', () => {
  it('splits at the first "=": the value may hold "=", spaces, or be empty', () => {
    assert.deepEqual(parseAssignment('WEB_TAG=v2'), ['WEB_TAG', 'v2']);
    assert.deepEqual(parseAssignment('DATABASE_URL=postgres://u:p@h/db?sslmode=require&x=1'), ['DATABASE_URL', 'postgres://u:p@h/db?sslmode=require&x=1']);
    assert.deepEqual(parseAssignment('GREETING=hello world'), ['GREETING', 'hello world']);
    assert.deepEqual(parseAssignment('EMPTY='), ['EMPTY', '']);
    assert.deepEqual(parseAssignment('_x1=='), ['_x1', '=']);
  });

  it('refuses what is not KEY=VALUE with a KEY an environment variable name', () => {
    for (const bad of ['WEB_TAG', '=v2', '1ABC=x', 'WEB-TAG=x', 'A B=x', 'ÄB=x', ' A=x']) {
      assert.throws(() => parseAssignment(bad), { name: 'CliError', exitCode: 2 }, bad);
    }
    assert.throws(() => parseAssignment('A=line1\nline2'), /single line/);
    assert.throws(() => parseAssignment('A=x\r'), /single line/);
  });

  it('refuses a value compose cannot take literally, naming the key and not the value', () => {
    for (const [text, why] of [['PASSWORD=s3cr3t${HOME}', /the value of PASSWORD contains \$\{\.\.\.\}, which docker-compose v1 expands/], ['PASSWORD=s3cr3t$\\', /the value of PASSWORD contains "\$" together with a backslash/]] as const) {
      assert.throws(() => parseAssignment(text), (err: Error & { exitCode?: number }) => {
        assert.match(err.message, why);
        assert.equal(err.exitCode, 2);
        assert.ok(!err.message.includes('s3cr3t'), err.message);
        return true;
      });
    }
    assert.deepEqual(parseAssignment("PASSWORD='a$b'"), ['PASSWORD', "'a$b'"]);
  });

  it('repeated: collected into one object, a later KEY wins', () => {
    let env = setArgument('A=1');
    env = setArgument('B=x=y', env);
    env = setArgument('A=2', env);
    assert.deepEqual(env, { A: '2', B: 'x=y' });
  });
});

describe('the step list', () => {
  it('plain: one line per finished step, its time in brackets; started lines dropped', () => {
    const o = stream(false);
    const list = createStepList({ stream: o.s, palette: plain, now: () => NOW });
    list.event({ type: 'step', step: 'record', status: 'started' });
    list.event({ type: 'step', step: 'record', status: 'ok', ms: 212, detail: '1 services' });
    list.event({ type: 'step', step: 'validate', status: 'started' });
    list.event({ type: 'step', step: 'validate', status: 'ok', ms: 400 });
    list.event({ type: 'step', step: 'migrate', status: 'skipped' });
    list.event({ type: 'step', step: 'health', status: 'started' });
    list.event({ type: 'waiting', detail: 'web: healthcheck not passed yet' });
    list.event({ type: 'waiting', detail: 'web: healthcheck not passed yet' });
    list.event({ type: 'step', step: 'health', status: 'failed', ms: 30_012, detail: 'web: healthcheck failing' });
    list.event({ type: 'step', step: 'rollback', status: 'ok', ms: 123_456, detail: 'previous version healthy' });
    list.done();
    list.event({ type: 'step', step: 'late', status: 'ok', ms: 1 });
    assert.equal(
      o.text(),
      [
        '[  0.2s] record ok: 1 services',
        '[  0.4s] validate ok',
        '[  0.0s] migrate skipped',
        '         waiting: web: healthcheck not passed yet',
        '[ 30.0s] health failed: web: healthcheck failing',
        '[123.5s] rollback ok: previous version healthy',
        '',
      ].join('\n'),
    );
    assert.equal(list.lines, 6);
  });

  it('plain: a wait is printed once per kind, not for every count that moves', () => {
    const o = stream(false);
    const list = createStepList({ stream: o.s, palette: plain, now: () => NOW });
    list.event({ type: 'step', step: 'health', status: 'started' });
    for (let i = 0; i < 10; i++) list.event({ type: 'waiting', detail: `web: running ${i}s of 10s` });
    list.event({ type: 'waiting', detail: 'web: healthcheck not passed yet' });
    list.event({ type: 'waiting', detail: 'web: running 9s of 10s' });
    list.event({ type: 'step', step: 'health', status: 'ok', ms: 10_000 });
    assert.equal(
      o.text(),
      ['         waiting: web: running 0s of 10s', '         waiting: web: healthcheck not passed yet', '         waiting: web: running 9s of 10s', '[ 10.0s] health ok', ''].join('\n'),
    );
  });

  it('plain lines are exactly `[  0.4s] validate ok`', () => {
    assert.equal(plainStepLine(plain, { type: 'step', step: 'validate', status: 'ok', ms: 400 }), '[  0.4s] validate ok');
    assert.equal(plainStepLine(plain, { type: 'step', step: 'images', status: 'failed', ms: 1_500, detail: 'image not available: web (x:1)' }), '[  1.5s] images failed: image not available: web (x:1)');
  });

  it('on a terminal: finished steps stay, the running one spins with its time, the wait under it; done erases only the live lines', () => {
    const o = stream(true, 60);
    let now = NOW;
    const list = createStepList({ stream: o.s, palette: plain, now: () => now, tickMs: 60_000 });
    list.event({ type: 'step', step: 'record', status: 'started' });
    now += 200;
    list.event({ type: 'step', step: 'record', status: 'ok', ms: 200, detail: '1 services' });
    list.event({ type: 'step', step: 'health', status: 'started' });
    now += 3_200;
    list.event({ type: 'waiting', detail: 'web: healthcheck not passed yet' });
    list.event({ type: 'step', step: 'health', status: 'failed', ms: 3_300, detail: 'web: healthcheck failing' });
    list.done();
    const text = o.text();
    assert.equal(
      text,
      [
        '⠋ record     0.0s\n',
        '\x1b[1A\x1b[J✓ record     0.2s  1 services\n',
        '⠋ health     0.0s\n',
        '\x1b[1A\x1b[J⠋ health     3.2s\n           waiting: web: healthcheck not passed yet\n',
        '\x1b[2A\x1b[J✗ health     3.3s  web: healthcheck failing\n',
      ].join(''),
    );
    assert.equal(list.lines, 2);
    // What stays on the screen: the finished steps only.
    assert.deepEqual(screen(text), ['✓ record     0.2s  1 services', '✗ health     3.3s  web: healthcheck failing']);
  });

  it('on a terminal: long lines are cut to the width, so the redraw counts lines right', () => {
    const o = stream(true, 30);
    const list = createStepList({ stream: o.s, palette: plain, now: () => NOW, tickMs: 60_000 });
    list.event({ type: 'step', step: 'health', status: 'started' });
    list.event({ type: 'waiting', detail: 'web: healthcheck not passed yet, and a lot more to say' });
    const lines = screen(o.text());
    assert.ok(lines.every((l) => [...l].length <= 29), JSON.stringify(lines));
    assert.match(lines[1]!, /…$/);
    list.done();
    assert.deepEqual(screen(o.text()), []);
  });

  it('on a terminal the spinner turns on its own', async () => {
    const o = stream(true);
    const list = createStepList({ stream: o.s, palette: plain, now: () => NOW, tickMs: 5 });
    list.event({ type: 'step', step: 'up', status: 'started' });
    await new Promise((r) => setTimeout(r, 40));
    list.done();
    assert.ok(o.text().includes('⠙ up'), o.text());
    const after = o.text();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(o.text(), after, 'nothing drawn after done');
  });
});

/** Replays cursor-up and erase-below over the written text: the lines left on the screen. */
function screen(text: string): string[] {
  const lines: string[] = [];
  const re = /\x1b\[(\d+)A\x1b\[J|([^\n\x1b]*)\n/g;
  for (const m of text.matchAll(re)) {
    if (m[1]) lines.splice(lines.length - Number(m[1]));
    else lines.push(m[2]!);
  }
  return lines;
}

describe('the summary after a deploy', () => {
  it('succeeded: result, id, who, duration, images before → after as short IDs', () => {
    assert.equal(
      renderDeploySummary(plain, deploy()),
      ['result  succeeded', 'deploy  7 by laptop, 14.2s', 'env     WEB_TAG', 'images  db   0123456789ab (unchanged)', '        web  3f2a1b0c9d8e → 9a8b7c6d5e4f', ''].join('\n'),
    );
  });

  it('rolled back: the reason; no image changed', () => {
    const d = deploy({ id: 8, result: 'rolled_back', error: 'health: web: healthcheck failing', durationMs: 33_100, envKeys: ['WEB_HEALTHY'], images: { before: { web: IMG1 } } });
    assert.equal(renderDeploySummary(plain, d), ['result  rolled back: health: web: healthcheck failing', 'deploy  8 by laptop, 33.1s', 'env     WEB_HEALTHY', 'images  web  3f2a1b0c9d8e (unchanged)', ''].join('\n'));
  });

  it('failed before up, a rollback to a deploy, a ref change', () => {
    const failed = deploy({ result: 'failed', error: 'validate: services.web: bad', envKeys: [], images: { before: { web: IMG1 } } });
    assert.match(renderDeploySummary(plain, failed), /^result {2}failed: validate: services\.web: bad\n/);
    const back = deploy({ id: 9, kind: 'rollback', targetId: 7, envKeys: [], durationMs: 125_000, ref: { before: 'a'.repeat(40), after: 'b'.repeat(40) } });
    const text = renderDeploySummary(plain, back);
    assert.match(text, /\nrollback {2}9 to deploy 7 by laptop, 2m05s\n/);
    assert.match(text, /\nref {7}aaaaaaaaaaaa → bbbbbbbbbbbb\n/);
  });

  it('colours the result on a terminal', () => {
    const p = palette(true);
    assert.ok(renderDeploySummary(p, deploy()).includes('\x1b[32msucceeded\x1b[39m'));
    assert.ok(renderDeploySummary(p, deploy({ result: 'rolled_back', error: 'x' })).includes('\x1b[33mrolled back\x1b[39m: x'));
    assert.ok(renderDeploySummary(p, deploy({ result: 'rollback_failed', error: 'x' })).includes('\x1b[31mrollback failed\x1b[39m'));
  });

  it('short image IDs like docker images; anything else as it is', () => {
    assert.equal(shortImageId(IMG1), '3f2a1b0c9d8e');
    assert.equal(shortImageId('app:1'), 'app:1');
  });
});

describe('the deploys table', () => {
  it('ID, WHEN, WHO, KIND, RESULT, CHANGE, DURATION, newest first as the agent lists them', () => {
    const list = {
      deploys: [
        deploy({ id: 10, kind: 'rollback', targetId: 7, startedAt: ago(30_000), envKeys: [], durationMs: 8_000 }),
        deploy({ id: 9, result: 'running', startedAt: ago(2_000), durationMs: undefined, finishedAt: undefined, envKeys: [], services: ['web', 'worker'] }),
        deploy({ id: 8, result: 'rolled_back', error: 'health: x', startedAt: ago(2 * 3_600_000), envKeys: ['WEB_TAG', 'WEB_HEALTHY'] }),
        deploy({ id: 7, startedAt: ago(3 * 86_400_000), actor: 'ci-deploy', envKeys: [], ref: { before: '1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d', after: '5d6e7f8a9b0c1d2e3f4a5d6e7f8a9b0c1d2e3f4a' } }),
        deploy({ id: 6, kind: 'recovery', actor: 'agent', targetId: 5, result: 'succeeded', envKeys: [], startedAt: ago(4 * 86_400_000) }),
        deploy({ id: 5, result: 'interrupted', envKeys: [], startedAt: ago(4 * 86_400_000), durationMs: 61_000 }),
      ],
    };
    assert.equal(
      renderDeploys(ctxFor(), list),
      [
        'ID  WHEN      WHO        KIND      RESULT       CHANGE                   DURATION',
        '10  30 s ago  laptop     rollback  succeeded    to 7                         8.0s',
        ' 9  just now  laptop     deploy    running      services web,worker             -',
        ' 8  2 h ago   laptop     deploy    rolled back  env WEB_TAG,WEB_HEALTHY     14.2s',
        ' 7  3 d ago   ci-deploy  deploy    succeeded    ref 1a2b3c4→5d6e7f8         14.2s',
        ' 6  4 d ago   agent      recovery  succeeded    undo 5                      14.2s',
        ' 5  4 d ago   laptop     deploy    interrupted  -                           1m01s',
        '',
      ].join('\n'),
    );
  });

  it('CHANGE for a first ref: only the commit after', () => {
    assert.equal(describeChange(deploy({ envKeys: [], ref: { after: 'f'.repeat(40) } })), 'ref →fffffff');
    assert.equal(describeChange(deploy({ envKeys: [], ref: { before: 'f'.repeat(40), after: 'f'.repeat(40) } })), '-');
  });
});

describe('exit code of a deploy', () => {
  const end = (ok: boolean, d?: Partial<DeployInfo>): StreamEnd => ({ type: 'end', ok, ...(d ? { deploy: deploy(d) } : {}) });
  it('0 only when it succeeded', () => {
    assert.equal(deployExitCode(end(true, { result: 'succeeded' })), EXIT.ok);
  });
  it('1 when it rolled back, failed, or its rollback failed, or was interrupted (SPEC: a deploy that rolled back is a failure)', () => {
    for (const result of ['rolled_back', 'failed', 'rollback_failed', 'interrupted', 'running'] as const) assert.equal(deployExitCode(end(false, { result })), EXIT.failed, result);
  });
  it('1 for an end without a deploy record, or one that contradicts itself', () => {
    assert.equal(deployExitCode({ type: 'end', ok: false, error: 'internal error: boom' }), EXIT.failed);
    assert.equal(deployExitCode({ type: 'end', ok: true }), EXIT.failed);
    assert.equal(deployExitCode(end(true, { result: 'rolled_back' })), EXIT.failed);
  });
});

describe('formatElapsed', () => {
  it('seconds with a tenth under a minute, then minutes and hours', () => {
    assert.deepEqual([0, 49, 400, 59_900, 59_960, 61_000, 3_599_000, 3_600_000, 3_780_000].map(formatElapsed), ['0.0s', '0.0s', '0.4s', '59.9s', '1m00s', '1m01s', '59m59s', '1h00m', '1h03m']);
  });
});

// The screen helper must itself be right for the tests above to mean anything.
describe('screen replay (test helper)', () => {
  it('applies cursor-up and erase-below', () => {
    assert.deepEqual(screen('a\nb\n\x1b[1A\x1b[Jc\n'), ['a', 'c']);
    assert.deepEqual(stripAnsi('\x1b[32mok\x1b[39m'), 'ok');
  });
});
