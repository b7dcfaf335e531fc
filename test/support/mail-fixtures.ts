// Raw emails for the ingest and conversations tests, composed by nodemailer as a real client would.
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { mailInputFromRaw } from '../../src/mailbox/parse.ts';
import type { IngestItem, MailInput, MailLocationInput } from '../../src/mailbox/types.ts';

export interface RawSpec {
  from: string;
  to: string | string[];
  cc?: string | string[];
  subject: string;
  /** With angle brackets; null: no Message-ID header at all. */
  messageId?: string | null;
  inReplyTo?: string;
  references?: string[];
  date?: Date;
  text?: string;
  html?: string;
  attachments?: { filename: string; content: string | Buffer; contentType?: string; cid?: string }[];
  headers?: Record<string, string>;
}

export async function rawMail(s: RawSpec): Promise<Buffer> {
  const mc = new MailComposer({
    from: s.from,
    to: s.to,
    cc: s.cc,
    subject: s.subject,
    messageId: s.messageId ?? undefined,
    inReplyTo: s.inReplyTo,
    references: s.references,
    date: s.date ?? new Date(),
    text: s.text,
    html: s.html,
    attachments: s.attachments,
    headers: s.headers,
  });
  const raw = await mc.compile().build();
  // nodemailer always adds a Message-ID; a mail without one is made by removing it.
  if (s.messageId === null)
    return Buffer.from(raw.toString('utf8').replace(/^Message-ID:.*\r\n/im, ''), 'utf8');
  return raw;
}

export async function mailOf(s: RawSpec, opts?: { keepAttachmentsUpTo?: number }): Promise<MailInput> {
  return mailInputFromRaw(await rawMail(s), opts);
}

export function itemOf(
  mail: MailInput,
  location: MailLocationInput | null,
  extra: Partial<Pick<IngestItem, 'source' | 'link'>> = {},
): IngestItem {
  return { mail, source: extra.source ?? (location ? 'imap' : 'dropbox'), location, link: extra.link };
}
