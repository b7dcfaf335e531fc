// Shared set-up of the SalesInbox and ResponseWatch tests: connected mailboxes and mail ingested the
// way sync hands it over (ingestMail), straight into the test database.
import { createHash, randomBytes } from 'node:crypto';
import type { Deps } from '../src/deps.ts';
import { ingestMail } from '../src/mailbox/ingest.ts';
import type { MailInput } from '../src/mailbox/types.ts';

export async function mailbox(deps: Deps, orgId: string, userId: string, address: string) {
  const a = await deps.db
    .insertInto('mailbox_accounts')
    .values({
      org_id: orgId,
      user_id: userId,
      protocol: 'imap',
      host: '127.0.0.1',
      port: 993,
      security: 'tls',
      username: address,
      secret_enc: 'not-used-by-these-tests',
      email_address: address,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { accountId: a.id, userId, address };
}

export type Box = Awaited<ReturnType<typeof mailbox>>;

let uid = 1;

export interface MailSpec {
  from: string;
  fromName?: string;
  to: string[];
  subject: string;
  date: Date;
  messageId?: string;
  inReplyTo?: string;
  references?: string[];
  attachment?: boolean;
  text?: string;
}

export function mailInput(s: MailSpec): MailInput {
  const messageId = s.messageId ?? `<${randomBytes(8).toString('hex')}@test.example>`;
  const text = s.text ?? `Body of ${s.subject}`;
  return {
    messageId,
    inReplyTo: s.inReplyTo ?? null,
    references: s.references ?? (s.inReplyTo ? [s.inReplyTo] : []),
    subject: s.subject,
    from: { address: s.from, name: s.fromName ?? null },
    to: s.to.map((address) => ({ address, name: null })),
    cc: [],
    date: s.date,
    text,
    html: null,
    attachments: s.attachment
      ? [
          {
            filename: 'offer.pdf',
            contentType: 'application/pdf',
            size: 10,
            contentId: null,
            part: '2',
            content: null,
          },
        ]
      : [],
    size: 100,
    contentHash: createHash('sha256')
      .update(messageId + text)
      .digest('hex'),
  };
}

/** Ingests one email into a mailbox folder; returns the stored email's id. */
export async function deliver(
  deps: Deps,
  orgId: string,
  box: Box,
  s: MailSpec,
  opts: { folder?: string; direction?: 'in' | 'out'; seen?: boolean } = {},
): Promise<string> {
  const direction = opts.direction ?? (s.from === box.address ? 'out' : 'in');
  const r = await ingestMail(deps, orgId, [
    {
      mail: mailInput(s),
      source: 'imap',
      location: {
        accountId: box.accountId,
        userId: box.userId,
        folder: opts.folder ?? (direction === 'out' ? 'Sent' : 'INBOX'),
        uid: uid++,
        uidl: null,
        direction,
        seen: opts.seen ?? direction === 'out',
      },
    },
  ]);
  return r.mails[0].id;
}
