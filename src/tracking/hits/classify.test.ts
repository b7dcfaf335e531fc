import { describe, expect, it } from 'vitest';
import { classifyHitLines, classifyHits, type Hit, inCidr } from './classify.ts';

const sentAt = new Date('2026-11-20T10:00:00Z');
const at = (s: number) => new Date(sentAt.getTime() + s * 1000);
const CHROME =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36';
const hit = (o: Partial<Hit>): Hit => ({
  at: at(3600),
  kind: 'open',
  method: 'GET',
  ip: '203.0.113.7',
  userAgent: CHROME,
  headers: {},
  ...o,
});
const one = (o: Partial<Hit>, m = {}) => classifyHits({ sentAt, ...m }, [hit(o)])[0];

describe('machine opens and scanner clicks', () => {
  it('a person in a browser is human', () => {
    expect(one({})).toEqual({ verdict: 'human', reason: 'human' });
    expect(one({ kind: 'click', link: 0 })).toEqual({ verdict: 'human', reason: 'human' });
  });

  it('HEAD and prefetch requests are machines', () => {
    expect(one({ method: 'HEAD' }).reason).toBe('head_request');
    expect(one({ headers: { 'Sec-Purpose': 'prefetch;prerender' } }).reason).toBe('prefetch');
    expect(one({ headers: { purpose: 'prefetch' } }).reason).toBe('prefetch');
  });

  it('Apple Mail Privacy Protection is a machine; Gmail and Yahoo image proxies stand for a person', () => {
    expect(one({ ip: '17.58.63.1', userAgent: 'Mozilla/5.0' })).toEqual({
      verdict: 'machine',
      reason: 'apple_mpp',
    });
    expect(one({ ip: '::ffff:17.1.2.3', userAgent: 'Mozilla/5.0' }).reason).toBe('apple_mpp');
    expect(
      one({
        ip: '66.249.84.1',
        userAgent:
          'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)',
      }),
    ).toEqual({
      verdict: 'human',
      reason: 'image_proxy:gmail',
    });
    expect(
      one({ userAgent: 'YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html' }).reason,
    ).toBe('image_proxy:yahoo');
  });

  it('link scanners are machines, by agent or by network', () => {
    expect(one({ kind: 'click', link: 0, ip: '40.93.1.2' }).reason).toBe('scanner_network:microsoft');
    expect(one({ kind: 'click', link: 0, ip: '2a01:111:f400:fe00::1' }).reason).toBe(
      'scanner_network:microsoft',
    );
    expect(one({ kind: 'click', link: 0, userAgent: 'Mimecast URL Protect' }).reason).toBe(
      'scanner_agent:mimecast',
    );
    expect(one({ kind: 'click', link: 0, userAgent: 'python-requests/2.31' }).reason).toBe(
      'scanner_agent:generic',
    );
    expect(
      one({ kind: 'click', link: 0, userAgent: 'Googlebot/2.1 (+http://www.google.com/bot.html)' }).reason,
    ).toBe('isbot');
  });

  it('a click seconds after delivery, every link at once, or the trap link are machines', () => {
    expect(one({ kind: 'click', link: 0, at: at(3) }).reason).toBe('click_too_soon');
    const burst = [0, 1, 2].map((l) => hit({ kind: 'click', link: l, at: at(600 + l) }));
    expect(classifyHits({ sentAt, links: 3 }, burst).map((v) => v.reason)).toEqual(
      Array(3).fill('all_links_at_once'),
    );
    const trap = [hit({ kind: 'click', link: 0, at: at(900) }), hit({ kind: 'click', link: 5, at: at(901) })];
    expect(classifyHits({ sentAt, links: 6, trapLink: 5 }, trap).map((v) => v.reason)).toEqual([
      'trap_link',
      'trap_link',
    ]);
    // A person clicking two of three links a minute apart is a person.
    const person = [
      hit({ kind: 'click', link: 0, at: at(700) }),
      hit({ kind: 'click', link: 2, at: at(760) }),
    ];
    expect(classifyHits({ sentAt, links: 3 }, person).map((v) => v.verdict)).toEqual(['human', 'human']);
  });

  it('matches CIDRs of both families', () => {
    expect(inCidr('10.1.2.3', '10.0.0.0/8')).toBe(true);
    expect(inCidr('11.1.2.3', '10.0.0.0/8')).toBe(false);
    expect(inCidr('2001:db8::1', '2001:db8::/32')).toBe(true);
    expect(inCidr('2001:db9::1', '2001:db8::/32')).toBe(false);
    expect(inCidr('not an ip', '10.0.0.0/8')).toBe(false);
  });

  it('the command judges each message as a whole and keeps the input order', () => {
    const line = (o: object) =>
      JSON.stringify({
        sent_at: sentAt.toISOString(),
        method: 'GET',
        ip: '203.0.113.9',
        user_agent: CHROME,
        ...o,
      });
    const out = classifyHitLines([
      line({ message: 'm1', at: at(500).toISOString(), kind: 'click', link: 0 }),
      line({ message: 'm2', at: at(3600).toISOString(), kind: 'open' }),
      '{not json',
      line({ message: 'm1', at: at(501).toISOString(), kind: 'click', link: 1 }),
      line({
        message: 'm2',
        at: at(3700).toISOString(),
        kind: 'open',
        headers: { 'sec-purpose': 'prefetch' },
      }),
    ]).map((l) => JSON.parse(l));
    expect(out.map((o) => o.reason)).toEqual([
      'all_links_at_once',
      'human',
      'invalid_input',
      'all_links_at_once',
      'prefetch',
    ]);
  });
});
