// Message-ID headers and VERP return paths. The return path carries our message id and an HMAC, so
// a bounce (sent to the envelope sender, RFC 5321 §4.5.5) finds its message and cannot be forged.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { normaliseDomain } from './address.ts';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** RFC 4648 base32, lowercase, unpadded: safe in local parts that some MTAs case-fold. */
export function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** `<time.random@domain>`: 120 random bits, unique without coordination between processes. */
export function newMessageIdHeader(domain: string): string {
  return `<${Date.now().toString(36)}.${base32(randomBytes(15))}@${normaliseDomain(domain, 'sending domain')}>`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// 80 bits of HMAC-SHA256 (16 base32 characters): forging one needs ~2^80 tries against our MTA.
const TAG_BYTES = 10;
const VERP = /^b-([0-9a-f]{32})-([a-z2-7]{16})$/;

const keys = new Map<string, Buffer>();
/** A key for this purpose only, derived from the app secret (so a VERP tag is never a valid token elsewhere). */
function verpKey(secret: string | Buffer): Buffer {
  const cacheKey = typeof secret === 'string' ? secret : secret.toString('base64');
  let k = keys.get(cacheKey);
  if (!k) {
    k = createHmac('sha256', secret).update('parley/verp/v1').digest();
    if (keys.size > 16) keys.clear();
    keys.set(cacheKey, k);
  }
  return k;
}

function tag(secret: string | Buffer, hex: string): Buffer {
  return createHmac('sha256', verpKey(secret)).update(hex).digest().subarray(0, TAG_BYTES);
}

const domains = new Map<string, string>();
/** normaliseDomain, cached: a send computes one return path per message on the same domain. */
function sendingDomain(domain: string): string {
  let d = domains.get(domain);
  if (d === undefined) {
    d = normaliseDomain(domain, 'sending domain');
    if (domains.size > 1000) domains.clear();
    domains.set(domain, d);
  }
  return d;
}

/**
 * The envelope sender for one message: `b-<uuid hex>-<hmac>@domain` (51 characters before the @,
 * under the 64 limit). Use it as SMTP MAIL FROM, not as a header: the receiving MTA writes
 * Return-Path from it.
 */
export function verpReturnPath(messageId: string, domain: string, secret: string | Buffer): string {
  const id = messageId.toLowerCase();
  if (!UUID.test(id)) throw new Error(`verpReturnPath: not a UUID: ${messageId}`);
  const hex = id.replaceAll('-', '');
  return `b-${hex}-${base32(tag(secret, hex))}@${sendingDomain(domain)}`;
}

/**
 * The message id (UUID) carried by a VERP address or its local part, or null when the address is
 * not ours or its tag does not match (altered, forged). Case-insensitive: MTAs may fold case.
 */
export function parseVerp(address: string, secret: string | Buffer): string | null {
  if (typeof address !== 'string' || address.length > 320) return null;
  let local = address.trim().replace(/^<|>$/g, '');
  const at = local.lastIndexOf('@');
  if (at >= 0) local = local.slice(0, at);
  const m = VERP.exec(local.toLowerCase());
  if (!m) return null;
  const [, hex, given] = m;
  const expected = Buffer.from(base32(tag(secret, hex)));
  if (!timingSafeEqual(expected, Buffer.from(given))) return null;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
