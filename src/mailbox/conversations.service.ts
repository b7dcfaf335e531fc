// A record's conversations (F6.3): the mail linked to it and the email Parley sent it, grouped by
// thread, both directions; one email with its sanitised body; an attachment. What a user sees of
// synced mail: mail that came by the BCC dropbox, mail in their own mailbox, and mail in mailboxes
// their owners share, always only through records the user can read (or their own mailbox).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { type Expression, type SqlBool, sql } from 'kysely';
import type { Config } from '../config.ts';
import { type Actor, can, loadModule, requireModule } from '../crm/index.ts';
import type { MailAddress } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { notFound } from '../errors.ts';
import { RECORD_MESSAGE_KINDS } from '../tracking/record-status.ts';
import { type EmailStatus, emailStatus, type MessageSummary, SUMMARY_COLUMNS } from '../tracking/status.ts';
import { ownAddresses } from './replies.ts';
import { mailDocument, sanitizeMailHtml } from './sanitize.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Conversations list the newest this many emails of a record. */
export const CONVERSATION_LIMIT = 500;

export interface ConversationEmail {
  /** A stored email ('mail', open with GET /api/mail/:id) or one Parley sent ('message'). */
  kind: 'mail' | 'message';
  id: string;
  direction: 'in' | 'out';
  from: MailAddress | null;
  to: MailAddress[];
  cc: MailAddress[];
  subject: string;
  date: string;
  snippet: string;
  hasAttachments: boolean;
  /** Parley's sent messages (and the stored copy of one): delivery and insight status. */
  messageId: string | null;
  status: EmailStatus | null;
}

export interface Conversation {
  id: string;
  subject: string;
  lastAt: string;
  emails: ConversationEmail[];
}

/**
 * Whether the actor sees a stored email (alias mm): a copy in their own mailbox; or it came by the
 * dropbox or sits in a shared mailbox, and (checked by the callers) concerns a record they can read.
 */
function visibleSql(actor: Actor): Expression<SqlBool> {
  return sql<SqlBool>`(mm.source = 'dropbox' OR EXISTS (
    SELECT 1 FROM mail_locations ml JOIN mailbox_accounts ma ON ma.id = ml.account_id
    WHERE ml.mail_id = mm.id AND ml.org_id = ${actor.orgId} AND (ml.user_id = ${actor.userId} OR ma.shared)))`;
}

function ownCopySql(actor: Actor): Expression<SqlBool> {
  return sql<SqlBool>`EXISTS (SELECT 1 FROM mail_locations ml
    WHERE ml.mail_id = mm.id AND ml.org_id = ${actor.orgId} AND ml.user_id = ${actor.userId})`;
}

const snippetOfText = (s: string | null) => (s ?? '').replace(/\s+/g, ' ').trim().slice(0, 200);

export async function listConversations(
  deps: Deps,
  actor: Actor,
  module: string,
  recordId: string,
): Promise<{ conversations: Conversation[] }> {
  requireModule(actor, module, 'read');
  const mod = await loadModule(deps, actor.orgId, module);
  if (!UUID.test(recordId)) throw notFound(mod.singularLabel);
  const record = await deps.db
    .selectFrom('records')
    .select('id')
    .where('org_id', '=', actor.orgId)
    .where('module_id', '=', mod.id)
    .where('id', '=', recordId)
    .executeTakeFirst();
  if (!record) throw notFound(mod.singularLabel);

  const [mails, messages, own] = await Promise.all([
    sql<{
      id: string;
      thread_id: string;
      message_id_header: string | null;
      subject: string;
      from_address: string | null;
      from_name: string | null;
      to_addresses: MailAddress[];
      cc_addresses: MailAddress[];
      date: Date;
      snippet: string;
      has_attachments: boolean;
    }>`
      SELECT mm.id, mm.thread_id, mm.message_id_header, mm.subject, mm.from_address, mm.from_name,
        mm.to_addresses, mm.cc_addresses, mm.date, mm.snippet, mm.has_attachments
      FROM mail_record_links l JOIN mail_messages mm ON mm.id = l.mail_id AND mm.org_id = l.org_id
      WHERE l.org_id = ${actor.orgId} AND l.record_id = ${recordId} AND ${visibleSql(actor)}
      ORDER BY mm.date DESC LIMIT ${CONVERSATION_LIMIT}`.execute(deps.db),
    deps.db
      .selectFrom('messages')
      .select([
        'id',
        'message_id_header',
        'from_address',
        'from_name',
        'to_address',
        'to_name',
        'subject',
        'text',
        'created_at',
        ...SUMMARY_COLUMNS,
      ])
      .where('org_id', '=', actor.orgId)
      .where('record_id', '=', recordId)
      .where('module_id', '=', mod.id)
      .where('kind', 'in', [...RECORD_MESSAGE_KINDS])
      .orderBy('created_at', 'desc')
      .limit(CONVERSATION_LIMIT)
      .execute(),
    ownAddresses(deps, actor.orgId),
  ]);

  const threads = new Map<string, ConversationEmail[]>();
  const add = (thread: string, e: ConversationEmail) => {
    const list = threads.get(thread) ?? [];
    list.push(e);
    threads.set(thread, list);
  };
  // Parley's sent message and its synced copy (Sent folder) are one email: shown once, with status.
  const sent = new Map(messages.map((m) => [m.message_id_header, m]));
  for (const m of mails.rows) {
    const p = m.message_id_header ? sent.get(m.message_id_header) : undefined;
    if (p) sent.delete(p.message_id_header);
    add(m.thread_id, {
      kind: 'mail',
      id: m.id,
      direction: m.from_address && own.has(m.from_address.toLowerCase()) ? 'out' : 'in',
      from: m.from_address ? { address: m.from_address, name: m.from_name } : null,
      to: m.to_addresses,
      cc: m.cc_addresses,
      subject: m.subject,
      date: new Date(m.date).toISOString(),
      snippet: m.snippet,
      hasAttachments: m.has_attachments,
      messageId: p?.id ?? null,
      status: p ? emailStatus(p as MessageSummary) : null,
    });
  }
  for (const p of sent.values())
    add(p.id, {
      kind: 'message',
      id: p.id,
      direction: 'out',
      from: { address: p.from_address, name: p.from_name },
      to: [{ address: p.to_address, name: p.to_name }],
      cc: [],
      subject: p.subject,
      date: new Date(p.sent_at ?? p.created_at).toISOString(),
      snippet: snippetOfText(p.text),
      hasAttachments: false,
      messageId: p.id,
      status: emailStatus(p as MessageSummary),
    });

  const conversations = [...threads.entries()].map(([id, emails]) => {
    emails.sort((a, b) => a.date.localeCompare(b.date));
    return { id, subject: emails[0].subject, lastAt: emails[emails.length - 1].date, emails };
  });
  conversations.sort((a, b) => b.lastAt.localeCompare(a.lastAt));
  return { conversations };
}

// ---------------------------------------------------------------------------------------------
// One email

export interface MailAttachmentView {
  id: string;
  filename: string;
  contentType: string;
  size: number | null;
  inline: boolean;
  url: string;
}

export interface MailView {
  id: string;
  subject: string;
  from: MailAddress | null;
  to: MailAddress[];
  cc: MailAddress[];
  date: string;
  text: string | null;
  /** A whole document for a sandboxed iframe's srcdoc (with its own CSP), or null. */
  html: string | null;
  /** Remote images left out (offer "Show remote images" when > 0 and images were not asked). */
  blockedImages: number;
  images: boolean;
  attachments: MailAttachmentView[];
  records: { id: string; module: string }[];
}

/**
 * The stored email if the actor may see it: a copy in their own mailbox, or (dropbox mail or a
 * shared mailbox's) linked to a record of a module they can read. Unlinked dropbox mail is for
 * admins (the dropbox's unmatched list). Anything else is "not found", not "forbidden".
 */
async function visibleMail(deps: Deps, actor: Actor, id: string) {
  if (!UUID.test(id)) throw notFound('Email');
  const row = await sql<{
    id: string;
    subject: string;
    from_address: string | null;
    from_name: string | null;
    to_addresses: MailAddress[];
    cc_addresses: MailAddress[];
    date: Date;
    text_body: string | null;
    html_body: string | null;
    source: string;
    own_copy: boolean;
    visible: boolean;
    records: { id: string; module: string }[];
  }>`
    SELECT mm.id, mm.subject, mm.from_address, mm.from_name, mm.to_addresses, mm.cc_addresses, mm.date,
      mm.text_body, mm.html_body, mm.source, ${ownCopySql(actor)} AS own_copy, ${visibleSql(actor)} AS visible,
      coalesce((SELECT jsonb_agg(jsonb_build_object('id', l.record_id, 'module', mo.api_name))
        FROM mail_record_links l JOIN modules mo ON mo.id = l.module_id
        WHERE l.mail_id = mm.id AND l.org_id = ${actor.orgId}), '[]') AS records
    FROM mail_messages mm WHERE mm.org_id = ${actor.orgId} AND mm.id = ${id}`.execute(deps.db);
  const m = row.rows[0];
  if (!m) throw notFound('Email');
  const readable = m.records.filter((r) => can(actor, r.module, 'read'));
  const allowed =
    m.own_copy ||
    (m.visible && readable.length > 0) ||
    (m.source === 'dropbox' && m.records.length === 0 && actor.isAdmin);
  if (!allowed) throw notFound('Email');
  return { ...m, records: readable };
}

// Inline images are loaded by the sandboxed frame, which has no origin and so sends no session
// cookie: their URLs carry a short-lived signature instead, served outside /api.
const INLINE_TTL_S = 3600;
function inlineKey(config: Pick<Config, 'secret'>): Buffer {
  return createHmac('sha256', config.secret ?? '')
    .update('parley/mail-inline/v1')
    .digest();
}
function inlineSig(config: Pick<Config, 'secret'>, id: string, exp: number): string {
  return createHmac('sha256', inlineKey(config))
    .update(`${id}.${exp}`)
    .digest()
    .subarray(0, 18)
    .toString('base64url');
}
export function inlineUrl(config: Pick<Config, 'secret'>, id: string, now: Date): string {
  const exp = Math.floor(now.getTime() / 1000) + INLINE_TTL_S;
  return `/mail/inline/${id}?exp=${exp}&sig=${inlineSig(config, id, exp)}`;
}
export function inlineUrlValid(
  config: Pick<Config, 'secret'>,
  id: string,
  exp: number,
  sig: string,
  now: Date,
): boolean {
  if (!config.secret || !UUID.test(id) || !Number.isSafeInteger(exp) || exp * 1000 < now.getTime())
    return false;
  const want = Buffer.from(inlineSig(config, id, exp));
  const got = Buffer.from(sig);
  return want.length === got.length && timingSafeEqual(want, got);
}

export async function getMail(
  deps: Deps,
  actor: Actor,
  id: string,
  opts: { images: boolean; origin: string },
): Promise<MailView> {
  const m = await visibleMail(deps, actor, id);
  const atts = await deps.db
    .selectFrom('mail_attachments')
    .select(['id', 'idx', 'filename', 'content_type', 'size', 'content_id'])
    .where('org_id', '=', actor.orgId)
    .where('mail_id', '=', m.id)
    .orderBy('idx')
    .execute();
  const byCid = new Map(atts.filter((a) => a.content_id).map((a) => [a.content_id as string, a]));
  const used = new Set<string>();
  const now = deps.clock.now();
  let html: string | null = null;
  let blocked = 0;
  if (m.html_body) {
    const s = sanitizeMailHtml(m.html_body, {
      images: opts.images,
      cidUrl: (cid) => {
        const a = byCid.get(cid);
        if (!a || !/^image\//i.test(a.content_type) || !deps.config.secret) return null;
        used.add(a.id);
        return `${opts.origin}${inlineUrl(deps.config, a.id, now)}`;
      },
    });
    html = mailDocument(s.html, opts.images, opts.origin);
    blocked = s.blocked;
  }
  return {
    id: m.id,
    subject: m.subject,
    from: m.from_address ? { address: m.from_address, name: m.from_name } : null,
    to: m.to_addresses,
    cc: m.cc_addresses,
    date: new Date(m.date).toISOString(),
    text: m.text_body,
    html,
    blockedImages: blocked,
    images: opts.images,
    attachments: atts.map((a) => ({
      id: a.id,
      filename: a.filename ?? `attachment-${a.idx + 1}`,
      contentType: a.content_type,
      size: a.size,
      inline: used.has(a.id),
      url: `/api/mail/attachments/${a.id}`,
    })),
    records: m.records.map((r) => ({ id: r.id, module: r.module })),
  };
}

export interface AttachmentRow {
  id: string;
  org_id: string;
  mail_id: string;
  idx: number;
  filename: string | null;
  content_type: string;
  size: number | null;
  content_id: string | null;
  part: string | null;
  content: Buffer | null;
}

/** An attachment of an email the actor may see (downloads). */
export async function attachmentForActor(deps: Deps, actor: Actor, id: string): Promise<AttachmentRow> {
  if (!UUID.test(id)) throw notFound('Attachment');
  const a = await deps.db
    .selectFrom('mail_attachments')
    .selectAll()
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!a) throw notFound('Attachment');
  await visibleMail(deps, actor, a.mail_id);
  return a;
}

/** An inline image by its signed URL (the signature was made for someone who could see it). */
export async function inlineAttachment(deps: Deps, id: string): Promise<AttachmentRow> {
  const a = await deps.db.selectFrom('mail_attachments').selectAll().where('id', '=', id).executeTakeFirst();
  if (!a || !/^image\/(png|gif|jpe?g|webp|bmp|avif)$/i.test(a.content_type)) throw notFound('Attachment');
  return a;
}
