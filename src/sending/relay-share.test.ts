import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { relayShare } from './relay-share.ts';
import type { RelaySettings } from './relays.ts';

const relay = (o: Partial<RelaySettings> = {}): RelaySettings => ({
  orgId: '7b0c2f1e-0000-4000-8000-000000000001',
  host: 'smtp.example.com',
  port: 587,
  security: 'starttls',
  username: null,
  passwordEnc: null,
  maxConnections: 6,
  maxPerSecond: 30,
  domainLimits: {},
  sendingDomain: null,
  version: 'v1',
  ...o,
});

/** Every worker's share, for `count` live workers. */
const shares = (r: RelaySettings, count: number) =>
  Array.from({ length: count }, (_, rank) => relayShare(r, { rank, count }));

describe('relayShare', () => {
  it('is the whole relay for a process alone', () => {
    const r = relay();
    expect(relayShare(r, undefined)).toBe(r);
    expect(relayShare(r, { rank: 0, count: 1 })).toBe(r);
  });

  it('splits connections, rate and domain limits between three workers', () => {
    const r = relay({
      maxConnections: 7,
      maxPerSecond: 30,
      domainLimits: { 'gmail.com': { connections: 2, perSecond: 6 }, 'slow.test': { perSecond: 1 } },
    });
    const all = shares(r, 3);
    expect(all.map((s) => s?.maxConnections).sort()).toEqual([2, 2, 3]);
    for (const s of all) {
      expect(s?.maxPerSecond).toBe(10);
      expect(s?.domainLimits['slow.test']).toEqual({ perSecond: 1 / 3 });
      expect(s?.version).toMatch(/^v1\|\d\/3$/);
    }
    // two gmail.com connections for three workers: one of them sends none there, the two others
    // half its rate each
    expect(
      all
        .map((s) => s?.domainLimits['gmail.com'])
        .sort((a, b) => (a?.connections ?? 0) - (b?.connections ?? 0)),
    ).toEqual([
      { connections: 0, perSecond: 3 },
      { connections: 1, perSecond: 3 },
      { connections: 1, perSecond: 3 },
    ]);
  });

  it('leaves out the workers a relay has no connection for, rotating by org', () => {
    const senders = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const orgId = `${(i * 0x0c0ffee1).toString(16).padStart(8, '0').slice(-8)}-0000-4000-8000-000000000000`;
      const all = shares(relay({ orgId, maxConnections: 1, maxPerSecond: 5 }), 3);
      const mine = all.flatMap((s, rank) => (s ? [rank] : []));
      expect(mine).toHaveLength(1);
      expect(all[mine[0]]?.maxPerSecond).toBe(5);
      senders.add(mine[0]);
    }
    expect(senders.size).toBe(3); // not always the first worker
  });

  it('never gives away more than the relay allows, and gives it all (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 50 }),
        fc.double({ min: 0.01, max: 1000, noNaN: true }),
        fc.integer({ min: 1, max: 20 }),
        fc.double({ min: 0.01, max: 100, noNaN: true }),
        fc.uuid(),
        (count, connections, perSecond, domainConnections, domainRate, orgId) => {
          const r = relay({
            orgId,
            maxConnections: connections,
            maxPerSecond: perSecond,
            domainLimits: { 'd.test': { connections: domainConnections, perSecond: domainRate } },
          });
          const given = shares(r, count).filter((s) => s !== null);
          expect(given).toHaveLength(Math.min(count, connections));
          const sum = (f: (s: RelaySettings) => number) => given.reduce((a, s) => a + f(s), 0);
          expect(sum((s) => s.maxConnections)).toBe(connections);
          expect(given.every((s) => s.maxConnections >= 1)).toBe(true);
          expect(sum((s) => s.maxPerSecond)).toBeCloseTo(perSecond, 6);
          expect(sum((s) => s.domainLimits['d.test'].connections ?? 0)).toBe(domainConnections);
          // the rate of those that send to the domain at all
          const toDomain = given.filter((s) => s.domainLimits['d.test'].connections !== 0);
          expect(toDomain.reduce((a, s) => a + (s.domainLimits['d.test'].perSecond ?? 0), 0)).toBeCloseTo(
            domainRate,
            6,
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});
