// The ACME Renewal Information (RFC 9773) identifier of a certificate:
// base64url(keyIdentifier of its Authority Key Identifier extension) + "." +
// base64url(the DER content octets of its serial number), both without
// padding. The renewalInfo URL of a certificate is `<renewalInfo>/<certID>`.

/** One DER element: its tag byte, its content, and where the next one starts. */
interface Der {
  tag: number;
  content: Uint8Array;
  end: number;
}

function readDer(buf: Uint8Array, at: number): Der {
  if (at + 2 > buf.length) throw new Error('certificate: truncated DER');
  const tag = buf[at]!;
  if ((tag & 0x1f) === 0x1f) throw new Error('certificate: unsupported DER tag');
  let len = buf[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > buf.length) throw new Error('certificate: bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > buf.length) throw new Error('certificate: truncated DER');
  return { tag, content: buf.subarray(start, end), end };
}

/** The elements inside a constructed element's content. */
function children(content: Uint8Array): Der[] {
  const out: Der[] = [];
  for (let at = 0; at < content.length; ) {
    const el = readDer(content, at);
    out.push(el);
    at = el.end;
  }
  return out;
}

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const OID = 0x06;
const OCTET_STRING = 0x04;
const BOOLEAN = 0x01;
const VERSION_TAG = 0xa0; // [0] EXPLICIT Version
const EXTENSIONS_TAG = 0xa3; // [3] EXPLICIT Extensions
const KEY_IDENTIFIER_TAG = 0x80; // [0] IMPLICIT KeyIdentifier
// 2.5.29.35, id-ce-authorityKeyIdentifier
const AKI_OID = Uint8Array.of(0x55, 0x1d, 0x23);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** DER bytes of the first certificate in PEM text, or the bytes as given. */
export function certificateDer(cert: string | Uint8Array): Uint8Array {
  if (typeof cert !== 'string') return cert;
  const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(cert);
  if (!m) throw new Error('certificate: no PEM CERTIFICATE block');
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

/** The keyIdentifier of the Authority Key Identifier and the serial number's content octets. */
export function ariCertIdParts(cert: string | Uint8Array): { keyIdentifier: Uint8Array; serial: Uint8Array } {
  const der = certificateDer(cert);
  const top = readDer(der, 0);
  if (top.tag !== SEQUENCE) throw new Error('certificate: not a DER SEQUENCE');
  const tbs = children(top.content)[0];
  if (!tbs || tbs.tag !== SEQUENCE) throw new Error('certificate: no tbsCertificate');
  const fields = children(tbs.content);
  let i = fields[0]?.tag === VERSION_TAG ? 1 : 0;
  const serialEl = fields[i++];
  if (!serialEl || serialEl.tag !== INTEGER || serialEl.content.length === 0) throw new Error('certificate: no serial number');
  const extsEl = fields.find((f) => f.tag === EXTENSIONS_TAG);
  if (!extsEl) throw new Error('certificate: no extensions (no Authority Key Identifier)');
  const exts = children(extsEl.content)[0];
  if (!exts || exts.tag !== SEQUENCE) throw new Error('certificate: bad extensions');
  for (const ext of children(exts.content)) {
    const parts = children(ext.content);
    if (parts[0]?.tag !== OID || !sameBytes(parts[0].content, AKI_OID)) continue;
    const value = parts[1]?.tag === BOOLEAN ? parts[2] : parts[1];
    if (!value || value.tag !== OCTET_STRING) throw new Error('certificate: bad Authority Key Identifier');
    const aki = readDer(value.content, 0);
    const keyId = aki.tag === SEQUENCE ? children(aki.content).find((c) => c.tag === KEY_IDENTIFIER_TAG) : undefined;
    if (!keyId) throw new Error('certificate: Authority Key Identifier has no keyIdentifier');
    return { keyIdentifier: keyId.content, serial: serialEl.content };
  }
  throw new Error('certificate: no Authority Key Identifier extension');
}

/** RFC 9773 certID from its two parts. */
export function ariCertIdFrom(keyIdentifier: Uint8Array, serial: Uint8Array): string {
  return `${Buffer.from(keyIdentifier).toString('base64url')}.${Buffer.from(serial).toString('base64url')}`;
}

/** RFC 9773 certID of a certificate (PEM text, first certificate, or DER bytes). */
export function ariCertId(cert: string | Uint8Array): string {
  const { keyIdentifier, serial } = ariCertIdParts(cert);
  return ariCertIdFrom(keyIdentifier, serial);
}

/** The renewalInfo URL of a certificate, from the directory's `renewalInfo`. */
export function renewalInfoUrl(renewalInfo: string, cert: string | Uint8Array): string {
  return `${renewalInfo.replace(/\/+$/, '')}/${ariCertId(cert)}`;
}
