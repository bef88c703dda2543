// kill -9 at arbitrary moments while the agent writes every second: after
// each kill the database is intact, nothing another reader saw committed is
// gone, and the next start carries on (migrations are not re-applied).
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { ROOT, removeDir, startAgent, tempDir, waitFor } from '../helpers/agent.js';

function counts(file: string): { raw: number; minute: number; events: number; migrations: number } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const one = (sql: string) => db.prepare(sql).pluck().get() as number;
    return {
      raw: one('SELECT count(*) FROM metric_raw'),
      minute: one('SELECT count(*) FROM metric_minute'),
      events: one('SELECT count(*) FROM events'),
      migrations: one('SELECT count(*) FROM schema_migrations'),
    };
  } finally {
    db.close();
  }
}

function integrity(file: string): string {
  const db = new Database(file);
  try {
    return db.pragma('integrity_check', { simple: true }) as string;
  } finally {
    db.close();
  }
}

describe('crash safety of the store', { timeout: 180_000 }, () => {
  it('survives kill -9 during writes, ten times over', async () => {
    const dir = tempDir('crash');
    const file = join(dir, 'data', 'deckhand.db');
    let before = { raw: 0, minute: 0, events: 0, migrations: 0 };
    try {
      for (let round = 0; round < 10; round++) {
        const agent = await startAgent({ dir, config: { dataDir: join(dir, 'data'), metrics: { interval: '1s' } } });
        await agent.waitReady();
        // Let it write a little, then kill it at a moment that varies round to round.
        await new Promise((r) => setTimeout(r, 700 + ((round * 373) % 1500)));
        const seen = counts(file);
        agent.child.kill('SIGKILL');
        const exit = await agent.exited;
        assert.equal(exit.signal, 'SIGKILL');

        assert.equal(integrity(file), 'ok', `round ${round}: integrity`);
        const now = counts(file);
        assert.ok(now.raw >= seen.raw, `round ${round}: raw rows ${now.raw} < ${seen.raw} seen committed before the kill`);
        assert.ok(now.events >= seen.events, `round ${round}: events lost`);
        assert.ok(now.raw > before.raw, `round ${round}: the agent wrote something`);
        if (round > 0) assert.equal(now.migrations, before.migrations, 'migrations applied once');
        before = now;
      }
      // And it still starts and serves after all that.
      const last = await startAgent({ dir, config: { dataDir: join(dir, 'data'), metrics: { interval: '1s' } } });
      await last.waitReady();
      await waitFor(() => counts(file).raw > before.raw, 10_000, () => 'writes after the last restart');
      assert.equal((await last.stop()).code, 0);
      assert.equal(counts(file).events, before.events + 1, 'one more agent.started, nothing else');
    } finally {
      removeDir(dir);
    }
  });

  it('a writer killed mid-transaction loses nothing it had committed', async () => {
    const dir = tempDir('crash-writer');
    const file = join(dir, 'deckhand.db');
    try {
      let total = 0;
      for (let round = 0; round < 8; round++) {
        const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/fixtures/store-writer.ts'), dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
        let committed = 0;
        let err = '';
        child.stdout.on('data', (c: Buffer) => {
          const lines = c.toString().trim().split('\n');
          committed = Number(lines[lines.length - 1]);
        });
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        const exited = new Promise((r) => child.on('exit', r));
        await waitFor(() => committed > 20 + round * 7, 30_000, () => `writer progress: ${err}`);
        child.kill('SIGKILL'); // almost surely inside a transaction: it writes nonstop
        await exited;
        assert.equal(integrity(file), 'ok', `round ${round}`);
        const rows = counts(file).raw;
        // Every tick writes 200 rows; every tick reported committed must be there.
        assert.ok(rows >= (total + committed) * 200, `round ${round}: ${rows} rows < ${(total + committed) * 200} committed`);
        total = rows / 200;
        assert.ok(Number.isInteger(total), 'no partial tick survived');
      }
    } finally {
      removeDir(dir);
    }
  });
});
