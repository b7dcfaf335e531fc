import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { base32, newMessageIdHeader, parseVerp, verpReturnPath } from './verp.ts';

const SECRET = 'test-secret-0123456789-0123456789-abcdef';

describe('base32', () => {
  it('matches RFC 4648 test vectors (lowercase, unpadded)', () => {
    const vectors: [string, string][] = [
      ['', ''],
      ['f', 'my'],
      ['fo', 'mzxq'],
      ['foo', 'mzxw6'],
      ['foob', 'mzxw6yq'],
      ['fooba', 'mzxw6ytb'],
      ['foobar', 'mzxw6ytboi'],
    ];
    for (const [input, out] of vectors) expect(base32(Buffer.from(input))).toBe(out);
  });
});

describe('newMessageIdHeader', () => {
  it('is <unique@domain> on the normalised sending domain', () => {
    const a = newMessageIdHeader('Mail.Example.COM');
    expect(a).toMatch(/^<[0-9a-z]+\.[a-z2-7]{24}@mail\.example\.com>$/);
    const seen = new Set(Array.from({ length: 1000 }, () => newMessageIdHeader('x.example')));
    expect(seen.size).toBe(1000);
  });
  it('rejects a domain that could inject a header', () => {
    expect(() => newMessageIdHeader('x.example>\r\nBcc: a@b.c')).toThrow(/control character/);
  });
});

describe('VERP', () => {
  it('round-trips the message id and fits a local part', () => {
    const id = randomUUID();
    const rp = verpReturnPath(id, 'bounces.example.com', SECRET);
    expect(rp).toMatch(/^b-[0-9a-f]{32}-[a-z2-7]{16}@bounces\.example\.com$/);
    expect(rp.split('@')[0].length).toBeLessThanOrEqual(64);
    expect(parseVerp(rp, SECRET)).toBe(id);
    expect(parseVerp(`<${rp.toUpperCase()}>`, SECRET)).toBe(id); // case folded by some MTA
    expect(parseVerp(rp.split('@')[0], SECRET)).toBe(id); // local part alone
  });
  it('rejects another secret, a swapped id, and any altered character', () => {
    fc.assert(
      fc.property(fc.uuid(), fc.nat(), fc.integer({ min: 1, max: 31 }), (id, pos, delta) => {
        const rp = verpReturnPath(id, 'b.example.com', SECRET);
        expect(parseVerp(rp, 'another-secret-0123456789-0123456789')).toBeNull();
        const local = rp.split('@')[0];
        // change one character of the id or the tag to another valid character
        const i = 2 + (pos % (local.length - 2));
        if (local[i] === '-') return;
        const alphabet = i < 34 ? '0123456789abcdef' : 'abcdefghijklmnopqrstuvwxyz234567';
        const c = alphabet[(alphabet.indexOf(local[i]) + delta) % alphabet.length];
        if (c === local[i]) return;
        const forged = `${local.slice(0, i)}${c}${local.slice(i + 1)}@b.example.com`;
        expect(parseVerp(forged, SECRET)).toBeNull();
      }),
      { numRuns: 300 },
    );
    const other = randomUUID().replaceAll('-', '');
    const rp = verpReturnPath(randomUUID(), 'b.example.com', SECRET);
    expect(parseVerp(rp.replace(/^b-[0-9a-f]{32}/, `b-${other}`), SECRET)).toBeNull();
  });
  it('returns null for addresses that are not VERP', () => {
    for (const a of ['', 'jane@example.com', 'b-123-abc@example.com', 'b-@x', 'x'.repeat(400)])
      expect(parseVerp(a, SECRET)).toBeNull();
  });
  it('refuses ids that are not UUIDs', () => {
    expect(() => verpReturnPath('42', 'b.example.com', SECRET)).toThrow(/UUID/);
  });
});
