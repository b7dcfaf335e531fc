// The shapes every way mail comes in (IMAP and POP3 sync, the BCC dropbox) hands to ingestMail
// (ingest.ts), which stores each email once per org, threads it, links it to Leads and Contacts,
// and marks Parley's sent messages replied.
import type { MailAddress } from '../db/schema.ts';

export type { MailAddress };

export interface MailAttachmentInput {
  filename: string | null;
  contentType: string;
  size: number | null;
  contentId: string | null;
  /** IMAP body part to fetch it on demand. */
  part: string | null;
  /** Kept only when no mailbox can serve it later (BCC dropbox), and only when small. */
  content: Buffer | null;
}

/** One email, parsed. Message-ID values keep their angle brackets, as in the header. */
export interface MailInput {
  messageId: string | null;
  inReplyTo: string | null;
  references: string[];
  subject: string;
  from: MailAddress | null;
  to: MailAddress[];
  cc: MailAddress[];
  /** The Date header, else when it arrived. */
  date: Date;
  text: string | null;
  html: string | null;
  attachments: MailAttachmentInput[];
  size: number | null;
  /** sha256 hex of the raw message (or of its headers and text): the key when Message-ID is missing. */
  contentHash: string;
  /** Written by no person: an auto-reply or a delivery report (auto-reply.ts). */
  autoReply?: boolean;
}

/** Where a synced copy lives, in one of a user's mailboxes. */
export interface MailLocationInput {
  accountId: string;
  userId: string;
  folder: string;
  /** IMAP UID, or null for POP3. */
  uid: number | null;
  /** POP3 UIDL, or null for IMAP. */
  uidl: string | null;
  direction: 'in' | 'out';
  seen: boolean;
}

export interface IngestItem {
  mail: MailInput;
  source: 'imap' | 'pop3' | 'dropbox';
  location: MailLocationInput | null;
  /** false: store only, link to no record (BCC dropbox mail from an unverified sender). Default true. */
  link?: boolean;
}

/** ingestMail(deps, orgId, items) answers, in the order of items, the stored email's id and
 * whether this call created it (false: an earlier copy, from any mailbox, already had it). */
export interface IngestResult {
  mails: { id: string; created: boolean }[];
}
