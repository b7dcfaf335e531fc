import { describe, expect, it } from 'vitest';
import { decryptSecret, encryptSecret } from './secrets.ts';

const config = { secret: 'test-secret-0123456789-0123456789-abcdef' };
const other = { secret: 'another-secret-0123456789-0123456789-xyz' };

describe('secrets at rest', () => {
  it('round-trips UTF-8 text and never stores the plaintext', () => {
    const plain = 'pässwörd 🔑 with spaces';
    const enc = encryptSecret(config, plain, 'ctx:1');
    expect(enc).toMatch(/^v1\.[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(enc).not.toContain('pässwörd');
    expect(Buffer.from(enc.split('.')[3], 'base64url').toString('utf8')).not.toContain('word');
    expect(decryptSecret(config, enc, 'ctx:1')).toBe(plain);
  });

  it('uses a fresh nonce each time', () => {
    expect(encryptSecret(config, 'x', 'c')).not.toBe(encryptSecret(config, 'x', 'c'));
  });

  it('refuses another context, another app secret and any altered byte', () => {
    const enc = encryptSecret(config, 'hunter2', 'smtp_relays.password:org-a');
    expect(() => decryptSecret(config, enc, 'smtp_relays.password:org-b')).toThrow(/cannot be decrypted/);
    expect(() => decryptSecret(other, enc, 'smtp_relays.password:org-a')).toThrow(/PARLEY_SECRET/);
    const parts = enc.split('.');
    const body = Buffer.from(parts[3], 'base64url');
    body[0] ^= 1;
    const altered = [parts[0], parts[1], parts[2], body.toString('base64url')].join('.');
    expect(() => decryptSecret(config, altered, 'smtp_relays.password:org-a')).toThrow();
    expect(() => decryptSecret(config, 'v0.a.b.c', 'x')).toThrow(/unknown format/);
  });

  it('needs an app secret', () => {
    expect(() => encryptSecret({ secret: undefined }, 'x', 'c')).toThrow(/No app secret/);
  });
});
