// The local outbox: with no relay set up, delivery keeps the exact bytes that would have gone out
// (signed, as a relay would have received them) and marks the message sent. Users list and open
// them: rendered (sanitised), raw source, headers. Admins see the org's; users their own.
import { type ParsedMail, simpleParser } from 'mailparser';
import sanitizeHtml from 'sanitize-html';
import type { Actor } from '../crm/index.ts';
import type { Db } from '../db/pool.ts';
import type { Deps } from '../deps.ts';
import { invalid, notFound } from '../errors.ts';

export interface OutboxItem {
  messageId: string;
  orgId: string;
  raw: Buffer;
}

/** Stores raw messages (one statement); a message already stored keeps its first bytes. */
export async function storeInOutbox(db: Db, items: readonly OutboxItem[], at: Date): Promise<void> {
  if (!items.length) return;
  await db
    .insertInto('outbox')
    .values(items.map((i) => ({ message_id: i.messageId, org_id: i.orgId, raw: i.raw, created_at: at })))
    .onConflict((oc) => oc.column('message_id').doNothing())
    .execute();
}

export interface OutboxSummary {
  messageId: string;
  kind: string;
  subject: string;
  from: { address: string; name: string | null };
  to: { address: string; name: string | null };
  recordId: string | null;
  senderId: string | null;
  size: number;
  storedAt: string;
}

export interface OutboxPage {
  items: OutboxSummary[];
  /** Pass as `before` for the next (older) page; null at the end. */
  nextCursor: string | null;
}

function scoped(deps: Deps, actor: Actor) {
  let q = deps.db
    .selectFrom('outbox as o')
    .innerJoin('messages as m', (j) =>
      j.onRef('m.id', '=', 'o.message_id').onRef('m.org_id', '=', 'o.org_id'),
    )
    .where('o.org_id', '=', actor.orgId);
  if (!actor.isAdmin) q = q.where('m.sender_id', '=', actor.userId);
  return q;
}

function decodeCursor(cursor: string): { at: Date; id: string } {
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [string, string];
    const d = new Date(at);
    if (Number.isNaN(d.getTime()) || !/^[0-9a-f-]{36}$/.test(id)) throw new Error('bad');
    return { at: d, id };
  } catch {
    throw invalid('before is not a cursor from a previous page', [
      { path: 'before', message: 'invalid cursor' },
    ]);
  }
}

/** Newest first. */
export async function listOutbox(
  deps: Deps,
  actor: Actor,
  opts: { limit?: number; before?: string } = {},
): Promise<OutboxPage> {
  const limit = Math.min(Math.max(1, Math.floor(opts.limit ?? 50)), 200);
  let q = scoped(deps, actor).select([
    'o.message_id',
    'o.created_at',
    'm.kind',
    'm.subject',
    'm.from_address',
    'm.from_name',
    'm.to_address',
    'm.to_name',
    'm.record_id',
    'm.sender_id',
    (eb) => eb.fn<number>('octet_length', ['o.raw']).as('size'),
  ]);
  if (opts.before) {
    const c = decodeCursor(opts.before);
    q = q.where((eb) =>
      eb.or([
        eb('o.created_at', '<', c.at),
        eb.and([eb('o.created_at', '=', c.at), eb('o.message_id', '<', c.id)]),
      ]),
    );
  }
  const rows = await q
    .orderBy('o.created_at', 'desc')
    .orderBy('o.message_id', 'desc')
    .limit(limit + 1)
    .execute();
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    items: page.map((r) => ({
      messageId: r.message_id,
      kind: r.kind,
      subject: r.subject,
      from: { address: r.from_address, name: r.from_name },
      to: { address: r.to_address, name: r.to_name },
      recordId: r.record_id,
      senderId: r.sender_id,
      size: Number(r.size),
      storedAt: r.created_at.toISOString(),
    })),
    nextCursor:
      rows.length > limit && last
        ? Buffer.from(JSON.stringify([last.created_at.toISOString(), last.message_id])).toString('base64url')
        : null,
  };
}

/** The raw bytes of one outbox message the actor may see. */
export async function getOutboxRaw(deps: Deps, actor: Actor, messageId: string): Promise<Buffer> {
  const row = await scoped(deps, actor)
    .select('o.raw')
    .where('o.message_id', '=', messageId)
    .executeTakeFirst();
  if (!row) throw notFound('Outbox message');
  return row.raw;
}

// A Content-Security-Policy that the sandboxed frame showing the HTML applies: nothing is fetched
// from anywhere (no remote images, fonts, styles, frames or forms), only inline styles and data:
// images run. The sanitiser below removes scripts and remote image sources as well, so the HTML is
// safe even where the policy would be ignored.
export const OUTBOX_HTML_CSP =
  "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; form-action 'none'";

const SANITISE: sanitizeHtml.IOptions = {
  allowedTags: [
    ...sanitizeHtml.defaults.allowedTags,
    'img',
    'center',
    'font',
    'span',
    'div',
    'table',
    'thead',
    'tbody',
    'tfoot',
    'tr',
    'td',
    'th',
    'colgroup',
    'col',
    'caption',
    'hr',
    'br',
  ],
  allowedAttributes: {
    '*': ['style', 'align', 'valign', 'width', 'height', 'bgcolor', 'color', 'dir', 'lang', 'title', 'class'],
    a: ['href', 'name', 'target', 'rel'],
    img: ['src', 'alt', 'width', 'height', 'border'],
    table: ['border', 'cellpadding', 'cellspacing', 'role'],
    td: ['colspan', 'rowspan', 'nowrap'],
    th: ['colspan', 'rowspan', 'nowrap', 'scope'],
    font: ['face', 'size', 'color'],
  },
  allowedSchemes: ['http', 'https', 'mailto', 'tel'],
  // Remote images would tell the sender the message was opened (and leak the viewer's address):
  // only images carried inside the message (data: after mailparser inlines cid: parts) stay.
  allowedSchemesByTag: { img: ['data'] },
  allowProtocolRelative: false,
  transformTags: {
    a: sanitizeHtml.simpleTransform('a', { target: '_blank', rel: 'noopener noreferrer' }),
  },
};

/** The message's HTML, safe to show in a sandboxed iframe (srcdoc): no scripts, nothing remote. */
export function sanitiseEmailHtml(html: string): string {
  // url(...) in inline styles could still fetch: drop any that is not a data: URL.
  const clean = sanitizeHtml(html, SANITISE).replace(/url\(\s*(['"]?)(?!data:)[^)]*\1\s*\)/gi, 'none');
  return `<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${OUTBOX_HTML_CSP}"></head><body>${clean}</body></html>`;
}

export interface OutboxMessage extends OutboxSummary {
  /** The header lines as they are in the message (unfolded), in order. */
  headers: { name: string; value: string }[];
  date: string | null;
  /** Sanitised HTML for a sandboxed frame; null for a text-only message. */
  html: string | null;
  text: string | null;
  attachments: { filename: string | null; contentType: string; size: number }[];
}

function headerList(p: ParsedMail): { name: string; value: string }[] {
  return p.headerLines.map((h) => {
    const line = h.line.replace(/\r?\n[ \t]+/g, ' ');
    const i = line.indexOf(':');
    return { name: line.slice(0, i), value: line.slice(i + 1).trim() };
  });
}

export async function getOutboxMessage(deps: Deps, actor: Actor, messageId: string): Promise<OutboxMessage> {
  const row = await scoped(deps, actor)
    .select([
      'o.message_id',
      'o.raw',
      'o.created_at',
      'm.kind',
      'm.subject',
      'm.from_address',
      'm.from_name',
      'm.to_address',
      'm.to_name',
      'm.record_id',
      'm.sender_id',
    ])
    .where('o.message_id', '=', messageId)
    .executeTakeFirst();
  if (!row) throw notFound('Outbox message');
  const parsed = await simpleParser(row.raw, { skipTextToHtml: true, skipTextLinks: true });
  return {
    messageId: row.message_id,
    kind: row.kind,
    subject: parsed.subject ?? row.subject,
    from: { address: row.from_address, name: row.from_name },
    to: { address: row.to_address, name: row.to_name },
    recordId: row.record_id,
    senderId: row.sender_id,
    size: row.raw.length,
    storedAt: row.created_at.toISOString(),
    headers: headerList(parsed),
    date: parsed.date ? parsed.date.toISOString() : null,
    html: typeof parsed.html === 'string' ? sanitiseEmailHtml(parsed.html) : null,
    text: parsed.text ?? null,
    attachments: parsed.attachments.map((a) => ({
      filename: a.filename ?? null,
      contentType: a.contentType,
      size: a.size,
    })),
  };
}
