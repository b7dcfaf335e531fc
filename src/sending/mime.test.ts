import type { AddressInfo } from 'node:net';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMessage, formatDate, type MessageInput, prepareMessage, renderMessage } from './mime.ts';

const base: MessageInput = {
  from: { address: 'sales@example.com', name: 'Acme Sales' },
  to: { address: 'jane@example.org', name: 'Jane Doe' },
  subject: 'Hello Jane',
  text: 'Hi Jane,\nthis is the text.\n',
  html: '<p>Hi <b>Jane</b>,</p>\n<p>this is the html.</p>',
  messageIdHeader: '<abc.def@mail.example.com>',
  date: new Date('2025-03-04T05:06:07Z'),
};

function lines(raw: Buffer) {
  const s = raw.toString('utf8');
  // every line ends in CRLF, none is longer than 998 octets (RFC 5322 §2.1.1)
  expect(s.endsWith('\r\n')).toBe(true);
  expect(/\r(?!\n)|(?<!\r)\n/.test(s)).toBe(false);
  for (const l of s.split('\r\n')) expect(Buffer.byteLength(l)).toBeLessThanOrEqual(998);
  return s;
}

describe('buildMessage', () => {
  it('builds a multipart/alternative message that mailparser reads back', async () => {
    const raw = buildMessage({
      ...base,
      replyTo: { address: 'replies@example.com' },
      listUnsubscribe: { url: 'https://crm.example.com/u/tok123', post: true },
      extraHeaders: { 'X-Parley-Send': 's1' },
    });
    const s = lines(raw);
    const head = s.slice(0, s.indexOf('\r\n\r\n'));
    expect(head).toContain('From: Acme Sales <sales@example.com>\r\n');
    expect(head).toContain('To: Jane Doe <jane@example.org>\r\n');
    expect(head).toContain('Date: Tue, 04 Mar 2025 05:06:07 +0000\r\n');
    expect(head).toContain('MIME-Version: 1.0\r\n');
    expect(head).toContain('List-Unsubscribe: <https://crm.example.com/u/tok123>\r\n');
    expect(head).toContain('List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n');
    const m = await simpleParser(raw);
    expect(m.from?.value).toEqual([{ address: 'sales@example.com', name: 'Acme Sales' }]);
    expect(m.replyTo?.value).toEqual([{ address: 'replies@example.com', name: '' }]);
    expect(m.subject).toBe('Hello Jane');
    expect(m.messageId).toBe('<abc.def@mail.example.com>');
    expect(m.date?.toISOString()).toBe('2025-03-04T05:06:07.000Z');
    expect(m.text).toBe('Hi Jane,\nthis is the text.\n');
    expect(m.html).toBe('<p>Hi <b>Jane</b>,</p>\n<p>this is the html.</p>');
    expect(m.headers.get('x-parley-send')).toBe('s1');
  });

  it('encodes UTF-8 subjects and names, QP for non-ASCII text, base64 in 76 columns for HTML', async () => {
    const subject = `Grüße aus Köln 😀 ${'sehr lange Betreffzeile '.repeat(8)}`.trim();
    const html = `<p>${'Ünïcödé '.repeat(500)}</p>`;
    const raw = buildMessage({
      ...base,
      to: { address: 'jürgen@xn--bcher-kva.de', name: 'Jürgen Bücher' },
      subject,
      text: 'Grüße,\r\nJürgen',
      html,
    });
    const s = lines(raw);
    expect(s).toMatch(/^Subject: =\?UTF-8\?B\?/m);
    expect(s).toContain('Content-Transfer-Encoding: quoted-printable');
    const b64 = s.split('Content-Transfer-Encoding: base64\r\n\r\n')[1].split('\r\n--')[0];
    for (const l of b64.trimEnd().split('\r\n')) expect(l.length).toBeLessThanOrEqual(76);
    const m = await simpleParser(raw);
    expect(m.subject).toBe(subject);
    expect(m.to && !Array.isArray(m.to) && m.to.value[0]).toEqual({
      address: 'jürgen@bücher.de', // mailparser shows IDNs in Unicode
      name: 'Jürgen Bücher',
    });
    expect(s).toContain('<jürgen@xn--bcher-kva.de>');
    expect(m.text).toBe('Grüße,\nJürgen');
    expect(m.html).toBe(html);
  });

  it('builds a text-only message', async () => {
    const raw = buildMessage({ ...base, html: undefined });
    const s = lines(raw);
    expect(s).not.toContain('multipart');
    expect(s).toContain(
      'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nHi Jane,',
    );
    const m = await simpleParser(raw);
    expect(m.text).toBe('Hi Jane,\nthis is the text.\n');
    expect(m.html).toBe(false);
  });

  it('attaches files after the body in multipart/mixed, with and without HTML', async () => {
    const csv = Buffer.from('Recipient,Status\r\n"\'=1+1",sent\r\n');
    const files = [
      { filename: 'report.csv', contentType: 'text/csv; charset=utf-8', content: csv },
      { filename: 'Été "x".bin', contentType: 'not a type', content: Buffer.from([0, 1, 2, 255]) },
    ];
    for (const html of [base.html, undefined]) {
      const raw = buildMessage({ ...base, html, attachments: files });
      expect(lines(raw)).toContain('Content-Type: multipart/mixed; boundary=');
      const m = await simpleParser(raw);
      expect(m.text).toBe('Hi Jane,\nthis is the text.\n');
      if (html) expect(m.html).toContain('Hi <b>Jane</b>');
      else expect(m.html).toBe(false);
      expect(m.attachments.map((a) => [a.filename, a.contentType, a.content.toString('hex')])).toEqual([
        ['report.csv', 'text/csv', csv.toString('hex')],
        ['Été "x".bin', 'application/octet-stream', '000102ff'],
      ]);
    }
    expect(() =>
      buildMessage({ ...base, attachments: [{ ...files[0], filename: 'a\r\nBcc: x@y.z' }] }),
    ).toThrow(/attachment filename/);
  });

  it('keeps long ASCII lines intact through quoted-printable', async () => {
    const long = `${'word '.repeat(300)}end`;
    const m = await simpleParser(buildMessage({ ...base, text: long }));
    expect(m.text).toBe(long);
  });

  it('sends ASCII text as 7bit up to 998-octet lines, quoted-printable beyond', () => {
    const at = (n: number) => buildMessage({ ...base, text: `${'a'.repeat(n)}\nshort` }).toString();
    expect(at(998)).toContain('Content-Transfer-Encoding: 7bit');
    expect(at(999)).toContain('Content-Transfer-Encoding: quoted-printable');
  });

  it('adds threading headers', async () => {
    const m = await simpleParser(
      buildMessage({ ...base, inReplyTo: '<a@x.example>', references: ['<a@x.example>', '<b@x.example>'] }),
    );
    expect(m.inReplyTo).toBe('<a@x.example>');
    expect(m.references).toEqual(['<a@x.example>', '<b@x.example>']);
  });

  it.each([
    ['subject', { subject: 'Hi\r\nBcc: victim@example.net' }, /subject contains a line break/],
    ['to name', { to: { address: 'a@example.org', name: 'A\nB' } }, /to name contains/],
    ['to address', { to: { address: 'a@example.org>\r\nX: y' } }, /to contains/],
    ['message id', { messageIdHeader: 'no-brackets@x' }, /message id/],
    ['unsubscribe url', { listUnsubscribe: { url: 'javascript:alert(1)', post: true } }, /http/],
    ['extra header name', { extraHeaders: { Bcc: 'x@example.net' } }, /not allowed/],
    ['extra header value', { extraHeaders: { 'X-A': 'a\r\nBcc: x@example.net' } }, /line break/],
  ])('refuses header injection through %s', (_, patch, why) => {
    expect(() => buildMessage({ ...base, ...(patch as Partial<MessageInput>) })).toThrow(why);
  });

  it('reuses the prepared skeleton across recipients', async () => {
    const s = prepareMessage({ from: base.from, html: true });
    const a = renderMessage(s, { ...base, to: { address: 'a@example.org' }, html: '<p>A</p>' });
    const b = renderMessage(s, { ...base, to: { address: 'b@example.org' }, html: '<p>B</p>' });
    expect((await simpleParser(a)).html).toBe('<p>A</p>');
    expect((await simpleParser(b)).html).toBe('<p>B</p>');
    expect(a.toString()).toContain(s.boundary);
    expect(b.toString()).toContain(s.boundary);
  });

  it('formats dates in +0000', () => {
    expect(formatDate(new Date('2025-12-31T23:59:59Z'))).toBe('Wed, 31 Dec 2025 23:59:59 +0000');
  });
});

describe('through a real SMTP server', () => {
  let server: SMTPServer;
  let port: number;
  const received: Buffer[] = [];
  beforeAll(async () => {
    server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData(stream, _session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          received.push(Buffer.concat(chunks));
          cb();
        });
      },
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('arrives byte for byte, with lines that start with "." (dot-stuffing) and long lines', async () => {
    const text = '.\n..two dots\n. a line that is a dot and space\nnormal\n.\n';
    const raw = buildMessage({ ...base, text, html: `<p>\n.${'x'.repeat(2000)}\n.</p>` });
    const t = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
    await t.sendMail({ envelope: { from: 'b@example.com', to: ['jane@example.org'] }, raw });
    t.close();
    const got = received.at(-1)!;
    expect(got.equals(raw)).toBe(true);
    const m = await simpleParser(got);
    expect(m.text).toBe(text);
    expect(m.html).toBe(`<p>\n.${'x'.repeat(2000)}\n.</p>`);
  });
});
