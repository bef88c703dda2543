import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COMPOSE_V1, COMPOSE_V2, composeBaseArgs, composeServicesCommand } from '../../agent/duties/stack/compose.js';

describe('compose commands as data', () => {
  it('v2 and v1 take the same arguments after the program', () => {
    const p = { project: 'app', dir: '/srv/app', files: ['compose.yaml', 'compose.prod.yaml'] };
    assert.deepEqual(composeBaseArgs({ ...p, cli: COMPOSE_V2 }), ['docker', 'compose', '--project-name', 'app', '--file', 'compose.yaml', '--file', 'compose.prod.yaml']);
    assert.deepEqual(composeBaseArgs({ ...p, cli: COMPOSE_V1 }), ['docker-compose', '--project-name', 'app', '--file', 'compose.yaml', '--file', 'compose.prod.yaml']);
  });
  it('lists services from the project directory, without files when compose discovers them', () => {
    const cmd = composeServicesCommand({ cli: COMPOSE_V1, project: 'app', dir: '/srv/app' });
    assert.deepEqual(cmd.argv, ['docker-compose', '--project-name', 'app', 'config', '--services']);
    assert.equal(cmd.cwd, '/srv/app');
  });
});
