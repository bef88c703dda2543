// Hostile or broken config input: files that are not files, files too big,
// huge maps, alias bombs, long values; and a dataDir others could write to.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LineCounter, parseDocument } from 'yaml';
import { checkDataDir, dataDirProblems, shellWord } from '../../agent/config/data-dir.js';
import { boundProblems, ConfigError, keyPath, MAX_PROBLEMS, parseConfigText } from '../../agent/config/load.js';
import { clip, quote } from '../../agent/config/primitives.js';
import { bytesText, MAX_CONFIG_BYTES, readConfigText, refusal, UnreadableConfig } from '../../agent/config/read.js';
import { positionAt, TOKEN_LIMITS, tokenProblems } from '../../agent/config/tokens.js';
import { keyId, TREE_LIMITS, treeProblems } from '../../agent/config/tree.js';
import { removeDir, tempDir } from '../helpers/agent.js';

function problems(yaml: string): string[] {
  try {
    parseConfigText(yaml);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  assert.fail('expected config errors');
}

function parsed(yaml: string) {
  const lines = new LineCounter();
  const doc = parseDocument(yaml, { uniqueKeys: false, lineCounter: lines });
  assert.deepEqual(doc.errors, []);
  return { doc, lines };
}

function tree(yaml: string, limits = TREE_LIMITS): string[] {
  const { doc, lines } = parsed(yaml);
  return treeProblems(doc, lines, limits);
}

function manyKeys(count: number): string {
  let text = '';
  for (let i = 0; i < count; i++) text += `key${i}: ${i}\n`;
  return text;
}

/** Nine aliases of nine aliases ...: 9^levels strings from a few hundred bytes. */
function billionLaughs(levels = 9): string {
  let text = 'l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n';
  for (let i = 1; i <= levels; i++) text += `l${i}: &l${i} [${Array(9).fill(`*l${i - 1}`).join(', ')}]\n`;
  return text;
}

function timed<T>(work: () => T): { value: T; ms: number } {
  const t0 = performance.now();
  const value = work();
  return { value, ms: performance.now() - t0 };
}

describe('config input: duplicate keys, in linear time', () => {
  it('40,000 distinct keys: no problem, the check well under a second', () => {
    const { doc, lines } = parsed(manyKeys(40_000));
    const { value, ms } = timed(() => treeProblems(doc, lines));
    assert.deepEqual(value, []);
    assert.ok(ms < 500, `took ${Math.round(ms)} ms`);
  });

  it('40,000 keys with a duplicate at the end: found with both places, the check well under a second', () => {
    const { doc, lines } = parsed(`${manyKeys(40_000)}key7: again\n`);
    const { value, ms } = timed(() => treeProblems(doc, lines));
    assert.deepEqual(value, ['line 40001, column 1: duplicate key "key7" (first at line 8, column 1)']);
    assert.ok(ms < 500, `took ${Math.round(ms)} ms`);
  });

  it('a whole config of 40,000 unknown keys fails in seconds, not the 20 s of a quadratic check, and prints a bounded list', () => {
    const { value, ms } = timed(() => problems(manyKeys(40_000)));
    assert.equal(value.length, MAX_PROBLEMS + 1);
    assert.equal(value.at(-1), `and ${40_000 - MAX_PROBLEMS} more problems`);
    assert.ok(ms < 5000, `took ${Math.round(ms)} ms`);
  });

  it('the same key in different mappings is fine; a repeat inside a nested one is not', () => {
    assert.deepEqual(tree('a: {x: 1}\nb: {x: 2}\n'), []);
    assert.deepEqual(tree('a:\n  x: 1\n  y: 2\n  x: 3\n'), ['line 4, column 3: duplicate key "x" (first at line 2, column 3)']);
  });

  it('keys that become the same object key are duplicates (1 and "1", null and "")', () => {
    assert.equal(tree('1: a\n"1": b\n').length, 1);
    assert.equal(tree('~: a\n"": b\n').length, 1);
    assert.equal(keyId(null), '');
    assert.equal(keyId(parseDocument('{}').createNode(true)), 'true');
    assert.equal(keyId(parseDocument('{}').createNode([1])), undefined);
  });

  it('single-pair entries of a list are separate mappings, not duplicates', () => {
    assert.deepEqual(tree('list: [a: 1, a: 2]\n'), []);
  });
});

describe('config input: aliases and depth', () => {
  it('a billion-laughs alias bomb is a ConfigError with a line and column, quickly', () => {
    const { value, ms } = timed(() => problems(billionLaughs()));
    assert.equal(value.length, 1);
    assert.match(value[0]!, /^line \d+, column \d+: aliases expand the document by more than 10000 nodes/);
    assert.ok(ms < 1000, `took ${Math.round(ms)} ms`);
  });

  it('a bomb the tree walk lets through still ends as a ConfigError (the library limit)', () => {
    // Three levels pass the walk's node budget but not the library's alias count.
    const text = billionLaughs(3);
    assert.deepEqual(tree(text), []);
    const [line] = problems(text);
    assert.match(line!, /^YAML: Excessive alias count/);
  });

  it('more aliases than the limit: refused at the first one over it', () => {
    const text = `a: &a x\nl: [${Array(TREE_LIMITS.aliases + 1).fill('*a').join(', ')}]\n`;
    const [line, ...rest] = tree(text);
    assert.deepEqual(rest, []);
    assert.equal(line, `line 2, column ${5 + 4 * TREE_LIMITS.aliases}: more than ${TREE_LIMITS.aliases} aliases`);
  });

  it('an alias inside its own anchor is a loop; an alias without an anchor is named', () => {
    assert.deepEqual(tree('a: &a [x, *a]\n'), ['line 1, column 11: alias *a is inside the node it refers to (a loop)']);
    assert.deepEqual(tree('a: *nope\n'), ['line 1, column 4: alias *nope has no anchor &nope before it']);
  });

  it('an alias refers to the latest anchor of its name before it', () => {
    // The inner &a (a scalar) is the latest: aliasing it adds 1 node, not the whole list.
    assert.deepEqual(tree('a: &a [&a x, *a]\nb: *a\n', { ...TREE_LIMITS, aliasedNodes: 2 }), []);
  });

  it('a few aliases in a good config are fine', () => {
    const cfg = parseConfigText('metrics: {interval: &every 15s}\nstack: {project: app, dir: /srv/app, deploy: {stableFor: *every}, restart: {backoff: *every}}\n');
    assert.equal(cfg.stack?.deploy.stableFor, 15_000);
    assert.equal(cfg.stack?.restart.backoff, 15_000);
  });

  it('nesting deeper than the limit is refused where it starts', () => {
    const text = `a: ${'['.repeat(TREE_LIMITS.depth + 5)}${']'.repeat(TREE_LIMITS.depth + 5)}\n`;
    const [line] = tree(text);
    assert.equal(line, `line 1, column ${4 + TREE_LIMITS.depth}: nested deeper than ${TREE_LIMITS.depth} levels`);
  });
});

describe('config input: bounded parsing', () => {
  it('a million "[" is refused at the first level too deep, before the parser recurses into it', () => {
    const { value, ms } = timed(() => problems('['.repeat(1_000_000)));
    assert.deepEqual(value, [`line 1, column ${TOKEN_LIMITS.flowDepth + 1}: [ ] and { } nested deeper than ${TOKEN_LIMITS.flowDepth} levels`]);
    assert.ok(ms < 1000, `took ${Math.round(ms)} ms`);
  });

  it('brackets in quotes, comments and plain scalars are not nesting', () => {
    const deep = '['.repeat(TOKEN_LIMITS.flowDepth + 1);
    assert.deepEqual(tokenProblems(`a: "${deep}"\n# ${deep}\nb: x${deep}\n`), []);
  });

  it('closed flow collections free their levels', () => {
    const line = `a: ${'['.repeat(TOKEN_LIMITS.flowDepth)}${']'.repeat(TOKEN_LIMITS.flowDepth)}\n`;
    assert.deepEqual(tokenProblems(line + line.replace('a:', 'b:')), []);
  });

  it('more tokens than the limit: refused where the limit is passed, in well under a second', () => {
    const text = `a: [${'1,'.repeat(TOKEN_LIMITS.tokens)}1]\n`;
    const { value, ms } = timed(() => tokenProblems(text));
    // The lexer gives 6 tokens for `a: [` (2 of them markers without text) and 3 for each `1,` (one a marker).
    const column = 'a: ['.length + '1,'.length * Math.floor((TOKEN_LIMITS.tokens - 6) / 3) + 1;
    assert.deepEqual(value, [`line 1, column ${column}: more than ${TOKEN_LIMITS.tokens} YAML tokens; a config needs a few thousand`]);
    assert.ok(ms < 1000, `took ${Math.round(ms)} ms`);
  });

  it('40,000 keys stay under the token limit, so they reach the duplicate check', () => {
    assert.deepEqual(tokenProblems(manyKeys(40_000)), []);
  });

  it('positionAt counts lines and columns from 1', () => {
    assert.equal(positionAt('ab\ncd', 0), 'line 1, column 1');
    assert.equal(positionAt('ab\ncd', 4), 'line 2, column 2');
  });
});

describe('config input: long values and many problems', () => {
  it('clip keeps the first 200 characters and says how long it was', () => {
    assert.equal(clip('short'), 'short');
    assert.equal(clip('x'.repeat(200)), 'x'.repeat(200));
    assert.equal(clip('x'.repeat(201)), `${'x'.repeat(200)}… (201 characters)`);
    assert.equal(quote('y'.repeat(1000)), `"${'y'.repeat(200)}…" (1000 characters)`);
  });

  it('clip does not split a surrogate pair', () => {
    const text = `${'x'.repeat(199)}😀tail`;
    assert.equal(clip(text), `${'x'.repeat(199)}… (${text.length} characters)`);
  });

  it('a 900,000-character value is echoed clipped', () => {
    const [line, ...rest] = problems(`dataDir: ${'v'.repeat(900_000)}\n`);
    assert.deepEqual(rest, []);
    assert.equal(line, `dataDir: must be an absolute path, got "${'v'.repeat(200)}…" (900000 characters)`);
  });

  it('a 900,000-character unknown key is echoed clipped', () => {
    const [line] = problems(`? ${'k'.repeat(900_000)}\n: 1\n`);
    assert.equal(line, `${'k'.repeat(200)}… (900000 characters): unknown key`);
    assert.equal(keyPath(['a', 'b'.repeat(300)]), `a.${'b'.repeat(200)}… (300 characters)`);
  });

  it('boundProblems keeps the first 20 and counts the rest', () => {
    const lines = Array.from({ length: 25 }, (_, i) => `p${i}`);
    assert.deepEqual(boundProblems(lines), [...lines.slice(0, 20), 'and 5 more problems']);
    assert.deepEqual(boundProblems(lines.slice(0, 21)), [...lines.slice(0, 20), 'and 1 more problem']);
    assert.deepEqual(boundProblems(lines.slice(0, 20)), lines.slice(0, 20));
  });

  it('a ConfigError clips every line, whatever message made it', () => {
    const err = new ConfigError('agent.yaml', [`x: ${'z'.repeat(5000)}`]);
    assert.ok(err.problems[0]!.length < 1100, `${err.problems[0]!.length} characters`);
    assert.ok(err.message.length < 1200);
  });
});

describe('config input: reading the file', () => {
  it('reads a regular file up to exactly the limit', () => {
    const dir = tempDir('cfgread');
    try {
      const file = join(dir, 'agent.yaml');
      writeFileSync(file, `# ${'c'.repeat(MAX_CONFIG_BYTES - 3)}\n`);
      assert.equal(readConfigText(file).length, MAX_CONFIG_BYTES);
    } finally {
      removeDir(dir);
    }
  });

  it('refuses a file one byte over the limit, with its size and the limit', () => {
    const dir = tempDir('cfgread');
    try {
      const file = join(dir, 'agent.yaml');
      writeFileSync(file, Buffer.alloc(MAX_CONFIG_BYTES + 1, 0x61));
      assert.throws(() => readConfigText(file), { name: 'Error', message: `${file} is 1048577 bytes (1.0 MiB); the limit is 1048576 bytes (1.0 MiB)` });
      assert.throws(() => readConfigText(file), UnreadableConfig);
    } finally {
      removeDir(dir);
    }
  });

  it('refuses a directory, /dev/zero and a FIFO without blocking', { timeout: 5000 }, () => {
    const dir = tempDir('cfgread');
    try {
      const fifo = join(dir, 'fifo');
      execFileSync('mkfifo', [fifo]);
      assert.throws(() => readConfigText(dir), { message: `${dir} is a directory, not a regular file` });
      assert.throws(() => readConfigText('/dev/zero'), { message: '/dev/zero is a character device, not a regular file' });
      assert.throws(() => readConfigText(fifo), { message: `${fifo} is a FIFO (named pipe), not a regular file` });
    } finally {
      removeDir(dir);
    }
  });

  it('refuses bytes that are not UTF-8', () => {
    const dir = tempDir('cfgread');
    try {
      const file = join(dir, 'agent.yaml');
      writeFileSync(file, Buffer.from([0x61, 0x3a, 0x20, 0xff, 0xfe, 0x0a]));
      assert.throws(() => readConfigText(file), { message: `${file} is not UTF-8 text` });
    } finally {
      removeDir(dir);
    }
  });

  it('refusal() judges stats: regular and small passes, anything else says what it is', () => {
    const dir = tempDir('cfgread');
    try {
      const file = join(dir, 'small');
      writeFileSync(file, 'a: 1\n');
      assert.equal(refusal(file, statSync(file)), null);
      assert.equal(refusal(file, statSync(file), 4), `${file} is 5 bytes; the limit is 4 bytes`);
      assert.equal(refusal('/dev/null', statSync('/dev/null')), '/dev/null is a character device, not a regular file');
      assert.equal(bytesText(2 * 1024 * 1024), '2097152 bytes (2.0 MiB)');
    } finally {
      removeDir(dir);
    }
  });
});

describe('config input: dataDir others may write to', () => {
  const agent = { uid: 999, name: 'deckhand' };
  const dir = '/var/lib/deckhand';
  const state = (mode: number, uid = 999) => ({ isDirectory: true, mode: 0o040000 | mode, uid });

  it('0750 and 0700 owned by the agent or root are fine', () => {
    assert.deepEqual(dataDirProblems(dir, state(0o750), agent), []);
    assert.deepEqual(dataDirProblems(dir, state(0o700, 0), agent), []);
  });

  it('group- or world-writable is refused with its mode and the chmod to run', () => {
    assert.deepEqual(dataDirProblems(dir, state(0o770), agent), [
      "dataDir: /var/lib/deckhand is group-writable (mode 0770), so other users could replace the agent's database and keys; run: chmod 0750 /var/lib/deckhand",
    ]);
    assert.match(dataDirProblems(dir, state(0o757), agent)[0]!, /is world-writable \(mode 0757\)/);
    assert.match(dataDirProblems(dir, state(0o1777), agent)[0]!, /is group- and world-writable \(mode 01777\)/);
  });

  it("owned by another user: refused for the agent's user, not for root", () => {
    assert.deepEqual(dataDirProblems(dir, state(0o750, 1234), agent), [
      "dataDir: /var/lib/deckhand belongs to uid 1234, neither the agent's user deckhand (uid 999) nor root, so that user could replace the agent's database and keys; run: chown deckhand /var/lib/deckhand",
    ]);
    assert.deepEqual(dataDirProblems(dir, state(0o750, 1234), { uid: 0, name: 'root' }), []);
  });

  it('not a directory is refused', () => {
    assert.deepEqual(dataDirProblems(dir, { isDirectory: false, mode: 0o100644, uid: 999 }, agent), ['dataDir: /var/lib/deckhand exists but is not a directory']);
  });

  it('the command quotes a path with spaces or quotes', () => {
    assert.equal(shellWord('/srv/data'), '/srv/data');
    assert.equal(shellWord("/srv/my data/it's"), `'/srv/my data/it'\\''s'`);
  });

  it('checkDataDir reads the directory on disk; one that does not exist yet is fine', () => {
    const root = tempDir('datadir');
    try {
      const data = join(root, 'data');
      const me = { uid: process.getuid!(), name: 'me' };
      assert.deepEqual(checkDataDir(data, me), []);
      mkdirSync(data);
      chmodSync(data, 0o750);
      assert.deepEqual(checkDataDir(data, me), []);
      chmodSync(data, 0o770);
      assert.match(checkDataDir(data, me)[0]!, new RegExp(`run: chmod 0750 ${data}$`));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
