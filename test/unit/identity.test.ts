import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { groupNameIn } from '../../agent/identity.js';

describe('group names for permission messages', () => {
  const groups = 'root:x:0:\ndocker:x:106:deckhand\n\ndeckhand:x:995:\n';
  it('finds the name of a gid in the group file', () => {
    assert.equal(groupNameIn(groups, 106), 'docker');
    assert.equal(groupNameIn(groups, 995), 'deckhand');
    assert.equal(groupNameIn(groups, 0), 'root');
  });
  it('falls back to the number for a gid without a name', () => {
    assert.equal(groupNameIn(groups, 4242), '4242');
  });
});
