import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BounceResult,
  classifyBounce,
  mimeParts,
  parseDsnFields,
} from '../../src/tracking/bounces/classify.ts';
import { arf, dsn, proseBounce } from '../support/bounce-mail.ts';
import { cases, FUZZ_TIMEOUT, fuzzOptions, mutated, within } from './support.ts';

// The DSN (RFC 3464) and ARF (RFC 5965) readers behind the bounce listener get whatever a remote MTA
// sends: well-formed reports, reports broken at random, and hostile ones (huge lines, deep nesting,
// binary). classifyBounce must answer every one, quickly, with a well-formed result; a well-formed
// report must still be read right.

const RUNS = cases(500);
const LIMIT_MS = 1_500; // per message; the largest generated message is ~600 KB

const local = fc.stringMatching(/^[a-z0-9][a-z0-9._+-]{0,20}$/);
const domain = fc.stringMatching(/^[a-z0-9]{1,12}\.(test|example|com|de)$/);
const address = fc.tuple(local, domain).map(([l, d]) => `${l}@${d}`);
const status = fc.oneof(
  fc.tuple(fc.constantFrom(2, 4, 5), fc.nat(9), fc.nat(20)).map(([a, b, c]) => `${a}.${b}.${c}`),
  fc.constantFrom('5.1.1', '4.2.2', '5.7.1', '5.2.2', 'x.y.z', '', '9.9.9', '5.1.1.1', '5.1'),
);
const diagnostic = fc.oneof(
  fc.constantFrom(
    '550 5.1.1 User unknown',
    '452 4.2.2 Mailbox full',
    '554 5.7.1 Blocked by spam policy',
    'Benutzer unbekannt',
    '421 try again later',
    '',
  ),
  fc.string({ maxLength: 120 }),
);
const action = fc.constantFrom(
  'failed',
  'delayed',
  'delivered',
  'relayed',
  'expanded',
  'FAILED',
  '',
  'weird',
);
const messageId = fc.tuple(local, domain).map(([l, d]) => `<${l}@${d}>`);

// Material that has broken parsers and regular expressions before: long runs of address
// characters (backtracking), repeated phrases, boundaries, NUL and 8-bit bytes, encoded words.
const hostile = fc.oneof(
  { arbitrary: fc.string({ maxLength: 300 }), weight: 4 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 300 }), weight: 4 },
  fc.constantFrom(
    '\r\n\r\n',
    '\r\n--BOUND\r\n',
    '\r\n--BOUND--\r\n',
    '\r\n--ARF\r\nContent-Type: message/delivery-status\r\n\r\n',
    '\r\nContent-Transfer-Encoding: base64\r\n',
    '\r\nContent-Transfer-Encoding: quoted-printable\r\n',
    '\r\nContent-Type: multipart/mixed; boundary=""\r\n',
    '=?utf-8?B?w6k=?=',
    '=?x?Q?=ZZ?=',
    '\u0000',
    '\r\nFinal-Recipient: rfc822; \r\n',
    '\r\nFinal-Recipient: rfc822;a@b.cd\r\nFinal-Recipient: rfc822;e@f.gh\r\n',
    ' mailbox full 5.2.2 ',
  ),
  fc
    .tuple(
      fc.constantFrom('a', 'a.', 'mailbox ', 'x@', 'a@b.', '5.', '-', '-\n', '\n', '=', 'ä', '--BOUND\r\n'),
      fc.oneof(
        { arbitrary: fc.integer({ min: 1_000, max: 20_000 }), weight: 4 },
        fc.integer({ min: 20_000, max: 100_000 }),
      ),
    )
    .map(([unit, n]) => unit.repeat(Math.ceil(n / unit.length))),
);

/** A multipart/report nested a few levels deep, every level with its own boundary. */
const nested = fc.tuple(fc.integer({ min: 2, max: 30 }), address).map(([depth, rcpt]) => {
  let body = `Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; ${rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n`;
  for (let i = depth; i > 0; i--)
    body = `Content-Type: multipart/mixed; boundary="b${i}"\r\n\r\n--b${i}\r\n${body}\r\n--b${i}--\r\n`;
  return `From: MAILER-DAEMON@x.test\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n${body}`;
});

/** A DSN whose report part is base64 or quoted-printable, as some MTAs send it. */
const encodedDsn = fc
  .tuple(address, status, diagnostic, fc.constantFrom('base64', 'quoted-printable'))
  .map(([rcpt, st, diag, cte]) => {
    const report = `Reporting-MTA: dns; mx.test\r\n\r\nFinal-Recipient: rfc822; ${rcpt}\r\nAction: failed\r\nStatus: ${st}\r\nDiagnostic-Code: smtp; ${diag}\r\n`;
    const body =
      cte === 'base64'
        ? Buffer.from(report, 'utf8').toString('base64').replace(/.{76}/g, '$&\r\n')
        : report.replace(/=/g, '=3D');
    return `From: MAILER-DAEMON@mx.test\r\nSubject: failure\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=Q\r\n\r\n--Q\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: ${cte}\r\n\r\n${body}\r\n--Q--\r\n`;
  });

interface Expected {
  raw: string;
  /** For an unmutated report: what must be read from it. */
  expect?: { recipient: string; kind?: 'complaint'; status?: string };
}

const wellFormed: fc.Arbitrary<Expected> = fc.oneof(
  fc.record({ to: address, recipient: address, status, diagnostic, messageId, action }).map((o) => {
    const failed = /failed/i.test(o.action) || /^[45]\./.test(o.status);
    const read =
      !/delivered|relayed|expanded/i.test(o.action) && failed && /^[245]\.\d+\.\d+$/.test(o.status);
    return {
      raw: dsn(o),
      expect: read && o.status.startsWith('5') ? { recipient: o.recipient, status: o.status } : undefined,
    };
  }),
  fc.record({ to: address, recipient: address, messageId }).map((o) => ({ raw: proseBounce(o) })),
  fc
    .record({ to: address, recipient: address, messageId })
    .map((o) => ({ raw: arf(o), expect: { recipient: o.recipient, kind: 'complaint' as const } })),
  nested.map((raw) => ({ raw })),
  encodedDsn.map((raw) => ({ raw })),
);

const message: fc.Arbitrary<Expected> = fc.oneof(
  { arbitrary: wellFormed, weight: 1 },
  {
    arbitrary: wellFormed.chain((w) => mutated(fc.constant(w.raw), hostile).map((raw) => ({ raw }))),
    weight: 4,
  },
  {
    arbitrary: fc.uint8Array({ maxLength: 2_000 }).map((b) => ({ raw: Buffer.from(b).toString('latin1') })),
    weight: 1,
  },
);

const KINDS = new Set(['hard', 'soft', 'policy', 'complaint']);

function checkShape(r: BounceResult) {
  if (!r.bounce) {
    expect(typeof r.why).toBe('string');
    return;
  }
  expect(Array.isArray(r.recipients)).toBe(true);
  for (const fr of r.recipients) {
    expect(KINDS.has(fr.kind)).toBe(true);
    expect(fr.status).toMatch(/^$|^[245]\.\d{1,3}\.\d{1,3}$/);
    // Stored and shown as is: a bounded, single-line reason.
    expect(fr.reason.length).toBeLessThanOrEqual(600);
    expect(fr.reason).not.toMatch(/[\r\n]/);
    expect(fr.recipient).toMatch(/^$|^[a-z0-9._%+'=-]+@[a-z0-9.-]+\.[a-z]{2,}$/);
  }
  if (r.originalMessageId !== undefined) expect(r.originalMessageId).toMatch(/^<[^>\s]+>$/);
}

describe('fuzz: DSN and ARF parsers', () => {
  it(
    'classify every message, quickly, into a well-formed result',
    async () => {
      let bounces = 0;
      await fc.assert(
        fc.asyncProperty(message, async (m) => {
          const r = await within(LIMIT_MS, 'classifyBounce', () =>
            classifyBounce(Buffer.from(m.raw, 'latin1')),
          );
          checkShape(r);
          if (r.bounce) bounces++;
          if (m.expect) {
            expect(r.bounce).toBe(true);
            if (!r.bounce) return;
            const hit = r.recipients.find((x) => x.recipient === m.expect?.recipient);
            expect(hit, `recipient ${m.expect.recipient} read`).toBeDefined();
            if (m.expect.kind) expect(hit?.kind).toBe(m.expect.kind);
            if (m.expect.status) expect(hit?.status).toBe(m.expect.status);
          }
        }),
        fuzzOptions('bounce parsers', RUNS, 10_000),
      );
      console.log(`fuzz bounce parsers: ${RUNS} messages, ${bounces} read as bounces`);
      // The generator is meant to produce both outcomes.
      expect(bounces).toBeGreaterThan(RUNS * 0.2);
      expect(bounces).toBeLessThan(RUNS);
    },
    FUZZ_TIMEOUT,
  );

  it(
    'read the report fields and MIME parts of any text without throwing',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          mutated(
            wellFormed.map((w) => w.raw),
            hostile,
          ),
          async (raw) => {
            await within(LIMIT_MS, 'parseDsnFields and mimeParts', () => {
              for (const block of parseDsnFields(raw))
                for (const k of block.keys()) expect(k).toBe(k.toLowerCase());
              for (const p of mimeParts(raw)) expect(typeof p.body).toBe('string');
            });
          },
        ),
        fuzzOptions('report fields', RUNS, 10_000),
      );
    },
    FUZZ_TIMEOUT,
  );

  // Regressions the fuzzer found.
  const notice = (body: string) =>
    Buffer.from(`From: MAILER-DAEMON@mx.test\r\nSubject: Undelivered Mail\r\n\r\n${body}`);
  it('reads a failure notice with a 200 KB line of address characters in well under a second', async () => {
    // Was minutes: the address pattern restarted at every character of the run.
    const raw = notice(`${'a'.repeat(200_000)}\r\n<gone@x.test>: 550 5.1.1 user unknown\r\n`);
    const r = await within(1_000, 'a 200 KB line', () => classifyBounce(raw));
    expect(r.bounce && r.recipients.map((x) => x.recipient)).toEqual(['gone@x.test']);
  });
  it('reads a failure notice with 40,000 dash lines in well under a second', async () => {
    // Was 12 s: the "copy of the original message" marker was searched across lines from every line.
    const raw = notice(`<gone@x.test>: 550 5.1.1 user unknown\r\n${'-\r\n'.repeat(40_000)}`);
    const r = await within(1_000, '40,000 dash lines', () => classifyBounce(raw));
    expect(r.bounce && r.recipients.map((x) => x.recipient)).toEqual(['gone@x.test']);
  });
  it('reads a 5 MB failure notice of distinct addresses and long phrases in seconds', async () => {
    // Was 15 s for 10 MB: every line of it was read for recipients.
    const lines = Array.from({ length: 5_000 }, (_, i) => `u${i}@x${i}.test 550 ${'mailbox '.repeat(120)}`);
    const r = await within(3_000, 'a 5 MB notice', () => classifyBounce(notice(lines.join('\r\n'))));
    expect(r.bounce && r.recipients.length).toBeGreaterThan(100);
  });
});
