// Why a failed deploy failed: masking .env values in what the failed
// container said, the size bounds, the .env reading behind both (and behind
// the changed keys of a rollback), and how the CLI shows it under the step.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeployInfo } from '../../agent/api/protocol.js';
import { changedEnvKeys, envValues } from '../../agent/duties/deploy/envfile.js';
import { boundFailure, FAILURE_LIMITS, inTimeOrder, maskSecrets, secretsOf } from '../../agent/duties/deploy/failures.js';
import { renderDeployRecord } from '../../server-cli/commands/deploy.js';
import { palette } from '../../server-cli/render/colour.js';
import { failureLines } from '../../server-cli/render/failures.js';
import { createStepList } from '../../server-cli/render/steps.js';

const plain = palette(false);

describe('masking .env values in logs and health output', () => {
  it('replaces every occurrence of every value of 4+ characters, before and after, with ***', () => {
    const secrets = secretsOf(['DB_PASSWORD=hunter22\nPORT=80\nFLAG=1\n', 'DB_PASSWORD="n3w pass"\nAPI_KEY=abcd\n']);
    assert.deepEqual(secrets.sort(), ['abcd', 'hunter22', 'n3w pass'].sort());
    assert.equal(maskSecrets('connect with hunter22 failed; hunter22 again, key abcd, new n3w pass', secrets), 'connect with *** failed; *** again, key ***, new ***');
    assert.equal(maskSecrets('port 80 flag 1', secrets), 'port 80 flag 1', 'short values stay: they would blank out every line');
  });

  it('masks the longest value first, so a value holding another is masked whole', () => {
    assert.equal(maskSecrets('token=secret-long-value', ['secret', 'secret-long-value']), 'token=***');
  });

  it('reads quoted, exported and commented values the way compose does', () => {
    const v = envValues('export A="x \\"y\\" z"\nB=\'single $x\'\nC=plain # note\n# D=no\nE=last\nE=wins\n');
    assert.deepEqual([...v], [['A', 'x "y" z'], ['B', 'single $x'], ['C', 'plain'], ['E', 'wins']]);
    assert.deepEqual(secretsOf([null]), []);
  });

  it('names the keys that differ between two .env texts, added and removed ones too', () => {
    assert.deepEqual(changedEnvKeys('A=1\nB=2\nC=3\n', 'A=1\nB=20\nD=4\n'), ['B', 'C', 'D']);
    assert.deepEqual(changedEnvKeys('A=1\n', 'A="1"\n'), []);
    assert.deepEqual(changedEnvKeys(null, null), []);
  });
});

describe('bounding a failure', () => {
  it('keeps the last 50 lines, each at most 500 characters, the output at most 2000, masking before cutting', () => {
    const secret = 'S'.repeat(10);
    const logs = Array.from({ length: 80 }, (_, i) => `line ${i}`);
    logs.push(`${'x'.repeat(495)}${secret}`);
    const f = boundFailure({ service: 'web', exitCode: 3, logs, healthOutput: `${secret}\n${'o'.repeat(5000)}` }, [secret]);
    assert.equal(f.logs.length, FAILURE_LIMITS.lines);
    assert.equal(f.logs[0], 'line 31');
    assert.equal(f.logs.at(-1), `${'x'.repeat(495)}***`, 'masked first: the cut never leaves half a secret');
    assert.ok(f.healthOutput!.startsWith('***\n'));
    assert.ok(f.healthOutput!.length <= FAILURE_LIMITS.outputChars + 30, String(f.healthOutput!.length));
    assert.match(f.healthOutput!, /… \(5004 characters\)$/);
    const long = boundFailure({ service: 'web', logs: ['y'.repeat(2000)] }, []);
    assert.equal(long.logs[0], `${'y'.repeat(500)}… (2000 characters)`);
    assert.equal(f.exitCode, 3);
    assert.equal('health' in long, false);
  });
});

describe('failures in the CLI', () => {
  const failures = [
    { service: 'web', exitCode: 3, logs: ['starting with token ***', 'fatal: cannot connect'] },
    { service: 'api', health: 'unhealthy', healthOutput: 'wget: server returned error: HTTP/1.0 404 Not Found\n', logs: [] },
  ];

  it('shows the exit code or health, what the healthcheck said and the last log lines', () => {
    assert.deepEqual(failureLines(plain, failures, '  '), [
      '  web: exited with code 3',
      '    last 2 log lines:',
      '      | starting with token ***',
      '      | fatal: cannot connect',
      '  api: unhealthy',
      '    healthcheck said: wget: server returned error: HTTP/1.0 404 Not Found',
      '    no log lines',
    ]);
  });

  it('prints them under the failed step in plain output', () => {
    let text = '';
    const list = createStepList({ stream: { write: (t: string) => void (text += t), isTTY: false, columns: 80 } as never, palette: plain, now: () => 0 });
    list.event({ type: 'step', step: 'health', status: 'failed', ms: 1200, detail: 'web: container exited', failures: [failures[0]!] });
    list.event({ type: 'step', step: 'rollback', status: 'ok', ms: 3000, detail: 'previous version healthy' });
    list.done();
    assert.equal(
      text,
      '[  1.2s] health failed: web: container exited\n' +
        '         web: exited with code 3\n' +
        '           last 2 log lines:\n' +
        '             | starting with token ***\n' +
        '             | fatal: cannot connect\n' +
        '[  3.0s] rollback ok: previous version healthy\n',
    );
  });

  it('on a terminal they stay under the failed step, counted as lines that stay', () => {
    let text = '';
    const list = createStepList({ stream: { write: (t: string) => void (text += t), isTTY: true, columns: 80 } as never, palette: plain, now: () => 0, tickMs: 60_000 });
    list.event({ type: 'step', step: 'health', status: 'started' });
    list.event({ type: 'step', step: 'health', status: 'failed', ms: 1200, detail: 'web: container exited', failures: [failures[0]!] });
    list.done();
    assert.equal(list.lines, 5);
    assert.ok(
      text.endsWith(
        '\x1b[1A\x1b[J✗ health     1.2s  web: container exited\n' +
          '           web: exited with code 3\n' +
          '             last 2 log lines:\n' +
          '               | starting with token ***\n' +
          '               | fatal: cannot connect\n',
      ),
      JSON.stringify(text),
    );
  });

  it('deckhand deploys ID: the summary, when, and every step with the failures under the failed gate step', () => {
    const d: DeployInfo = {
      id: 4,
      kind: 'deploy',
      actor: 'ci',
      startedAt: '2025-06-01T11:58:00.000Z',
      finishedAt: '2025-06-01T11:58:05.000Z',
      durationMs: 5000,
      result: 'rolled_back',
      error: 'health: web: container exited',
      services: [],
      ref: {},
      envKeys: ['CRASH'],
      images: { before: { web: `sha256:${'a'.repeat(64)}` } },
      steps: [
        { step: 'record', status: 'started', at: '2025-06-01T11:58:00.000Z' },
        { step: 'record', status: 'ok', at: '2025-06-01T11:58:00.100Z', ms: 100, detail: '1 services' },
        { step: 'health', status: 'failed', at: '2025-06-01T11:58:02.000Z', ms: 1200, detail: 'web: container exited' },
        { step: 'rollback', status: 'ok', at: '2025-06-01T11:58:05.000Z', ms: 3000, detail: 'previous version healthy' },
      ],
      failures: [failures[0]!],
    };
    assert.equal(
      renderDeployRecord(plain, d, Date.parse('2025-06-01T12:00:00Z')),
      'result  rolled back: health: web: container exited\n' +
        'deploy  4 by ci, 5.0s\n' +
        'when    2025-06-01T11:58:00.000Z (2 min ago)\n' +
        'env     CRASH\n' +
        'images  web  aaaaaaaaaaaa (unchanged)\n' +
        'steps\n' +
        '[  0.1s] record ok: 1 services\n' +
        '[  1.2s] health failed: web: container exited\n' +
        '         web: exited with code 3\n' +
        '           last 2 log lines:\n' +
        '             | starting with token ***\n' +
        '             | fatal: cannot connect\n' +
        '[  3.0s] rollback ok: previous version healthy\n',
    );
  });
});

describe('log lines in time order', () => {
  it('sorts stdout and stderr lines by their nanosecond stamps (ties keep their order), then drops the stamps', () => {
    assert.deepEqual(
      inTimeOrder([
        '2026-01-02T03:04:05.1234Z fatal: second',
        '2026-01-02T03:04:05.123399999Z first',
        '2026-01-02T03:04:05Z zeroth',
        '2026-01-02T03:04:05.1234Z third, same time',
        'no stamp at all',
      ]),
      ['no stamp at all', 'zeroth', 'first', 'fatal: second', 'third, same time'],
    );
  });
});
