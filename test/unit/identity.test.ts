import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { explainEngineError } from '../../agent/docker/engine.js';
import { agentIdentity, groupNameIn } from '../../agent/identity.js';

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

describe('Docker socket errors say what to change', () => {
  it('EACCES names the user, the socket group and the usermod to run', () => {
    const err = explainEngineError(Object.assign(new Error('connect EACCES /var/run/docker.sock'), { code: 'EACCES' }), '/var/run/docker.sock') as Error;
    const me = agentIdentity();
    assert.equal(
      err.message,
      `no access to the Docker socket /var/run/docker.sock (EACCES): the agent runs as user ${me.user}, which must be in group docker: usermod -aG docker ${me.user}, then restart the agent`,
    );
  });
  it('an answer from the engine passes through unchanged', () => {
    const answer = Object.assign(new Error('no such image'), { statusCode: 404 });
    assert.equal(explainEngineError(answer, '/var/run/docker.sock'), answer);
  });
});
