// The backup commands' pieces without an agent: the `backup list` table
// (failed runs, deleted files, row counts), the progress line and how often
// a log gets one, the lines a run and a restore end with, the refusal of a
// restore without --yes, and the arguments refused before anything is sent.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import type { BackupInfo, RestoreInfo } from '../../agent/api/protocol.js';
import { runCli } from '../../server-cli/cli.js';
import { databaseArgument, idArgument, limitArgument, nameArgument } from '../../server-cli/commands/backup.js';
import type { Io } from '../../server-cli/io.js';
import {
  describeRows,
  formatCount,
  formatTook,
  progressLine,
  progressThrottle,
  renderBackups,
  renderRestoreEnd,
  renderRunEnd,
  restoreRefusal,
  statusCell,
  verifiedCell,
} from '../../server-cli/render/backups.js';
import { palette, stripAnsi } from '../../server-cli/render/colour.js';
import { createStepList } from '../../server-cli/render/steps.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const H = 3_600_000;
const ago = (ms: number) => new Date(NOW - ms).toISOString();
const plain = palette(false);
const colour = palette(true);
const SHA = `ab12cd34ef56${'0'.repeat(52)}`;
const GiB = 2 ** 30;
const MiB = 2 ** 20;

function backup(over: Partial<BackupInfo> = {}): BackupInfo {
  return {
    id: 17,
    name: 'db',
    startedAt: ago(3 * H),
    finishedAt: ago(3 * H - 14_200),
    durationMs: 14_200,
    status: 'verified',
    verified: true,
    trigger: 'schedule',
    actor: 'schedule',
    file: 'db-20260601T090000Z.dump',
    size: 1.2 * GiB,
    sha256: SHA,
    verify: 'read',
    ...over,
  };
}

function restore(over: Partial<RestoreInfo> = {}): RestoreInfo {
  return {
    id: 3,
    backupId: 17,
    name: 'db',
    database: 'app',
    newDatabase: false,
    actor: 'ops',
    startedAt: ago(40_000),
    finishedAt: ago(9_000),
    durationMs: 31_000,
    status: 'succeeded',
    safetyBackupId: 19,
    ...over,
  };
}

describe('backup list table', () => {
  const rows = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`public.t${i}`, 100_000]));

  it('newest first as given: ID, NAME, STARTED as an age, SIZE, VERIFIED with row counts, STATUS', () => {
    const text = renderBackups(
      plain,
      {
        backups: [
          backup({ id: 19, startedAt: ago(5 * 60_000), size: 1.25 * GiB, verify: 'restore', rows }),
          backup({ id: 18, startedAt: ago(H), status: 'failed', verified: false, size: undefined, sha256: undefined, error: 'pg_dump: error: connection to server failed: FATAL:  password authentication failed for user "app"' }),
          backup({ id: 17, startedAt: ago(3 * H), size: 512 * MiB }),
          backup({ id: 9, startedAt: ago(4 * 24 * H), status: 'missing', verified: false }),
        ],
      },
      NOW,
    );
    assert.equal(
      text,
      [
        'ID  NAME  STARTED       SIZE  VERIFIED                    STATUS',
        '19  db    5 min ago  1.3 GiB  yes (12 tables, 1.2M rows)  verified',
        '18  db    1 h ago          -  no                          FAILED',
        '    error: pg_dump: error: connection to server failed: FATAL:  password authentication failed for user "app"',
        '17  db    3 h ago    512 MiB  yes                         verified',
        ' 9  db    4 d ago    1.2 GiB  -                           missing (file deleted)',
        '',
      ].join('\n'),
    );
  });

  it('a failed or interrupted run is red, its error under it; never green', () => {
    const text = renderBackups(colour, { backups: [backup({ id: 18, status: 'failed', verified: false, error: 'disk full' }), backup({ id: 16, status: 'interrupted', verified: false })] }, NOW);
    const lines = text.split('\n');
    assert.ok(lines[1]!.includes('\x1b[31m18'), 'the id is red');
    assert.ok(lines[1]!.includes('\x1b[31m\x1b[1mFAILED'), lines[1]);
    assert.ok(lines[2]!.includes('\x1b[31merror: disk full'), lines[2]);
    assert.ok(!lines[1]!.includes('\x1b[32m'), 'nothing green on a failed row');
    assert.match(stripAnsi(lines[3]!), /^16 .* INTERRUPTED$/);
    assert.match(stripAnsi(lines[4]!), /^ {4}the run was cut short/);
  });

  it('a multi-line error stays on its one indented line', () => {
    const text = renderBackups(plain, { backups: [backup({ status: 'failed', verified: false, error: 'pg_dump: error: x\npg_dump: detail: y\n' })] }, NOW);
    assert.match(text, /\n {4}error: pg_dump: error: x \| pg_dump: detail: y\n$/);
  });

  it('cells: verified, running, size drop', () => {
    assert.equal(verifiedCell(plain, backup({ status: 'running', verified: false, size: undefined })), '-');
    assert.equal(statusCell(plain, backup({ status: 'running', verified: false })), 'running');
    assert.equal(verifiedCell(plain, backup({ verify: 'restore', rows: { 'public.users': 1 } })), 'yes (1 table, 1 row)');
    assert.equal(statusCell(plain, backup({ sizeDrop: true })), 'verified (size drop)');
  });

  it('counts read at a glance', () => {
    assert.equal(formatCount(0), '0');
    assert.equal(formatCount(950), '950');
    assert.equal(formatCount(12_345), '12.3k');
    assert.equal(formatCount(123_456), '123k');
    assert.equal(formatCount(1_000), '1k');
    assert.equal(formatCount(999_960), '1M');
    assert.equal(formatCount(1_234_567), '1.2M');
    assert.equal(formatCount(3_400_000_000), '3.4G');
    assert.equal(describeRows({}), '0 tables, 0 rows');
    assert.equal(describeRows({ 'public.a': 10, 'public.b': 5 }), '2 tables, 15 rows');
  });
});

describe('backup progress', () => {
  it('bytes and rate; of the total with a percentage when known', () => {
    assert.equal(progressLine({ type: 'progress', step: 'dump', bytes: 412 * MiB, bytesPerSecond: 95 * MiB, elapsedMs: 4_300 }), 'dump 412 MiB at 95 MiB/s');
    assert.equal(progressLine({ type: 'progress', step: 'restore', bytes: 400 * MiB, bytesPerSecond: 80 * MiB, elapsedMs: 5_000, total: 1.2 * GiB }), 'restore 400 MiB of 1.2 GiB (32%) at 80 MiB/s');
    assert.equal(progressLine({ type: 'progress', step: 'verify', bytes: 2 * GiB, bytesPerSecond: 0, elapsedMs: 5_000, total: 1 * GiB }), 'verify 2.0 GiB of 1.0 GiB (100%) at 0 B/s');
  });

  it('named after the step running when that is another (a checksum reads the file like a verify)', () => {
    assert.equal(progressLine({ type: 'progress', step: 'verify', bytes: 400 * MiB, bytesPerSecond: 200 * MiB, elapsedMs: 2_000, total: 800 * MiB }, 'checksum'), 'checksum 400 MiB of 800 MiB (50%) at 200 MiB/s');
  });

  it('a log gets the first line of a step, then one every few seconds', () => {
    const allow = progressThrottle(5_000);
    assert.equal(allow(0, 'dump'), true);
    assert.equal(allow(1_000, 'dump'), false);
    assert.equal(allow(4_999, 'dump'), false);
    assert.equal(allow(5_000, 'dump'), true);
    assert.equal(allow(5_100, 'verify'), true, 'a new step shows at once');
    assert.equal(allow(6_000, 'verify'), false);
  });

  it('plain: the progress line stays, indented under the steps', () => {
    let text = '';
    const list = createStepList({ stream: { write: (t) => void (text += t), isTTY: false, columns: Infinity }, palette: plain, now: () => NOW });
    list.event({ type: 'step', step: 'space', status: 'ok', ms: 3, detail: '38 GiB free' });
    list.event({ type: 'step', step: 'dump', status: 'started' });
    list.progress('dump 412 MiB at 95 MiB/s');
    list.event({ type: 'step', step: 'dump', status: 'ok', ms: 9_000, detail: '1.2 GiB' });
    assert.equal(text, ['[  0.0s] space ok: 38 GiB free', '         dump 412 MiB at 95 MiB/s', '[  9.0s] dump ok: 1.2 GiB', ''].join('\n'));
  });

  it('on a terminal: the progress line lives under the running step and goes when the step ends', () => {
    let text = '';
    const list = createStepList({ stream: { write: (t) => void (text += t), isTTY: true, columns: 80 }, palette: plain, now: () => NOW, tickMs: 60_000 });
    list.event({ type: 'step', step: 'dump', status: 'started' });
    list.progress('dump 100 MiB at 95 MiB/s');
    list.progress('dump 412 MiB at 95 MiB/s');
    list.event({ type: 'step', step: 'dump', status: 'ok', ms: 4_300 });
    list.done();
    assert.equal(
      text,
      [
        '⠋ dump       0.0s\n',
        '\x1b[1A\x1b[J⠋ dump       0.0s\n           dump 100 MiB at 95 MiB/s\n',
        '\x1b[2A\x1b[J⠋ dump       0.0s\n           dump 412 MiB at 95 MiB/s\n',
        '\x1b[2A\x1b[J✓ dump       4.3s\n',
      ].join(''),
    );
  });
});

describe('the line a run ends with', () => {
  it('verified: size, time, short checksum', () => {
    assert.equal(renderRunEnd(plain, backup()), 'backup db 17 verified: 1.2 GiB in 14.2 s (sha256 ab12cd34ef56…)\n');
  });

  it('restore-verified: the row counts too', () => {
    assert.equal(renderRunEnd(plain, backup({ verify: 'restore', rows: { 'public.a': 1_000_000, 'public.b': 200_000 } })), 'backup db 17 verified: 1.2 GiB in 14.2 s (sha256 ab12cd34ef56…); restored for the check: 2 tables, 1.2M rows\n');
  });

  it('a size drop: a warning line under it', () => {
    const lines = renderRunEnd(plain, backup({ sizeDrop: true })).split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[1]!, /^warning: it is under half the size of the verified backup before it; it is kept/);
  });

  it('failed: FAILED and the error', () => {
    assert.equal(renderRunEnd(plain, backup({ id: 18, status: 'failed', verified: false, size: undefined, sha256: undefined, error: 'pg_dump: error: connection refused' })), 'backup db 18 FAILED: pg_dump: error: connection refused\n');
    assert.equal(renderRunEnd(plain, backup({ id: 18, status: 'interrupted', verified: false })), 'backup db 18 INTERRUPTED: the agent gave no reason\n');
    assert.ok(renderRunEnd(colour, backup({ status: 'failed', verified: false })).includes('\x1b[31mFAILED'));
  });

  it('times read "14.2 s", "31 s", "2 min 5 s", "1 h 3 min"', () => {
    assert.equal(formatTook(14_200), '14.2 s');
    assert.equal(formatTook(31_000), '31 s');
    assert.equal(formatTook(125_000), '2 min 5 s');
    assert.equal(formatTook(120_000), '2 min');
    assert.equal(formatTook(3_780_000), '1 h 3 min');
  });
});

describe('the line a restore ends with', () => {
  const c = { hostFlag: '', touched: true };

  it('succeeded: into which database, how long, the safety backup and the command that undoes it', () => {
    assert.equal(renderRestoreEnd(plain, restore(), c), 'restored backup 17 into app in 31 s; the database before it is backup 19: to undo, deckhand backup restore 19 --yes\n');
    assert.equal(renderRestoreEnd(plain, restore(), { ...c, hostFlag: ' -H web-1' }), 'restored backup 17 into app in 31 s; the database before it is backup 19: to undo, deckhand backup restore 19 --yes -H web-1\n');
  });

  it('into a new database (--to): nothing was replaced, undo is dropping it', () => {
    assert.equal(renderRestoreEnd(plain, restore({ database: 'app_copy', newDatabase: true }), c), 'restored backup 17 into the new database app_copy in 31 s; nothing was replaced (to undo, drop app_copy)\n');
  });

  it('failed before the restore step: the database was left as it was', () => {
    assert.equal(
      renderRestoreEnd(plain, restore({ status: 'failed', safetyBackupId: undefined, error: 'checksum mismatch: the file changed since it was verified' }), { ...c, touched: false }),
      'restore of backup 17 into app FAILED: checksum mismatch: the file changed since it was verified\napp was left as it was\n',
    );
  });

  it('failed in the restore step (one transaction): left as it was, and the safety backup named', () => {
    assert.equal(
      renderRestoreEnd(plain, restore({ status: 'failed', error: 'restore failed: pg_restore: error: could not execute query' }), c),
      'restore of backup 17 into app FAILED: restore failed: pg_restore: error: could not execute query\napp was left as it was; the safety backup taken before it is backup 19\n',
    );
    assert.equal(renderRestoreEnd(plain, restore({ status: 'interrupted', error: 'the agent stopped during the restore' }), c), 'restore of backup 17 into app INTERRUPTED: the agent stopped during the restore\napp was left as it was; the safety backup taken before it is backup 19\n');
  });

  it('--to that failed: the new database may be left behind once created', () => {
    assert.equal(
      renderRestoreEnd(plain, restore({ status: 'failed', database: 'app_copy', newDatabase: true, error: 'x' }), c),
      'restore of backup 17 into the new database app_copy FAILED: x\nno database was replaced; app_copy may be left behind, empty: drop it before trying again; the safety backup taken before it is backup 19\n',
    );
    assert.equal(renderRestoreEnd(plain, restore({ status: 'failed', database: 'app_copy', newDatabase: true, safetyBackupId: undefined, error: 'database app_copy already exists' }), { ...c, touched: false }), 'restore of backup 17 into the new database app_copy FAILED: database app_copy already exists\nno database was touched\n');
  });
});

describe('restore without --yes', () => {
  it('says what would be replaced, naming the database when known', () => {
    assert.equal(restoreRefusal({ id: 17, host: 'web-1', database: 'app' }), 'restoring backup 17 replaces database app on web-1; run again with --yes');
    assert.equal(
      restoreRefusal({ id: 17, host: 'web-1', name: 'db', database: 'app', startedAt: ago(3 * H), now: NOW }),
      'restoring backup 17 (db, 3 h ago) replaces database app on web-1; run again with --yes',
    );
    assert.equal(restoreRefusal({ id: 17, host: 'web-1' }), 'restoring backup 17 replaces its database on web-1; run again with --yes');
    assert.equal(restoreRefusal({ id: 17, host: 'web-1', to: 'app_copy' }), 'restoring backup 17 creates the database app_copy on web-1 (it must not exist yet) and takes a safety backup first; run again with --yes');
  });
});

describe('backup arguments', () => {
  it('parsers accept what the API takes and refuse the rest', () => {
    assert.equal(nameArgument('db'), 'db');
    assert.equal(idArgument('17'), 17);
    assert.equal(limitArgument('100000'), 100_000);
    assert.equal(databaseArgument('app_copy'), 'app_copy');
    for (const bad of ['', '0', '-1', '1.5', 'abc', '1e3', '99999999999999999']) assert.throws(() => idArgument(bad), /expected/, bad);
    for (const bad of ['0', '100001', 'x']) assert.throws(() => limitArgument(bad), /expected/, bad);
    for (const bad of ['-x', 'app;drop', 'postgres://u@h/db', '1app', 'a'.repeat(64), 'dbname=app host=evil']) assert.throws(() => databaseArgument(bad), /must be a database name/, bad);
  });

  function captureIo(env: NodeJS.ProcessEnv) {
    let out = '';
    let err = '';
    const io: Io = {
      env,
      stdout: { write: (t) => void (out += t), isTTY: false, columns: Infinity },
      stderr: { write: (t) => void (err += t), isTTY: false, columns: Infinity },
      stdin: new PassThrough(),
      now: () => NOW,
      onInterrupt: () => () => {},
    };
    return { io, out: () => out, err: () => err };
  }
  // Nothing listens on port 1: anything that tried to connect would be refused (exit 3), not refused as usage (exit 2).
  const env = { DECKHAND_URL: 'wss://127.0.0.1:1/v1', DECKHAND_TOKEN: 't', XDG_CONFIG_HOME: '/nonexistent-config', HOME: '/nonexistent-home' };
  const run = async (args: string[]) => {
    const c = captureIo(env);
    const code = await runCli(args, c.io);
    return { code, out: c.out(), err: c.err() };
  };

  it('bad input is a usage error (exit 2), before anything is sent', async () => {
    for (const args of [
      ['backup', 'restore', '17', '--yes', '--to', 'app;drop'],
      ['backup', 'restore', '17', '--yes', '--to', '-x'],
      ['backup', 'restore', 'x', '--yes'],
      ['backup', 'restore', '--yes'],
      ['backup', 'run'],
      ['backup', 'run', 'no/such'],
      ['backup', 'list', '--limit', '0'],
      ['backup', 'list', '--limit', '100001'],
      ['backup', 'nothing'],
    ]) {
      const r = await run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    }
  });

  it('--json on a bad --to: one JSON error document on stdout', async () => {
    const r = await run(['backup', 'restore', '17', '--yes', '--to', 'app;drop', '--json']);
    assert.equal(r.code, 2);
    const doc = JSON.parse(r.out) as { error: { message: string; exitCode: number } };
    assert.equal(doc.error.exitCode, 2);
    assert.match(doc.error.message, /must be a database name/);
  });

  it('without --yes: refused with exit 2, saying what would be replaced (the id when the agent cannot be asked)', async () => {
    const r = await run(['backup', 'restore', '17']);
    assert.equal(r.code, 2);
    assert.match(r.err, /restoring backup 17 replaces its database on 127\.0\.0\.1:1; run again with --yes/);
    const to = await run(['--json', 'backup', 'restore', '17', '--to', 'app_copy']);
    assert.equal(to.code, 2);
    assert.match((JSON.parse(to.out) as { error: { message: string } }).error.message, /creates the database app_copy on 127\.0\.0\.1:1 \(it must not exist yet\) and takes a safety backup first; run again with --yes/);
  });

  it('-H before or after the subcommand reaches it', async () => {
    for (const args of [
      ['-H', 'nope', 'backup', 'list'],
      ['backup', 'list', '-H', 'nope'],
      ['backup', '-H', 'nope', 'list'],
    ]) {
      const r = await run(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.err, /no host named "nope"/, args.join(' '));
    }
  });
});
