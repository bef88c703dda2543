// stack.*: the stack duty's operations as JSON-RPC methods.
import type { StackDuty } from '../../duties/stack/duty.js';
import type { MethodTable } from '../rpc.js';
import { streamOperation } from './streams.js';

export function stackMethods(stack: StackDuty): MethodTable {
  return {
    'stack.ps': () => ({ services: stack.serviceInfo() }),
    'stack.restart': async ({ service }) => {
      await stack.restartService(service);
      return { ok: true };
    },
    'stack.stop': async ({ service }, call) => {
      await stack.stopService(service, call.actor);
      return { ok: true };
    },
    'stack.start': async ({ service }) => {
      await stack.startService(service);
      return { ok: true };
    },
    'stack.logs': (req, call) =>
      streamOperation(
        call,
        (send, signal) => stack.logs(req, send, signal),
        ({ lines }) => ({ ok: true, lines }),
      ),
  };
}
