// Proof of what is served: a TLS connection to the probe address with each
// domain as SNI, the served leaf compared with the stored one. A mismatch
// means the proxy was not reloaded (or serves another file).
import { connect } from 'node:tls';

const PROBE_TIMEOUT_MS = 10_000;

export interface ProbeResult {
  ok: boolean;
  /** Per domain: the served fingerprint, or the error. */
  served: { domain: string; fingerprint256?: string; error?: string }[];
  detail: string;
}

export interface ProbeAddress {
  host: string;
  port: number;
}

export const formatProbe = (a: ProbeAddress) => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`);

function servedFingerprint(host: string, port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // Not verified here: the point is which certificate is served, trusted or not.
    const socket = connect({ host, port, servername, rejectUnauthorized: false, timeout: PROBE_TIMEOUT_MS });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      socket.destroy();
      if (!cert || !cert.fingerprint256) reject(new Error('no certificate served'));
      else resolve(cert.fingerprint256.replace(/:/g, '').toLowerCase());
    });
    socket.once('timeout', () => socket.destroy(new Error(`no TLS answer in ${PROBE_TIMEOUT_MS / 1000} s`)));
    socket.once('error', reject);
  });
}

/** FINGERPRINT256: SHA-256 of the stored leaf, lowercase hex without separators. */
export async function probeServed(address: ProbeAddress, domains: readonly string[], fingerprint256: string): Promise<ProbeResult> {
  const { host, port } = address;
  const served: ProbeResult['served'] = [];
  for (const d of domains) {
    // A wildcard is probed with a name under it.
    const sni = d.startsWith('*.') ? `probe.${d.slice(2)}` : d;
    try {
      served.push({ domain: d, fingerprint256: await servedFingerprint(host, port, sni) });
    } catch (err) {
      served.push({ domain: d, error: (err as Error).message });
    }
  }
  const wrong = served.filter((s) => s.fingerprint256 !== fingerprint256);
  const detail = wrong.length
    ? wrong.map((s) => `${s.domain}: ${s.error ?? `serves ${s.fingerprint256!.slice(0, 16)}…, stored ${fingerprint256.slice(0, 16)}…`}`).join('; ')
    : `${formatProbe(address)} serves the stored certificate for ${domains.join(', ')}`;
  return { ok: wrong.length === 0, served, detail };
}
