import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classifyBounce } from './classify.ts';
import { kindOf } from './kinds.ts';

const crlf = (s: string) => Buffer.from(s.replace(/\r?\n/g, '\r\n'));

const POSTFIX_DSN = crlf(`From: MAILER-DAEMON@mx.test.local (Mail Delivery System)
To: b-0a1b-xyz@bounce.example
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.test.local.
I'm sorry to have to inform you that your message could not be delivered.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.test.local

Final-Recipient: rfc822; nobody@remote.example
Original-Recipient: rfc822;nobody@remote.example
Action: failed
Status: 5.1.1
Remote-MTA: dns; remote.example
Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.example>: Recipient address
    rejected: User unknown in virtual mailbox table

--B1
Content-Type: text/rfc822-headers

From: news@ourco.example
To: nobody@remote.example
Message-ID: <abc123@ourco.example>
Subject: News

--B1--
`);

const EXIM_PROSE = crlf(`From: Mail Delivery System <Mailer-Daemon@mail.example.net>
To: b-77-zz@bounce.example
Subject: Mail delivery failed: returning message to sender

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  full@example.net
    host mx.example.net [192.0.2.1]
    SMTP error from remote mail server after RCPT TO:<full@example.net>:
    452 4.2.2 The email account that you tried to reach is over quota

------ This is a copy of the message, including all the headers. ------

To: full@example.net
Message-ID: <m2@ourco.example>
`);

const QMAIL = crlf(`From: MAILER-DAEMON@qmail.example.org
To: b-1-a@bounce.example
Subject: failure notice

Hi. This is the qmail-send program at qmail.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<spamtrap@example.org>:
192.0.2.9 failed after I sent the message.
Remote host said: 554 5.7.1 Message rejected as spam by Content Filtering

--- Below this line is a copy of the message.
`);

const EXCHANGE = crlf(`From: postmaster@contoso.example
To: b-2-b@bounce.example
Subject: Undeliverable: Hello

Delivery has failed to these recipients or groups:

gone@contoso.example
The email address you entered couldn't be found.

Diagnostic information for administrators:
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'
`);

const GERMAN = crlf(`From: MAILER-DAEMON@web.example.de
To: b-3-c@bounce.example
Subject: Unzustellbar: Angebot

Ihre Nachricht konnte nicht zugestellt werden an:
  weg@web.example.de
  Grund: Benutzer unbekannt
`);

const ARF = crlf(`From: feedback@isp.example
To: abuse@ourco.example
Subject: FW: Complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an email abuse report.

--F
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeISP/1.0
Version: 1
Original-Rcpt-To: <angry@isp.example>

--F
Content-Type: message/rfc822

From: news@ourco.example
To: angry@isp.example
Message-ID: <n9@ourco.example>
Subject: News

Hi
--F--
`);

const DELIVERED = crlf(`From: MAILER-DAEMON@mx.example
To: b-4@bounce.example
Subject: Successful Mail Delivery Report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="D"

--D
Content-Type: text/plain

Your message was delivered.

--D
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example

Final-Recipient: rfc822; happy@example.com
Action: delivered
Status: 2.0.0

--D--
`);

const VACATION = crlf(`From: person@example.com
To: news@ourco.example
Subject: Out of Office: News
Auto-Submitted: auto-replied

I am away until Monday.
`);

describe('bounce classification', () => {
  it('reads a standard DSN field by field', async () => {
    expect(await classifyBounce(POSTFIX_DSN)).toEqual({
      bounce: true,
      originalMessageId: '<abc123@ourco.example>',
      recipients: [
        {
          recipient: 'nobody@remote.example',
          kind: 'hard',
          status: '5.1.1',
          reason:
            '550 5.1.1 <nobody@remote.example>: Recipient address rejected: User unknown in virtual mailbox table',
          hasDsn: true,
        },
      ],
    });
  });

  it('reads prose bounces of Exim, qmail, Exchange and in German', async () => {
    const exim = await classifyBounce(EXIM_PROSE);
    expect(exim).toMatchObject({
      bounce: true,
      recipients: [{ recipient: 'full@example.net', kind: 'soft', status: '4.2.2', hasDsn: false }],
    });
    const qmail = await classifyBounce(QMAIL);
    expect(qmail).toMatchObject({
      bounce: true,
      recipients: [{ recipient: 'spamtrap@example.org', kind: 'policy', status: '5.7.1' }],
    });
    const ex = await classifyBounce(EXCHANGE);
    expect(ex).toMatchObject({
      bounce: true,
      recipients: [{ recipient: 'gone@contoso.example', kind: 'hard' }],
    });
    const de = await classifyBounce(GERMAN);
    expect(de).toMatchObject({
      bounce: true,
      recipients: [{ recipient: 'weg@web.example.de', kind: 'hard' }],
    });
  });

  it('reads ARF complaints, and knows success reports and auto-replies are not bounces', async () => {
    expect(await classifyBounce(ARF)).toMatchObject({
      bounce: true,
      recipients: [{ recipient: 'angry@isp.example', kind: 'complaint' }],
    });
    expect(await classifyBounce(DELIVERED)).toMatchObject({ bounce: false });
    expect(await classifyBounce(VACATION)).toMatchObject({ bounce: false });
  });

  it('classifies by RFC 3463 code', () => {
    expect(kindOf('5.1.1', '')).toBe('hard');
    expect(kindOf('5.2.2', 'mailbox full')).toBe('soft');
    expect(kindOf('4.4.1', 'no answer')).toBe('soft');
    expect(kindOf('5.7.1', 'blocked')).toBe('policy');
    expect(kindOf('5.0.0', 'Your message was rejected as spam')).toBe('policy');
  });

  it('never throws, whatever the bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), async (bytes) => {
        const r = await classifyBounce(Buffer.from(bytes));
        expect(typeof r.bounce).toBe('boolean');
      }),
      { numRuns: 100 },
    );
    expect(await classifyBounce(Buffer.alloc(0))).toEqual({ bounce: false, why: 'empty message' });
  });
});

describe('parley bounces classify', () => {
  it('prints one line per failed recipient, and one for a file that is not a bounce or cannot be read', async () => {
    const { execFileSync } = await import('node:child_process');
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'bounces-'));
    writeFileSync(join(dir, 'a.eml'), POSTFIX_DSN);
    writeFileSync(join(dir, 'b.eml'), VACATION);
    const out = execFileSync(
      process.execPath,
      [
        'bin/parley.mjs',
        'bounces',
        'classify',
        join(dir, 'a.eml'),
        join(dir, 'b.eml'),
        join(dir, 'missing.eml'),
      ],
      { encoding: 'utf8' },
    )
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(out).toMatchObject([
      {
        file: join(dir, 'a.eml'),
        recipient: 'nobody@remote.example',
        bounce: true,
        kind: 'hard',
        status: '5.1.1',
      },
      { file: join(dir, 'b.eml'), bounce: false },
      { file: join(dir, 'missing.eml'), bounce: false },
    ]);
  }, 30_000);
});
