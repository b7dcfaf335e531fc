import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { messageTrackingTokens, trackingToken, verifyTrackingToken } from './tokens.ts';

const SECRET = 'test-secret-0123456789-0123456789-abcdef';

describe('tracking tokens', () => {
  it('round-trip message id, kind and link index; URL-safe and short', () => {
    const id = randomUUID();
    for (const [kind, index] of [
      ['open', 0],
      ['unsubscribe', 0],
      ['click', 0],
      ['click', 7],
      ['click', 65535],
    ] as const) {
      const t = trackingToken(SECRET, id, kind, index);
      expect(t).toMatch(/^[A-Za-z0-9_-]{40}$/);
      expect(verifyTrackingToken(SECRET, t)).toEqual({ messageId: id, kind, linkIndex: index });
    }
  });

  it('gives the same tokens one by one and for a whole message', () => {
    const id = randomUUID();
    const all = messageTrackingTokens(SECRET, id, 5);
    expect(all.open).toBe(trackingToken(SECRET, id, 'open'));
    expect(all.unsubscribe).toBe(trackingToken(SECRET, id, 'unsubscribe'));
    expect(all.clicks).toEqual([0, 1, 2, 3, 4].map((i) => trackingToken(SECRET, id, 'click', i)));
    expect(new Set([all.open, all.unsubscribe, ...all.clicks]).size).toBe(7);
  });

  it('refuses another secret, and any token with a changed byte (kind, id, index or tag)', () => {
    fc.assert(
      fc.property(
        fc.uuid(),
        fc.integer({ min: 0, max: 29 }),
        fc.integer({ min: 1, max: 255 }),
        (id, at, x) => {
          const t = trackingToken(SECRET, id, 'open');
          expect(verifyTrackingToken('another-secret-0123456789-0123456789', t)).toBeNull();
          const b = Buffer.from(t, 'base64url');
          b[at] ^= x;
          expect(verifyTrackingToken(SECRET, b.toString('base64url'))).toBeNull();
        },
      ),
      { numRuns: 500 },
    );
  });

  it('cannot turn a pixel token into an unsubscribe or a click by rewriting the kind', () => {
    const t = Buffer.from(trackingToken(SECRET, randomUUID(), 'open'), 'base64url');
    for (const code of [2, 3]) {
      const forged = Buffer.from(t);
      forged[0] = code;
      expect(verifyTrackingToken(SECRET, forged.toString('base64url'))).toBeNull();
    }
  });

  it('returns null for junk', () => {
    for (const t of ['', 'x', 'A'.repeat(40), 'A'.repeat(41), `${'A'.repeat(39)}=`, '../../etc/passwd'])
      expect(verifyTrackingToken(SECRET, t)).toBeNull();
  });

  it('refuses bad inputs when making tokens', () => {
    expect(() => trackingToken(SECRET, 'nope', 'open')).toThrow(/UUID/);
    expect(() => trackingToken(SECRET, randomUUID(), 'click', 70000)).toThrow(/index/);
  });
});
