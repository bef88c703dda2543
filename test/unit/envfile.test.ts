import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { paramsSchemas } from '../../agent/api/protocol.js';
import { envValueProblem, formatEnvValue } from '../../agent/duties/deploy/dotenv.js';
import { applyEnvChanges } from '../../agent/duties/deploy/envfile.js';

// Values an operator sets with `deploy --set`, and the text written after KEY=.
const WRITTEN: [string, string][] = [
  ['plain-1.2:3/x@y', 'plain-1.2:3/x@y'],
  ['', ''],
  ['a$b', "'a$b'"],
  ["it's $5", "'it\\'s $5'"],
  ['$', "'$'"],
  ['$$', "'$$'"],
  ['$HOME/x', "'$HOME/x'"],
  ['${', "'${'"],
  ['${a:b}', "'${a:b}'"],
  ['$(id) `id`', "'$(id) `id`'"],
  ['\\$x', "'\\$x'"],
  ['C:\\dir\\$x', "'C:\\dir\\$x'"],
  ['p@ss w0rd!#$%^&*()_+-={}[]|;:,.<>?/~', "'p@ss w0rd!#$%^&*()_+-={}[]|;:,.<>?/~'"],
  ['has space', '"has space"'],
  ['  lead and trail  ', '"  lead and trail  "'],
  [' ', '" "'],
  ['a # b', '"a # b"'],
  ['#start', '"#start"'],
  ['a#b', '"a#b"'],
  ['say "hi"', '"say \\"hi\\""'],
  ['"', '"\\""'],
  ["'", '"\'"'],
  ["''", '"\'\'"'],
  ['""', '"\\"\\""'],
  ['C:\\path\\to', '"C:\\\\path\\\\to"'],
  ['a\\\\b', '"a\\\\\\\\b"'],
  ['\\', '\\'],
  ['end\\', 'end\\'],
  ['C:\\a b\\', 'C:\\a b\\'],
  ["it's#\\", "it's#\\"],
  ['x"\\', 'x"\\'],
  ['\\n\\t\\r\\0\\a\\x41\\u0041', '"\\\\n\\\\t\\\\r\\\\0\\\\a\\\\x41\\\\u0041"'],
  ['\\"', '"\\\\\\""'],
  ["\\'", '"\\\\\'"'],
  ['a=b', '"a=b"'],
  ['=', '"="'],
  ['==x=', '"==x="'],
  ['tab\there', '"tab\there"'],
  ['pässwörd ✓ 日本 🚀', '"pässwörd ✓ 日本 🚀"'],
  ['\u00a0nbsp\u00a0', '"\u00a0nbsp\u00a0"'],
];

// Values no .env line carries literally to both compose CLIs.
const REFUSED: [string, RegExp][] = [
  ['two\nlines', /single line/],
  ['cr\rhere', /single line/],
  ['nul\0', /NUL/],
  ['${HOME}', /docker-compose v1 expands/],
  ['${}', /docker-compose v1 expands/],
  ['x${A:-b}y', /docker-compose v1 expands/],
  [' lead\\', /ends with a backslash/],
  ['"quoted\\', /ends with a backslash/],
  ['a #b\\', /ends with a backslash/],
  ['$\\\\', /read such a \.env value differently/],
  ['a$b\\', /read such a \.env value differently/],
  ["$\\'", /read such a \.env value differently/],
];

describe('.env values: written so compose reads them literally', () => {
  for (const [value, line] of WRITTEN) {
    it(`${JSON.stringify(value)} is written as ${line}`, () => {
      assert.equal(envValueProblem(value), null);
      assert.equal(formatEnvValue(value), line);
    });
  }
  for (const [value, reason] of REFUSED) {
    it(`${JSON.stringify(value)} is refused`, () => {
      const problem = envValueProblem(value);
      assert.match(problem ?? 'accepted', reason);
      assert.ok(!problem!.includes(value), 'the reason does not repeat the value');
      assert.throws(() => formatEnvValue(value), reason);
    });
  }

  for (const cli of [['docker-compose'], ['docker', 'compose']]) {
    it(`${cli.join(' ')} config reads every written value back byte for byte`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'dh-dotenv-'));
      try {
        const keys = WRITTEN.map((_, i) => `DH_LITERAL_${i}`);
        writeFileSync(join(dir, '.env'), applyEnvChanges(null, Object.fromEntries(WRITTEN.map(([value], i) => [keys[i]!, value]))));
        const environment = Object.fromEntries(keys.map((k) => [k, `\${${k}}`]));
        writeFileSync(join(dir, 'compose.yaml'), JSON.stringify({ services: { app: { image: 'deckhand-test/busybox:latest', environment } } }));
        const read = composeConfigEnvironment(cli, dir);
        for (const [i, [value]] of WRITTEN.entries()) assert.equal(read[keys[i]!], value, `${keys[i]} (${JSON.stringify(value)}) as ${cli.join(' ')} reads it`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

/** The app service's environment after compose interpolated .env into it; config prints a literal "$" as "$$". */
function composeConfigEnvironment(cli: string[], dir: string): Record<string, string> {
  const [program, ...args] = cli;
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('DH_LITERAL_')) delete env[k];
  const out = execFileSync(program!, [...args, '--project-directory', dir, '--file', join(dir, 'compose.yaml'), 'config'], { cwd: dir, env, encoding: 'utf8', timeout: 30_000 });
  const doc = parse(out) as { services: { app: { environment: Record<string, string | null> } } };
  return Object.fromEntries(Object.entries(doc.services.app.environment).map(([k, v]) => [k, String(v ?? '').replace(/\$\$/g, '$')]));
}

describe('deploy.start params: env values', () => {
  it('a value compose cannot take literally is refused under its key, without the value', () => {
    const r = paramsSchemas['deploy.start'].safeParse({ env: { OK: 'a$b', PASSWORD: 's3cr3t${HOME}' } });
    assert.ok(!r.success);
    assert.deepEqual(r.error.issues.map((i) => i.path.join('.')), ['env.PASSWORD']);
    assert.match(r.error.issues[0]!.message, /docker-compose v1 expands/);
    assert.ok(!JSON.stringify(r.error.issues).includes('s3cr3t'), 'the issue carries no part of the value');
  });
  it('every value of the table is accepted', () => {
    assert.ok(paramsSchemas['deploy.start'].safeParse({ env: Object.fromEntries(WRITTEN.map(([v], i) => [`K${i}`, v])) }).success);
  });
});

describe('.env changes keep what the operator wrote', () => {
  it('keeps every other line byte for byte: comments, export, CRLF, a multi-line value', () => {
    const before = '# DB_URL=commented out\r\nexport TOKEN=abc\r\nCERT="-----BEGIN\r\nWEB_TAG=inside the value\r\n-----END"\r\nWEB_TAG=v1\r\n';
    assert.equal(applyEnvChanges(before, { WEB_TAG: 'v2', NEW: 'a b' }), '# DB_URL=commented out\r\nexport TOKEN=abc\r\nCERT="-----BEGIN\r\nWEB_TAG=inside the value\r\n-----END"\r\nWEB_TAG=v2\r\nNEW="a b"\r\n');
  });
  it('a key set twice by the operator ends up once, where it was first', () => {
    assert.equal(applyEnvChanges('A=1\nB=2\nA=3\n', { A: 'x y' }), 'A="x y"\nB=2\n');
  });
  it('replaces a multi-line value as a whole', () => {
    assert.equal(applyEnvChanges("KEY='one\ntwo'\nB=2\n", { KEY: 'v' }), 'KEY=v\nB=2\n');
  });
  it('a last line without a newline stays and gets one before an appended key', () => {
    assert.equal(applyEnvChanges('A=1', { B: '2' }), 'A=1\nB=2\n');
  });
  it('nothing to set leaves the text as it is', () => {
    assert.equal(applyEnvChanges('A=1', {}), 'A=1');
  });
});
