// What the agent and its short-lived order process say to each other over
// the IPC channel. An order runs in a child process so acme-client and its
// HTTP stack (several tens of MB) are loaded only while an order runs and
// given back to the system when it ends: the agent's RSS returns to idle.
import type { CertsConfig } from './config.js';

export interface OrderJob {
  directoryUrl: string;
  /** PEM trusted for this CA only. */
  caBundle?: string;
  email: string;
  accountKeyPem: string;
  accountUrl?: string;
  challenge: CertsConfig['challenge'];
  domains: string[];
  keyPem: string;
  replaces?: string;
  profile?: string;
  /** Status polls start at this delay (ms). */
  pollMinMs?: number;
}

export type OrderMessage =
  | { type: 'account'; url: string }
  | { type: 'step'; step: string; detail?: string }
  | { type: 'done'; fullchainPem: string; orderUrl: string; usedReplaces: boolean }
  | { type: 'error'; message: string; details?: unknown; failedValidations: string[] };
