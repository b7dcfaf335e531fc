// Bounce mail for tests: a tiny SMTP client that reports every reply code (so a refused RCPT can be
// asserted), and builders of DSN, prose and ARF messages in the shapes real MTAs send.
import net from 'node:net';

export interface SmtpExchange {
  rcpt: number[];
  data?: number;
  dataText?: string;
}

/** One SMTP session: MAIL FROM:<from>, RCPT TO each address, DATA raw (when any RCPT passed). */
export async function smtpSend(
  port: number,
  from: string,
  to: string[],
  raw: string | Buffer,
): Promise<SmtpExchange> {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  const waiters: ((line: string) => void)[] = [];
  sock.on('data', (d) => {
    buf += d.toString('latin1');
    for (;;) {
      // A complete reply ends with a line "NNN text" (no dash after the code).
      const m = /^(?:\d{3}-.*\r\n)*\d{3}(?: .*)?\r\n/.exec(buf);
      if (!m) break;
      buf = buf.slice(m[0].length);
      waiters.shift()?.(m[0]);
    }
  });
  const reply = () =>
    new Promise<string>((resolve, reject) => {
      waiters.push(resolve);
      sock.once('error', reject);
    });
  const cmd = async (line: string) => {
    const p = reply();
    sock.write(`${line}\r\n`);
    return p;
  };
  const code = (r: string) => Number(r.slice(0, 3));
  await reply(); // greeting
  await cmd('EHLO mta.remote.test');
  await cmd(`MAIL FROM:<${from}>`);
  const out: SmtpExchange = { rcpt: [] };
  for (const t of to) out.rcpt.push(code(await cmd(`RCPT TO:<${t}>`)));
  if (out.rcpt.some((c) => c === 250)) {
    const go = await cmd('DATA');
    if (code(go) === 354) {
      const body = Buffer.isBuffer(raw) ? raw.toString('latin1') : raw;
      const stuffed = body.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
      const p = reply();
      sock.write(`${stuffed}${stuffed.endsWith('\r\n') ? '' : '\r\n'}.\r\n`);
      const r = await p;
      out.data = code(r);
      out.dataText = r.trim();
    } else out.data = code(go);
  }
  await cmd('QUIT').catch(() => '');
  sock.destroy();
  return out;
}

/** A Postfix-style RFC 3464 DSN for one failed recipient. */
export function dsn(o: {
  to: string;
  recipient: string;
  status: string;
  diagnostic: string;
  messageId: string;
  action?: string;
}): string {
  return [
    'From: MAILER-DAEMON@mx.remote.test (Mail Delivery System)',
    `To: ${o.to}`,
    'Subject: Undelivered Mail Returned to Sender',
    'Date: Mon, 30 Nov 2026 01:00:00 +0000',
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"',
    '',
    '--BOUND',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'This is the mail system at host mx.remote.test.',
    "I'm sorry to have to inform you that your message could not be delivered.",
    '',
    '--BOUND',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.remote.test',
    '',
    `Final-Recipient: rfc822; ${o.recipient}`,
    `Original-Recipient: rfc822;${o.recipient}`,
    `Action: ${o.action ?? 'failed'}`,
    `Status: ${o.status}`,
    `Diagnostic-Code: smtp; ${o.diagnostic}`,
    '',
    '--BOUND',
    'Content-Type: text/rfc822-headers',
    '',
    'From: Ada <ada@parley.test>',
    `To: ${o.recipient}`,
    'Subject: Hello',
    `Message-ID: ${o.messageId}`,
    '',
    '--BOUND--',
    '',
  ].join('\r\n');
}

/** A bounce without a DSN part (qmail-style prose), with the original message quoted below. */
export function proseBounce(o: { to: string; recipient: string; messageId: string }): string {
  return [
    'From: MAILER-DAEMON@old.remote.test',
    `To: ${o.to}`,
    'Subject: failure notice',
    '',
    'Hi. This is the qmail-send program at old.remote.test.',
    "I'm afraid I wasn't able to deliver your message to the following addresses.",
    "This is a permanent error; I've given up. Sorry it didn't work out.",
    '',
    `<${o.recipient}>:`,
    'Sorry, no mailbox here by that name. (#5.1.1)',
    '',
    '--- Below this line is a copy of the message.',
    '',
    `Message-ID: ${o.messageId}`,
    `To: ${o.recipient}`,
    'Subject: Hello',
    '',
  ].join('\r\n');
}

/** An RFC 5965 ARF complaint about one message. */
export function arf(o: { to: string; recipient: string; messageId: string; returnPath?: string }): string {
  return [
    'From: feedback@fbl.remote.test',
    `To: ${o.to}`,
    'Subject: Abuse report',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"',
    '',
    '--ARF',
    'Content-Type: text/plain',
    '',
    'This is an email abuse report for an email message received from IP 192.0.2.1.',
    '',
    '--ARF',
    'Content-Type: message/feedback-report',
    '',
    'Feedback-Type: abuse',
    'User-Agent: ExampleFBL/1.0',
    'Version: 1',
    `Original-Rcpt-To: ${o.recipient}`,
    '',
    '--ARF',
    'Content-Type: message/rfc822',
    '',
    ...(o.returnPath ? [`Return-Path: <${o.returnPath}>`] : []),
    'From: Ada <ada@parley.test>',
    `To: ${o.recipient}`,
    'Subject: Hello',
    `Message-ID: ${o.messageId}`,
    '',
    'Buy now.',
    '',
    '--ARF--',
    '',
  ].join('\r\n');
}
