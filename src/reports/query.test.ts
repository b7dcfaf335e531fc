import { describe, expect, it } from 'vitest';
import { wholeMonths } from './query.ts';

const d = (s: string) => new Date(`${s}T00:00:00Z`);
const iso = (x: { ms: Date; me: Date }) => [x.ms.toISOString().slice(0, 10), x.me.toISOString().slice(0, 10)];

describe('wholeMonths', () => {
  it('takes the UTC months that lie wholly inside the days', () => {
    expect(iso(wholeMonths(d('2026-01-01'), d('2027-01-01')))).toEqual(['2026-01-01', '2027-01-01']);
    expect(iso(wholeMonths(d('2026-01-02'), d('2026-12-31')))).toEqual(['2026-02-01', '2026-12-01']);
    expect(iso(wholeMonths(d('2025-12-15'), d('2026-02-01')))).toEqual(['2026-01-01', '2026-02-01']);
  });
  it('is empty when no whole month fits', () => {
    const r = wholeMonths(d('2026-03-02'), d('2026-03-31'));
    expect(r.ms >= r.me).toBe(true);
  });
});
