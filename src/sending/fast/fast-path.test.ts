import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Liquid } from 'liquidjs';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { simpleParser } from 'mailparser';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { verifyTrackingToken } from '../../tracking/tokens.ts';
import { generateDkimKey, loadDkimKey } from '../dkim.ts';
import { createSignPool } from '../sign-pool.ts';
import { newMessageIdHeader, parseVerp } from '../verp.ts';
import {
  buildBatch,
  compileMerge,
  type FastRecipient,
  type PrepareSendInput,
  prepareSend,
  signBatch,
  trackedLinksOf,
} from './fast-path.ts';

const SECRET = 'test-secret-0123456789-0123456789-abcdef';
const opts = { strictVariables: true, strictFilters: true, ownPropertyOnly: true } as const;
const engine = new Liquid(opts);
const htmlEngine = new Liquid({ ...opts, outputEscape: 'escape' });
const rsa = generateDkimKey('rsa-sha256');
const key = loadDkimKey({ domain: 'example.com', selector: 's1', privateKey: rsa.privateKeyPem });

const html = `<html><body>
<p>Hi {{ lead.first_name | default: "there" }},</p>
<p><a href="https://acme.example/pricing?a=1&amp;b=2">Pricing</a>
<a class="x" href='https://acme.example/demo'>Demo</a>
<a href="https://acme.example/u/{{ lead.id }}">Personal (untracked)</a>
<a href="mailto:sales@acme.example">Mail us</a></p>
{% if lead.vip %}<p><a href="https://acme.example/vip">VIP</a></p>{% endif %}
.a line that starts with a dot
</body></html>`;

function input(patch: Partial<PrepareSendInput> = {}): PrepareSendInput {
  return {
    engine,
    htmlEngine,
    template: {
      subject: 'Hello {{ lead.first_name | default: "there" }}',
      html,
      text: 'Hi {{ lead.first_name }},\n.bye\n',
    },
    from: { address: 'sales@example.com', name: 'Acme Sales' },
    bounceDomain: 'bounce.example.com',
    secret: SECRET,
    publicUrl: 'https://crm.example.com/',
    trackOpens: true,
    trackClicks: true,
    listUnsubscribe: { oneClick: true },
    dkimKeys: [key],
    ...patch,
  };
}

function recipient(scope: Record<string, unknown>, i = 0): FastRecipient {
  return {
    messageId: randomUUID(),
    messageIdHeader: newMessageIdHeader('example.com'),
    to: { address: `r${i}@example.org`, name: `R ${i}` },
    scope,
  };
}

const pool = createSignPool({ size: 1 });
afterAll(() => pool.close());

describe('prepareSend', () => {
  it('finds the tracked links once (static http(s) hrefs, inside tags too)', () => {
    const send = prepareSend(input());
    expect(send.links).toEqual([
      'https://acme.example/pricing?a=1&b=2',
      'https://acme.example/demo',
      'https://acme.example/vip',
    ]);
    expect(prepareSend(input({ trackClicks: false })).links).toEqual([]);
    // the click endpoint finds the same list from the message's HTML source alone
    expect(trackedLinksOf(input().template.html as string)).toEqual(send.links);
  });
  it('refuses a bad public URL and NUL characters', () => {
    expect(() => prepareSend(input({ publicUrl: 'javascript:x' }))).toThrow(/publicUrl/);
    expect(() => prepareSend(input({ template: { subject: 'a\u0000', text: 'x' } }))).toThrow(/NUL/);
  });
});

describe('buildBatch', () => {
  it('merges, escapes, tracks and builds messages that mailparser reads back', async () => {
    const send = prepareSend(input());
    const rs = [
      recipient({ lead: { first_name: 'Jane <b>', id: 'L1', vip: true } }, 1),
      recipient({ lead: { first_name: '', id: 'L2', vip: false } }, 2),
    ];
    const built = buildBatch(send, rs, new Date('2025-01-02T03:04:05Z'));
    expect(built.every((b) => b.ok)).toBe(true);
    const [a, b] = built as Extract<(typeof built)[number], { ok: true }>[];
    expect(a.envelope.to).toEqual(['r1@example.org']);
    expect(parseVerp(a.envelope.from, SECRET)).toBe(rs[0].messageId);
    expect(a.subject).toBe('Hello Jane <b>');

    const m = await simpleParser(a.raw);
    expect(m.subject).toBe('Hello Jane <b>');
    expect(m.messageId).toBe(rs[0].messageIdHeader);
    expect(m.text).toBe('Hi Jane <b>,\n.bye\n');
    const h = m.html as string;
    expect(h).toContain('<p>Hi Jane &lt;b&gt;,</p>'); // HTML merge values are escaped
    expect(h).toContain('\n.a line that starts with a dot\n');
    const clicks = [...h.matchAll(/https:\/\/crm\.example\.com\/t\/c\/([A-Za-z0-9_-]{40})/g)].map(
      (x) => x[1],
    );
    expect(clicks).toHaveLength(4); // 3 links and the hidden trap link (index 3)
    expect(h).toMatch(
      /<a href="https:\/\/crm\.example\.com\/t\/c\/[A-Za-z0-9_-]{40}" style="display:none[^>]*><\/a><img/,
    );
    expect(clicks.map((t) => verifyTrackingToken(SECRET, t))).toEqual(
      [0, 1, 2, 3].map((i) => ({ messageId: rs[0].messageId, kind: 'click', linkIndex: i })),
    );
    expect(h).toContain('href="https://acme.example/u/L1"'); // merge-built URL left as is
    expect(h).toContain('href="mailto:sales@acme.example"');
    const pixel = /<img src="https:\/\/crm\.example\.com\/t\/o\/([A-Za-z0-9_-]{40})\.gif"[^>]*><\/body>/.exec(
      h,
    );
    expect(verifyTrackingToken(SECRET, pixel![1])).toEqual({
      messageId: rs[0].messageId,
      kind: 'open',
      linkIndex: 0,
    });
    const unsub = /\r\nList-Unsubscribe:\s+<https:\/\/crm\.example\.com\/u\/([A-Za-z0-9_-]{40})>\r\n/.exec(
      a.raw.toString(),
    );
    expect(verifyTrackingToken(SECRET, unsub![1])?.kind).toBe('unsubscribe');
    expect(a.raw.toString()).toContain('List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n');

    const mb = await simpleParser(b.raw);
    expect(mb.subject).toBe('Hello there');
    expect(mb.html).not.toContain('acme.example/vip');
    expect([...(mb.html as string).matchAll(/\/t\/c\//g)]).toHaveLength(3);
  });

  it('fails only the recipients whose merge fails', () => {
    const send = prepareSend(input());
    const built = buildBatch(send, [
      recipient({ lead: { first_name: 'A', id: 'x', vip: false } }),
      recipient({ other: 1 }), // strictVariables: lead is undefined
      recipient({ lead: { first_name: 'B\r\nBcc: x@evil.example', id: 'y', vip: false } }),
    ]);
    expect(built.map((b) => b.ok)).toEqual([true, false, true]);
    expect(!built[1].ok && built[1].error).toMatch(/undefined variable: lead/);
    // line breaks from merge values cannot reach the Subject header
    expect(built[2].ok && built[2].raw.toString()).toContain('Subject: Hello B Bcc: x@evil.example\r\n');
  });

  it('turns line breaks in merge values into CRLF (no bare LF reaches the wire)', async () => {
    const send = prepareSend(input());
    const [b] = buildBatch(send, [recipient({ lead: { first_name: 'Ann\nMarie\r', id: 'x', vip: false } })]);
    if (!b.ok) throw new Error(b.error);
    const raw = b.raw.toString('latin1');
    expect(/\r(?!\n)|(?<!\r)\n/.test(raw)).toBe(false);
    const m = await simpleParser(b.raw);
    expect(m.text).toBe('Hi Ann\nMarie\n,\n.bye\n');
    expect(m.subject).toBe('Hello Ann Marie');
  });

  it('builds text-only, untracked messages without List-Unsubscribe', async () => {
    const send = prepareSend(
      input({
        template: { subject: 'Hi', text: 'Plain {{ lead.first_name }}' },
        trackOpens: false,
        listUnsubscribe: false,
      }),
    );
    const [b] = buildBatch(send, [recipient({ lead: { first_name: 'Z' } })]);
    if (!b.ok) throw new Error(b.error);
    const m = await simpleParser(b.raw);
    expect(m.text).toBe('Plain Z\n');
    expect(m.html).toBe(false);
    expect(b.raw.toString()).not.toContain('List-Unsubscribe');
  });

  it('signs in the pool; DKIM passes and covers the List-* headers', async () => {
    const send = prepareSend(input());
    const built = await signBatch(
      pool,
      send,
      buildBatch(
        send,
        [1, 2, 3].map((i) => recipient({ lead: { first_name: `N${i}`, id: 'x', vip: true } }, i)),
      ),
    );
    for (const b of built) {
      if (!b.ok) throw new Error(b.error);
      const r = await dkimVerify(b.raw, { resolver: async () => [[rsa.dnsValue]] });
      expect(r.results[0].status.result).toBe('pass');
      expect((r.results[0] as any).signingHeaders.keys).toMatch(/List-Unsubscribe: List-Unsubscribe-Post/);
    }
  });
});

describe('merge fields evaluated directly', () => {
  const value = fc.oneof(
    fc.constantFrom('', ' ', '<b>&"\'</b>', 'Zoë', '0', 'size'),
    fc.string({ maxLength: 6 }),
    fc.constantFrom(0, -0, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 1e21),
    fc.constantFrom(null, undefined, true, false),
    fc.constant([1, 'a']),
    fc.constant({ first: 'F', size: 3 }),
  );
  const scopeArb = fc.record({
    lead: fc.oneof(
      fc.dictionary(fc.constantFrom('first_name', 'company', 'size', 'n'), value, { maxKeys: 4 }),
      value,
    ),
    org: fc.record({ name: value }),
  });
  const sources = [
    'Hi {{ lead.first_name }}!',
    '{{ lead.first_name | default: "there" }} at {{ lead.company | default: \'co\' }}',
    '{{ lead.size }} {{ lead.n }} {{ org.name | default: "x" }}',
    '{{lead.first_name|default:"a"}}{{- org.name -}} .',
    '{{ lead.first_name | upcase }} {{ org.name }}',
    '{% if lead.n %}{{ lead.n }}{% endif %} {{ org.name }}',
    '{% assign org = lead %}{{ org.name }}',
    '{{ constructor }} {{ lead.first_name }}',
  ];
  function outcome(f: () => string) {
    try {
      return { ok: f() };
    } catch (e) {
      return { error: (e as Error).message };
    }
  }
  it('gives exactly what liquidjs gives, errors included (property)', () => {
    for (const eng of [engine, htmlEngine])
      for (const src of sources) {
        const fast = compileMerge(eng, src);
        const parsed = eng.parse(src);
        fc.assert(
          fc.property(scopeArb, (scope) => {
            expect(outcome(() => fast(scope))).toEqual(
              outcome(() => eng.renderSync(parsed, scope) as string),
            );
          }),
          { numRuns: 300 },
        );
      }
  });

  it('does not call liquidjs for plain merge fields that resolve, and does when they do not', () => {
    const eng = new Liquid({ ...opts, outputEscape: 'escape' });
    const spy = vi.spyOn(eng, 'renderSync');
    const fast = compileMerge(eng, '<p>{{ lead.first_name | default: "there" }}, {{ org.name }}</p>');
    expect(fast({ lead: { first_name: 'A&B' }, org: { name: 'Acme' } })).toBe('<p>A&amp;B, Acme</p>');
    expect(spy).not.toHaveBeenCalled();
    expect(() => fast({ lead: {}, org: { name: 'Acme' } })).toThrow(/undefined variable: lead.first_name/);
    expect(spy).toHaveBeenCalledTimes(1);
  });
});
