import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DeliveryLimiter, RateLimit, Semaphore, type TickClock } from './throttle.ts';

function fakeClock(start = 1000): TickClock & { advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('RateLimit', () => {
  it('spaces sends 1/perSecond apart', () => {
    const r = new RateLimit(4); // 250 ms apart
    const starts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const at = r.earliest(0);
      r.commit(at);
      starts.push(at);
    }
    expect(starts).toEqual([0, 250, 500, 750, 1000]);
  });

  it('never exceeds perSecond in any one-second window (property)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.5, max: 200, noNaN: true }),
        fc.array(fc.integer({ min: 0, max: 400 }), { minLength: 1, maxLength: 200 }),
        (perSecond, gaps) => {
          const r = new RateLimit(perSecond);
          let now = 0;
          const starts: number[] = [];
          for (const g of gaps) {
            now += g;
            const at = r.earliest(now);
            expect(at).toBeGreaterThanOrEqual(now);
            r.commit(at);
            starts.push(at);
          }
          // sliding window [s, s + 1000): at most ceil(perSecond) starts
          for (let i = 0; i < starts.length; i++) {
            const n = starts.filter((s) => s >= starts[i] && s < starts[i] + 1000 - 1e-6).length;
            expect(n).toBeLessThanOrEqual(Math.ceil(perSecond));
          }
        },
      ),
    );
  });

  it('allows a burst when asked', () => {
    const r = new RateLimit(10, 3);
    const at = [0, 0, 0, 0].map(() => {
      const t = r.earliest(0);
      r.commit(t);
      return t;
    });
    expect(at).toEqual([0, 0, 0, 100]);
  });
});

describe('Semaphore', () => {
  it('admits max holders and hands slots to waiters in order', async () => {
    const s = new Semaphore(2);
    const order: string[] = [];
    const r1 = await s.acquire();
    const r2 = await s.acquire();
    expect(s.inUse).toBe(2);
    const w3 = s.acquire().then((r) => {
      order.push('3');
      return r;
    });
    const w4 = s.acquire().then((r) => {
      order.push('4');
      return r;
    });
    await Promise.resolve();
    expect(order).toEqual([]);
    expect(s.waiting).toBe(2);
    r1();
    r1(); // a second call is ignored
    const r3 = await w3;
    expect(order).toEqual(['3']);
    expect(s.inUse).toBe(2);
    r2();
    const r4 = await w4;
    expect(order).toEqual(['3', '4']);
    r3();
    r4();
    expect(s.inUse).toBe(0);
  });

  it('acquireWithin times out without taking a slot', async () => {
    const s = new Semaphore(1);
    const r1 = await s.acquireWithin(0);
    expect(r1).not.toBeNull();
    expect(await s.acquireWithin(5)).toBeNull();
    expect(s.waiting).toBe(0);
    const later = s.acquireWithin(1000);
    r1?.();
    expect(await later).not.toBeNull();
    expect(s.inUse).toBe(1);
  });
});

describe('DeliveryLimiter', () => {
  it('applies the relay rate and the stricter domain rate, and says when to come back', () => {
    const clock = fakeClock();
    const l = new DeliveryLimiter({ perSecond: 10, domains: { 'gmail.com': { perSecond: 2 } } }, clock);
    // other domains: 100 ms apart (relay rate)
    expect(l.reserve('example.org', 5000)).toEqual({ delayMs: 0 });
    expect(l.reserve('example.org', 5000)).toEqual({ delayMs: 100 });
    // gmail: the relay slot at 200, then 500 ms apart by its own rate
    expect(l.reserve('gmail.com', 5000)).toEqual({ delayMs: 200 });
    expect(l.reserve('gmail.com', 5000)).toEqual({ delayMs: 700 });
    expect(l.reserve('mail.gmail.com', 5000)).toEqual({ delayMs: 1200 }); // subdomains share the entry
    // beyond the horizon nothing is reserved
    expect(l.reserve('gmail.com', 1000)).toEqual({ delayMs: null, retryInMs: 1700 });
    expect(l.reserve('gmail.com', 1000)).toEqual({ delayMs: null, retryInMs: 1700 });
    clock.advance(1700);
    expect(l.reserve('gmail.com', 1000)).toEqual({ delayMs: 0 });
    // the relay rate kept counting gmail's sends: the next slot is 100 ms after the last one
    expect(l.reserve('example.org', 5000)).toEqual({ delayMs: 100 });
  });

  it('says how many sends the relay rate has room for within the horizon', () => {
    const clock = fakeClock();
    const l = new DeliveryLimiter({ perSecond: 10, domains: {} }, clock);
    expect(l.room(1000)).toBe(11); // at 0, 100, …, 1000 ms
    for (let i = 0; i < 4; i++) l.reserve('example.org', 5000);
    expect(l.room(1000)).toBe(7); // the next at 400 ms
    for (let i = 0; i < 20; i++) l.reserve('example.org', 5000);
    expect(l.room(1000)).toBe(0);
    clock.advance(2000);
    expect(l.room(1000)).toBe(7); // next slot at 2400 ms: 2400…3000
  });

  it('sends nothing to a domain whose connections are all with other workers', () => {
    const l = new DeliveryLimiter({
      perSecond: 10,
      domains: { 'gmail.com': { connections: 0, perSecond: 1 } },
    });
    expect(l.reserve('mail.gmail.com', 5000)).toEqual({ delayMs: null, retryInMs: 2000 });
    expect(l.reserve('example.org', 5000)).toEqual({ delayMs: 0 }); // nothing was reserved for gmail
  });

  it('matches domain entries by label, not by substring', () => {
    const l = new DeliveryLimiter({ perSecond: 1, domains: { 'mail.com': { connections: 1 } } });
    expect(l.limitKey('MAIL.COM')).toBe('mail.com');
    expect(l.limitKey('eu.mail.com')).toBe('mail.com');
    expect(l.limitKey('gmail.com')).toBeUndefined();
    expect(l.limitKey('com')).toBeUndefined();
  });

  it('caps concurrent sends per domain and per relay, and gives up after the timeout', async () => {
    const l = new DeliveryLimiter({
      perSecond: 100,
      maxConnections: 2,
      domains: { 'gmail.com': { connections: 1 } },
    });
    const a = await l.acquireSlots('gmail.com', 1000);
    expect(a).not.toBeNull();
    let second = false;
    const b = l.acquireSlots('gmail.com', 1000).then((r) => {
      second = true;
      return r;
    });
    const other = await l.acquireSlots('example.org', 1000); // no domain limit there; 2nd relay slot
    expect(other).not.toBeNull();
    await new Promise((r) => setTimeout(r, 5));
    expect(second).toBe(false);
    // the relay is full (2 of 2): a third domain times out, holding nothing
    expect(await l.acquireSlots('example.net', 10)).toBeNull();
    a?.();
    const bRelease = await b;
    expect(second).toBe(true);
    expect(bRelease).not.toBeNull();
    // gmail's slot is taken by b: a gmail send times out and leaves the relay slots as they were
    expect(await l.acquireSlots('gmail.com', 10)).toBeNull();
    other?.();
    bRelease?.();
    const c = await l.acquireSlots('gmail.com', 0);
    const d = await l.acquireSlots('example.net', 0);
    expect(c && d).toBeTruthy();
  });
});
