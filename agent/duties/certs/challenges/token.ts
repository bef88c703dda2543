// ACME challenge tokens arrive from the CA and end up in a URL path (the
// HTTP responder) or a file name (webroot). RFC 8555 §8.3 makes them
// base64url without padding; anything else (a "/", "..", a NUL) is refused
// before it can name a file or match a route. The length bound keeps a
// hostile or broken CA from handing us a megabyte "token".
import { failed } from '../../../errors.js';

/** Longest token accepted: Let's Encrypt and Pebble send 43 characters (32 bytes). */
export const MAX_TOKEN_LENGTH = 128;

const TOKEN = /^[A-Za-z0-9_-]+$/;

/** Whether TEXT is a base64url token of at most MAX_TOKEN_LENGTH characters. */
export function isAcmeToken(text: string): boolean {
  return text.length > 0 && text.length <= MAX_TOKEN_LENGTH && TOKEN.test(text);
}

/** Throws a `failed` DomainError unless TOKEN is a valid challenge token; the token is clipped in the message. */
export function assertAcmeToken(token: string): void {
  if (isAcmeToken(token)) return;
  const shown = JSON.stringify(token.length > 64 ? `${token.slice(0, 64)}…` : token);
  throw failed(`ACME challenge token ${shown} is not base64url of at most ${MAX_TOKEN_LENGTH} characters; refused`, { length: token.length });
}
