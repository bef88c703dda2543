// The stack and deploy integration tests under compose v2 (see ./files).
import { runUnderCompose } from './run.js';

runUnderCompose('v2');
