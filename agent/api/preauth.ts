// Connections that have not authenticated yet: capped overall and per
// address, and given a few seconds to finish TLS and the upgrade request.
// Counted on the raw TCP socket, before TLS, because an idle or half-done
// handshake is exactly what a flood is made of: without this, 20,000 of
// them held the agent's file descriptors (and /livez with them) for minutes.
import type { Socket } from 'node:net';

export const PREAUTH_LIMITS = {
  overall: 512,
  perAddress: 32,
  /** TLS handshake and upgrade request, together (SPEC: a few seconds). */
  deadlineMs: Number(process.env.DECKHAND_API_HANDSHAKE_MS) || 5000,
};

interface Pending {
  address: string;
  timer: NodeJS.Timeout;
}

export class PreAuthGate {
  private readonly pending = new Map<string, Pending>();
  private readonly perAddress = new Map<string, number>();
  /** Connections refused at the door since start (for the log and tests). */
  refused = 0;

  constructor(private readonly limits = PREAUTH_LIMITS) {}

  /** On a new TCP connection: destroys it at once when over a cap, else starts its deadline. */
  admit(socket: Socket): void {
    const address = normalizeAddress(socket.remoteAddress);
    const key = connectionKey(socket.remoteAddress, socket.remotePort);
    if (key === undefined || this.pending.size >= this.limits.overall || (this.perAddress.get(address) ?? 0) >= this.limits.perAddress) {
      this.refused++;
      socket.destroy();
      return;
    }
    const timer = setTimeout(() => socket.destroy(), this.limits.deadlineMs);
    timer.unref();
    this.pending.set(key, { address, timer });
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    socket.once('close', () => this.release(key));
  }

  /** The connection authenticated: it is a session now, no longer pending. */
  authenticated(remoteAddress: string | undefined, remotePort: number | undefined): void {
    const key = connectionKey(remoteAddress, remotePort);
    if (key !== undefined) this.release(key);
  }

  pendingCount(): number {
    return this.pending.size;
  }

  closeAll(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.perAddress.clear();
  }

  private release(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(key);
    const left = (this.perAddress.get(p.address) ?? 1) - 1;
    if (left <= 0) this.perAddress.delete(p.address);
    else this.perAddress.set(p.address, left);
  }
}

/** "::ffff:127.0.0.2" and "127.0.0.2" are one address. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/** The raw TCP socket and the TLS socket on top of it share this. */
function connectionKey(address: string | undefined, port: number | undefined): string | undefined {
  return address === undefined || port === undefined ? undefined : `${normalizeAddress(address)}|${port}`;
}
