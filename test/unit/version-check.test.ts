import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkAgentVersion, setVersionWarningSink, versionMismatch } from '../../server-cli/version-check.js';

describe('versionMismatch', () => {
  it('says nothing for the same release, a patch apart, or an agent that names no version', () => {
    assert.equal(versionMismatch('0.1.0', '0.1.0'), undefined);
    assert.equal(versionMismatch('0.1.0', '0.1.7'), undefined);
    assert.equal(versionMismatch('1.2.0', '1.9.3'), undefined, 'after 1.0 a minor version only adds');
    assert.equal(versionMismatch('0.1.0', undefined), undefined);
    assert.equal(versionMismatch('0.1.0', 'not-a-version'), undefined);
    assert.equal(versionMismatch('0.1.0-rc.1', '0.1.2'), undefined);
  });
  it('warns for another major version, and before 1.0 another minor one, naming the older side', () => {
    assert.match(versionMismatch('1.0.0', '2.1.0')!, /different major versions.*upgrade this CLI/);
    assert.match(versionMismatch('2.0.0', '1.4.0')!, /different major versions.*upgrade the agent/);
    assert.match(versionMismatch('0.2.0', '0.1.5')!, /differ in their minor version.*upgrade the agent/);
    assert.match(versionMismatch('0.1.0', '0.3.0-e2e')!, /^deckhand 0\.1\.0 and agent 0\.3\.0-e2e differ.*upgrade this CLI$/);
  });
});

describe('checkAgentVersion', () => {
  it('warns once per host', () => {
    const got: string[] = [];
    setVersionWarningSink((m) => got.push(m));
    checkAgentVersion('web-1', '0.2.0', '0.1.0');
    checkAgentVersion('web-1', '0.2.0', '0.1.0');
    checkAgentVersion('web-2', '0.2.0', '0.2.1');
    checkAgentVersion('web-3', '0.2.0', '0.1.0');
    assert.deepEqual(got.map((m) => m.split(':')[1]!.trim()), ['web-1', 'web-3']);
    assert.match(got[0]!, /^warning: web-1: deckhand 0\.2\.0 and agent 0\.1\.0 differ/);
    setVersionWarningSink(() => {});
  });
});
