import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { describe, expect, it } from 'vitest';
import {
  type DkimKey,
  dkimDnsName,
  dkimSign,
  dkimSignatureHeaders,
  generateDkimKey,
  loadDkimKey,
  relaxedBody,
  relaxedHeader,
} from './dkim.ts';
import { buildMessage } from './mime.ts';

const rsa = generateDkimKey('rsa-sha256');
const ed = generateDkimKey('ed25519-sha256');
const rsaKey = loadDkimKey({ domain: 'Example.com', selector: 'p1', privateKey: rsa.privateKeyPem });
const edKey = loadDkimKey({ domain: 'example.com', selector: 'e1', privateKey: ed.privateKeyPem });

const dns: Record<string, string> = {
  [dkimDnsName('p1', 'example.com')]: rsa.dnsValue,
  [dkimDnsName('e1', 'example.com')]: ed.dnsValue,
};
async function resolver(name: string, type: string) {
  const v = dns[name];
  if (type !== 'TXT' || !v) throw Object.assign(new Error(`no ${type} for ${name}`), { code: 'ENOTFOUND' });
  return [[v]];
}

async function verify(raw: Buffer) {
  const r = await dkimVerify(raw, { resolver });
  // mailauth's typings leave out algo, format and signingHeaders, which it does return
  return r.results as any[];
}

function message(extra: Partial<Parameters<typeof buildMessage>[0]> = {}) {
  return buildMessage({
    from: { address: 'sales@example.com', name: 'Acme Sales' },
    to: { address: 'jane@example.org', name: 'Jane Doe' },
    replyTo: { address: 'replies@example.com' },
    subject: 'Grüße, Jane',
    text: 'Hi Jane,\n\n.a line with a dot\nbye  with two spaces \t\n\n\n',
    html: `<p>${'Hello there. '.repeat(600)}</p>`,
    messageIdHeader: '<m1@mail.example.com>',
    date: new Date(),
    listUnsubscribe: { url: 'https://crm.example.com/t/u/abc', post: true },
    ...extra,
  });
}

describe('generateDkimKey / loadDkimKey', () => {
  it('produces keys and DNS values mailauth accepts', () => {
    expect(rsa.dnsValue).toMatch(/^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{380,}$/);
    expect(ed.dnsValue).toMatch(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
    expect(rsaKey).toMatchObject({ domain: 'example.com', algorithm: 'rsa-sha256' });
    expect(edKey.algorithm).toBe('ed25519-sha256');
  });
  it('rejects bad keys with clear errors', () => {
    expect(() => loadDkimKey({ domain: 'example.com', selector: 's', privateKey: 'nope' })).toThrow(
      /not a valid PEM/,
    );
    expect(() =>
      loadDkimKey({
        domain: 'example.com',
        selector: 's',
        privateKey: rsa.privateKeyPem,
        algorithm: 'ed25519-sha256',
      }),
    ).toThrow(/is rsa but/);
    expect(() =>
      loadDkimKey({ domain: 'example.com', selector: 'bad selector', privateKey: rsa.privateKeyPem }),
    ).toThrow(/selector/);
    const small = generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey;
    expect(() => loadDkimKey({ domain: 'example.com', selector: 's', privateKey: small })).toThrow(/1024/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    expect(() => loadDkimKey({ domain: 'example.com', selector: 's', privateKey: ec })).toThrow(
      /RSA or Ed25519/,
    );
  });
});

describe('dkimSign', () => {
  it('RSA-2048 passes mailauth and signs the required headers, List-* included', async () => {
    const [r] = await verify(dkimSign(message(), [rsaKey]));
    expect(r.status.result).toBe('pass');
    expect(r.algo).toBe('rsa-sha256');
    expect(r.format).toBe('relaxed/relaxed');
    const h: string[] = r.signingHeaders.keys.toLowerCase().split(': ').join(':').split(':');
    for (const name of [
      'from',
      'to',
      'subject',
      'date',
      'message-id',
      'reply-to',
      'mime-version',
      'content-type',
      'list-unsubscribe',
      'list-unsubscribe-post',
    ])
      expect(h).toContain(name);
  });

  it('signs with RSA and Ed25519 together; both pass', async () => {
    const results = await verify(dkimSign(message(), [rsaKey, edKey]));
    expect(results.map((r: any) => [r.algo, r.status.result])).toEqual([
      ['rsa-sha256', 'pass'],
      ['ed25519-sha256', 'pass'],
    ]);
  });

  it('fails when any byte of the body or a signed header changes', async () => {
    const signed = dkimSign(message(), [rsaKey, edKey]);
    const s = signed.toString('latin1');
    const bodyAt = s.indexOf('a line with a dot') + 3;
    const htmlAt = s.indexOf('base64\r\n\r\n') + 20;
    const subjectAt = s.indexOf('Subject: ') + 12;
    const unsubAt = s.indexOf('List-Unsubscribe: ') + 40;
    const cases: [number, string][] = [
      [bodyAt, 'body hash did not verify'],
      [htmlAt, 'body hash did not verify'],
      [signed.length - 20, 'body hash did not verify'],
      [subjectAt, 'bad signature'],
      [unsubAt, 'bad signature'],
    ];
    for (const [at, why] of cases) {
      expect(at).toBeGreaterThan(signed.indexOf('\r\nFrom: '));
      const tampered = Buffer.from(signed);
      tampered[at] ^= 1;
      const results = await verify(tampered);
      expect(results.map((r: any) => r.status.comment)).toEqual([why, why]);
      for (const r of results) expect(['fail', 'neutral']).toContain(r.status.result);
    }
  });

  it('fails when a second From or List-Unsubscribe is added (oversigning)', async () => {
    const signed = dkimSign(message(), [rsaKey]).toString('latin1');
    for (const added of [
      'From: evil@attacker.example\r\n',
      'List-Unsubscribe: <https://evil.example/>\r\n',
    ]) {
      const i = signed.indexOf('MIME-Version:');
      const tampered = Buffer.from(signed.slice(0, i) + added + signed.slice(i), 'latin1');
      const [r] = await verify(tampered);
      expect(r.status.result).toBe('fail');
    }
  });

  it('passes for folded headers, non-canonical bodies, text-only and empty bodies', async () => {
    const cases = [
      message({ html: undefined }),
      message({ html: undefined, text: '' }),
      message({ subject: `A long subject ${'word '.repeat(40)}` }),
      Buffer.from(
        'From: a@example.com\r\nTo:   b@example.org\r\nSubject: folded\r\n\tover  two\r\n  lines\r\nX-Other: not signed\r\n\r\n  indented\t\tline \r\n\r\n\r\n',
      ),
    ];
    for (const [i, raw] of cases.entries()) {
      const results = await verify(dkimSign(raw, [rsaKey, edKey]));
      expect([i, ...results.map((r: any) => r.status.comment || r.status.result)]).toEqual([
        i,
        'pass',
        'pass',
      ]);
    }
  });

  it('passes for arbitrary bodies and subjects (property)', async () => {
    const line = fc.stringMatching(/^[ \t.a-zA-Zäöü😀-]{0,90}$/u);
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 12 }), line, async (textLines, subject) => {
        const raw = message({ html: undefined, text: textLines.join('\n'), subject });
        const results = await verify(dkimSign(raw, [rsaKey, edKey]));
        expect(results.map((r: any) => r.status.result)).toEqual(['pass', 'pass']);
      }),
      { numRuns: 40 },
    );
  });

  it('returns the message unchanged with no keys, and refuses a message without From', () => {
    const raw = message();
    expect(dkimSign(raw, [])).toBe(raw);
    expect(() => dkimSignatureHeaders(Buffer.from('To: a@example.org\r\n\r\nx\r\n'), [rsaKey])).toThrow(
      /From/,
    );
  });

  it('is deterministic for a fixed time (RSA PKCS#1 v1.5 and Ed25519 are)', () => {
    const raw = message();
    const keys: DkimKey[] = [rsaKey, edKey];
    expect(dkimSignatureHeaders(raw, keys, { time: 1 })).toBe(dkimSignatureHeaders(raw, keys, { time: 1 }));
  });
});

describe('canonicalisation', () => {
  it('relaxes headers and bodies as RFC 6376 §3.4 says', () => {
    expect(relaxedHeader('SubJect :  a \r\n\t b  ')).toBe('subject:a b');
    expect(relaxedBody(Buffer.from(' C \r\nD \t E\r\n\r\n\r\n')).toString()).toBe(' C\r\nD E\r\n');
    expect(relaxedBody(Buffer.from('\r\n\r\n')).toString()).toBe('');
    expect(relaxedBody(Buffer.from('\r\n')).toString()).toBe('');
    expect(relaxedBody(Buffer.from('x')).toString()).toBe('x\r\n');
    const canonical = Buffer.from('a b\r\nc\r\n');
    expect(relaxedBody(canonical)).toBe(canonical); // no copy on the fast path
  });
});
