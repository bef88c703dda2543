// The stack and deploy integration tests under compose v1 (see ./files).
import { runUnderCompose } from './run.js';

runUnderCompose('v1');
