// Secrets at rest (SMTP relay passwords, DKIM private keys): AES-256-GCM under a key derived with
// HKDF-SHA256 from the app secret. The context (e.g. "smtp_relays.password:<org id>") is bound as
// additional authenticated data, so a ciphertext copied to another row or org does not decrypt.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { Config } from '../config.ts';
import { AppError } from '../errors.ts';

const VERSION = 'v1';
const IV_BYTES = 12; // the GCM standard nonce; random per encryption (2^32 messages per key is far off)
const TAG_BYTES = 16;

const keys = new Map<string, Buffer>();

function secretKey(config: Pick<Config, 'secret'>): Buffer {
  const secret = config.secret;
  if (!secret)
    throw new AppError('internal', 'No app secret configured: cannot encrypt or decrypt stored secrets');
  let key = keys.get(secret);
  if (!key) {
    key = Buffer.from(hkdfSync('sha256', secret, 'parley', 'parley/secrets/aes-256-gcm/v1', 32));
    if (keys.size > 16) keys.clear();
    keys.set(secret, key);
  }
  return key;
}

/** `v1.<iv>.<tag>.<ciphertext>` (base64url parts) for the UTF-8 plaintext, bound to `context`. */
export function encryptSecret(config: Pick<Config, 'secret'>, plaintext: string, context: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', secretKey(config), iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [VERSION, iv, cipher.getAuthTag(), body]
    .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
    .join('.');
}

/**
 * The plaintext of encryptSecret's output. Throws when the value was altered, was encrypted for
 * another context, or under another app secret (a changed PARLEY_SECRET makes stored secrets
 * unreadable: they must be entered again).
 */
export function decryptSecret(config: Pick<Config, 'secret'>, stored: string, context: string): string {
  const parts = stored.split('.');
  if (parts.length !== 4 || parts[0] !== VERSION)
    throw new AppError('internal', 'A stored secret has an unknown format');
  const [, iv, tag, body] = parts.map((p) => Buffer.from(p, 'base64url'));
  try {
    const decipher = createDecipheriv('aes-256-gcm', secretKey(config), iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
  } catch {
    throw new AppError(
      'internal',
      'A stored secret cannot be decrypted (was PARLEY_SECRET changed?); enter it again',
    );
  }
}
