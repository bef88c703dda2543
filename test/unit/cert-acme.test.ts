// Which refusals of a newOrder carrying `replaces` make the order be retried without it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refusedForReplaces } from '../../agent/duties/certs/acme.js';

describe('refusedForReplaces', () => {
  it('retries on alreadyReplaced, on malformed about replaces, and on any other 4xx', () => {
    assert.equal(refusedForReplaces({ status: 409, type: 'urn:ietf:params:acme:error:alreadyReplaced' }), true);
    assert.equal(refusedForReplaces({ status: 400, type: 'urn:ietf:params:acme:error:malformed', detail: 'bad Replaces field' }), true);
    assert.equal(refusedForReplaces({ status: 403, type: 'urn:ietf:params:acme:error:unauthorized' }), true);
  });

  it('does not retry on a server error or with no response seen', () => {
    assert.equal(refusedForReplaces({ status: 500, type: 'urn:ietf:params:acme:error:serverInternal' }), false);
    assert.equal(refusedForReplaces({ status: 503 }), false);
    assert.equal(refusedForReplaces(undefined), false);
  });
});
