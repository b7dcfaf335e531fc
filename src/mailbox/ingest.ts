// The one door every incoming email goes through (IMAP and POP3 sync, the BCC dropbox): stored
// once per org, threaded, linked to Leads and Contacts, and turned into insights. Set-based: a
// batch costs a fixed handful of statements whatever its size (the sync's 300 msgs/s target).
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Deps } from '../deps.ts';
import { applyLeadRules } from './inbox/lead-rules.ts';
import { linkMails, type NewLink } from './links.ts';
import { noteIncoming, ownAddresses } from './replies.ts';
import {
  chooseThreads,
  normalizeSubject,
  SUBJECT_PREFIX,
  SUBJECT_WINDOW_MS,
  type ThreadItem,
  type ThreadKnowledge,
} from './threading.ts';
import type { IngestItem, IngestResult, MailAddress, MailInput } from './types.ts';

export const SNIPPET_LENGTH = 200;
/** Past this, an HTML body is cut before making its snippet (a snippet needs only the start). */
const SNIPPET_HTML_INPUT = 20_000;

/**
 * Rows in one order for every batch: two workers storing overlapping batches then take the unique
 * index's locks in the same order, and wait for each other instead of deadlocking.
 */
function byKey<T>(rows: T[], key: (r: T) => string): T[] {
  return [...rows].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

export function messageKey(mail: MailInput): string {
  return mail.messageId ?? `sha256:${mail.contentHash}`;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
/** PostgreSQL text takes neither NUL nor broken UTF-16 (mail from the wild has both). */
function clean(s: string): string;
function clean(s: string | null): string | null;
function clean(s: string | null): string | null {
  if (s === null) return null;
  return s.replace(/\0/g, '').replace(LONE_SURROGATE, '\uFFFD');
}

const ENTITIES: Record<string, string> = { nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/**
 * The visible text at the start of an HTML body, roughly: enough for a snippet, and cheap (a full
 * HTML-to-text conversion cost a millisecond per email, the sync's whole budget).
 */
function roughText(html: string): string {
  return html
    .slice(0, SNIPPET_HTML_INPUT)
    .replace(/<(head|style|script|title)\b[^>]*>[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(#x[0-9a-f]{1,6}|#[0-9]{1,7}|[a-z]{2,6});/gi, (all, e: string) => {
      if (e[0] !== '#') return ENTITIES[e.toLowerCase()] ?? all;
      const n = e[1] === 'x' || e[1] === 'X' ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1));
      return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : ' ';
    });
}

export function snippetOf(mail: Pick<MailInput, 'text' | 'html'>): string {
  let text = mail.text ?? '';
  if (!text.trim() && mail.html) text = roughText(mail.html);
  const flat = text
    .slice(0, SNIPPET_LENGTH * 20)
    .replace(/\s+/g, ' ')
    .trim();
  return clean(flat.length > SNIPPET_LENGTH ? `${flat.slice(0, SNIPPET_LENGTH - 1).trimEnd()}…` : flat);
}

const addr = (a: MailAddress) => ({ address: clean(a.address), name: a.name ? clean(a.name) : null });

export function participantsOf(mail: Pick<MailInput, 'from' | 'to' | 'cc'>): string[] {
  const all = [mail.from, ...mail.to, ...mail.cc].filter((a): a is MailAddress => !!a?.address);
  return [...new Set(all.map((a) => clean(a.address.trim().toLowerCase())))];
}

/**
 * Stores a batch of emails for orgId and answers each one's id, in the order of items. An email
 * already stored (by any mailbox, or twice in the batch) is not stored again; its location is
 * added. Runs in the caller's transaction when deps.db is one, else in its own.
 */
export async function ingestMail(deps: Deps, orgId: string, items: IngestItem[]): Promise<IngestResult> {
  if (!items.length) return { mails: [] };
  if (deps.db.isTransaction) return ingestIn(deps, orgId, items);
  return deps.db.transaction().execute((trx) => ingestIn({ ...deps, db: trx }, orgId, items));
}

async function ingestIn(deps: Deps, orgId: string, items: IngestItem[]): Promise<IngestResult> {
  const db = deps.db;
  const keys = items.map((it) => clean(messageKey(it.mail)));
  const ids = new Map<string, string>();
  const existing = await sql<{ id: string; message_key: string }>`
    SELECT id, message_key FROM mail_messages
    WHERE org_id = ${orgId} AND message_key = ANY(${[...new Set(keys)]}::text[])`.execute(db);
  for (const r of existing.rows) ids.set(r.message_key, r.id);

  // The first item of each key not yet stored is the one stored.
  const fresh: { key: string; item: IngestItem }[] = [];
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (ids.has(keys[i]) || seen.has(keys[i])) return;
    seen.add(keys[i]);
    fresh.push({ key: keys[i], item });
  });

  const created = new Set<string>();
  if (fresh.length) {
    const own = await ownAddresses(deps, orgId);
    const threads = await threadsFor(
      deps,
      orgId,
      fresh.map((f) => f.item.mail),
      own,
    );
    const rows = fresh.map(({ key, item }, i) => {
      const m = item.mail;
      return {
        message_key: key,
        message_id_header: clean(m.messageId),
        in_reply_to: clean(m.inReplyTo),
        references: m.references.map((r) => clean(r)),
        thread_id: threads[i],
        subject: clean(m.subject),
        from_address: m.from ? clean(m.from.address.trim()) : null,
        from_name: m.from?.name ? clean(m.from.name) : null,
        to_addresses: m.to.map(addr),
        cc_addresses: m.cc.map(addr),
        participants: participantsOf(m),
        date: m.date.toISOString(),
        text_body: clean(m.text),
        html_body: clean(m.html),
        snippet: snippetOf(m),
        has_attachments: m.attachments.length > 0,
        size: m.size,
        source: item.source,
      };
    });
    const inserted = await sql<{ id: string; message_key: string }>`
      INSERT INTO mail_messages (org_id, message_key, message_id_header, in_reply_to, "references", thread_id,
        subject, from_address, from_name, to_addresses, cc_addresses, participants, date, text_body, html_body,
        snippet, has_attachments, size, source)
      SELECT ${orgId}::uuid, x.message_key, x.message_id_header, x.in_reply_to, x."references", x.thread_id,
        x.subject, x.from_address, x.from_name, x.to_addresses, x.cc_addresses, x.participants, x.date,
        x.text_body, x.html_body, x.snippet, x.has_attachments, x.size, x.source
      FROM jsonb_to_recordset(${JSON.stringify(byKey(rows, (r) => r.message_key))}::jsonb) AS x(message_key text, message_id_header text,
        in_reply_to text, "references" text[], thread_id uuid, subject text, from_address text, from_name text,
        to_addresses jsonb, cc_addresses jsonb, participants text[], date timestamptz, text_body text,
        html_body text, snippet text, has_attachments boolean, size integer, source text)
      ON CONFLICT (org_id, message_key) DO NOTHING
      RETURNING id, message_key`.execute(db);
    for (const r of inserted.rows) {
      ids.set(r.message_key, r.id);
      created.add(r.message_key);
    }
    // Stored meanwhile by another worker's batch: read back.
    const racing = fresh.filter((f) => !ids.has(f.key)).map((f) => f.key);
    if (racing.length) {
      const back = await sql<{ id: string; message_key: string }>`
        SELECT id, message_key FROM mail_messages WHERE org_id = ${orgId} AND message_key = ANY(${racing}::text[])`.execute(
        db,
      );
      for (const r of back.rows) ids.set(r.message_key, r.id);
    }

    const mine = fresh.filter((f) => created.has(f.key));
    await storeAttachments(
      deps,
      orgId,
      mine.map((f) => ({ mailId: ids.get(f.key) as string, mail: f.item.mail })),
    );
    const toLink = mine.filter((f) => f.item.link !== false).map((f) => ids.get(f.key) as string);
    const links: NewLink[] = await linkMails(deps, orgId, toLink);
    await noteIncoming(
      deps,
      orgId,
      mine.map((f) => ({
        id: ids.get(f.key) as string,
        from: f.item.mail.from ? f.item.mail.from.address.trim().toLowerCase() : null,
        subject: f.item.mail.subject,
        date: f.item.mail.date,
        inReplyTo: f.item.mail.inReplyTo,
        references: f.item.mail.references,
        autoReply: !!f.item.mail.autoReply,
      })),
      links,
      own,
    );
  }

  await storeLocations(
    deps,
    orgId,
    items.map((it, i) => ({ mailId: ids.get(keys[i]) as string, item: it })),
  );
  // Senders of new incoming mail may become Leads or Contacts by the users' rules (SalesInbox).
  await applyLeadRules(
    deps,
    orgId,
    [...created].map((k) => ids.get(k) as string),
  );

  const answered = new Set<string>();
  return {
    mails: keys.map((k) => {
      const first = created.has(k) && !answered.has(k);
      answered.add(k);
      return { id: ids.get(k) as string, created: first };
    }),
  };
}

/** Thread ids for new mail, from what the org already holds (see threading.ts). */
async function threadsFor(
  deps: Deps,
  orgId: string,
  mails: MailInput[],
  own: ReadonlySet<string>,
): Promise<string[]> {
  const items: ThreadItem[] = mails.map((m) => {
    const all = participantsOf(m);
    const outside = all.filter((a) => !own.has(a));
    return {
      messageId: m.messageId,
      inReplyTo: m.inReplyTo,
      references: m.references,
      subject: m.subject,
      // Mail among colleagues only: then they are who matters.
      participants: outside.length ? outside : all,
      date: m.date,
    };
  });
  const refs = [
    ...new Set(items.flatMap((it) => [...it.references, ...(it.inReplyTo ? [it.inReplyTo] : [])])),
  ];
  const ownIds = [...new Set(items.map((it) => it.messageId).filter((x): x is string => !!x))];
  const named = [...new Set([...refs, ...ownIds])];
  const times = items.map((it) => it.date.getTime());
  const to = new Date(Math.max(...times) + SUBJECT_WINDOW_MS).toISOString();

  const [stored, parley, replies] = await Promise.all([
    refs.length
      ? sql<{ message_id_header: string; thread_id: string }>`
          SELECT message_id_header, thread_id FROM mail_messages
          WHERE org_id = ${orgId} AND message_id_header = ANY(${refs}::text[])`.execute(deps.db)
      : null,
    named.length
      ? sql<{ id: string; message_id_header: string }>`
          SELECT id, message_id_header FROM messages
          WHERE org_id = ${orgId} AND message_id_header = ANY(${named}::text[])`.execute(deps.db)
      : null,
    // Replies stored before their parent (an inbox synced before the sent folder); they come later.
    ownIds.length
      ? sql<{ ref: string; thread_id: string }>`
          SELECT r.ref, mm.thread_id FROM mail_messages mm
          CROSS JOIN LATERAL unnest(mm."references" || mm.in_reply_to) AS r(ref)
          WHERE mm.org_id = ${orgId} AND mm.date >= ${new Date(Math.min(...times)).toISOString()}::timestamptz
            AND mm.date <= ${to}::timestamptz
            AND (mm.in_reply_to = ANY(${ownIds}::text[]) OR mm."references" && ${ownIds}::text[])
            AND r.ref = ANY(${ownIds}::text[])`.execute(deps.db)
      : null,
  ]);
  const known: ThreadKnowledge = {
    storedByMessageId: new Map(stored?.rows.map((r) => [r.message_id_header, r.thread_id])),
    parleyByMessageId: new Map(parley?.rows.map((r) => [r.message_id_header, r.id])),
    storedReplyTo: new Map(replies?.rows.map((r) => [r.ref, r.thread_id])),
    subjectCandidates: [],
  };

  // Only mail its headers leave without a thread looks for one by subject (the costly query).
  const NEW = '';
  const open = chooseThreads(items, known, () => NEW)
    .map((th, i) => (th === NEW ? items[i] : null))
    .filter((it): it is ThreadItem => it !== null && normalizeSubject(it.subject) !== '');
  if (open.length) {
    const openTimes = open.map((it) => it.date.getTime());
    const subjects = [...new Set(open.map((it) => normalizeSubject(it.subject)))];
    const people = [...new Set(open.flatMap((it) => it.participants))];
    // One row per thread and subject (its first and last email's dates, and which of the batch's
    // people took part): a busy mailbox has thousands of same-subject emails in 30 days.
    const similar = await sql<{
      thread_id: string;
      subject: string;
      participants: string[];
      first: Date;
      last: Date;
    }>`
      SELECT s.thread_id, s.subject, array_agg(DISTINCT p.p) AS participants, min(s.date) AS first,
        max(s.date) AS last
      FROM (
        SELECT thread_id, lower(trim(regexp_replace(regexp_replace(subject, ${SUBJECT_PREFIX}, '', 'i'),
          '[[:space:]]+', ' ', 'g'))) AS subject, participants, date
        FROM mail_messages
        WHERE org_id = ${orgId}
          AND date BETWEEN ${new Date(Math.min(...openTimes) - SUBJECT_WINDOW_MS).toISOString()}::timestamptz
            AND ${new Date(Math.max(...openTimes) + SUBJECT_WINDOW_MS).toISOString()}::timestamptz
          AND participants && ${people}::text[]
      ) s CROSS JOIN LATERAL unnest(s.participants) AS p(p)
      WHERE s.subject = ANY(${subjects}::text[]) AND p.p = ANY(${people}::text[])
      GROUP BY s.thread_id, s.subject`.execute(deps.db);
    known.subjectCandidates = similar.rows.flatMap((r) =>
      [r.first, r.last].map((d) => ({
        threadId: r.thread_id,
        subject: r.subject,
        participants: r.participants,
        date: new Date(d),
      })),
    );
  }
  return chooseThreads(items, known, randomUUID);
}

async function storeAttachments(deps: Deps, orgId: string, mails: { mailId: string; mail: MailInput }[]) {
  const rows = mails.flatMap(({ mailId, mail }) =>
    mail.attachments.map((a, idx) => ({
      mail_id: mailId,
      idx,
      filename: a.filename ? clean(a.filename) : null,
      content_type: clean(a.contentType) || 'application/octet-stream',
      size: a.size,
      content_id: a.contentId ? clean(a.contentId) : null,
      part: a.part,
      content: a.content ? a.content.toString('base64') : null,
    })),
  );
  if (!rows.length) return;
  await sql`
    INSERT INTO mail_attachments (org_id, mail_id, idx, filename, content_type, size, content_id, part, content)
    SELECT ${orgId}::uuid, x.mail_id, x.idx, x.filename, x.content_type, x.size, x.content_id, x.part,
      decode(x.content, 'base64')
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS x(mail_id uuid, idx integer, filename text,
      content_type text, size integer, content_id text, part text, content text)
    ON CONFLICT (mail_id, idx) DO NOTHING`.execute(deps.db);
}

/**
 * Where each copy lives. The account must be the org's (its owner is taken from it); a copy seen
 * again updates its \Seen flag (and its email, should the folder's UIDs have been reissued).
 */
async function storeLocations(deps: Deps, orgId: string, list: { mailId: string; item: IngestItem }[]) {
  // One row per place: ON CONFLICT cannot touch a row twice in a statement.
  const imap = new Map<string, object>();
  const pop = new Map<string, object>();
  for (const { mailId, item } of list) {
    const l = item.location;
    if (!l) continue;
    const row = {
      mail_id: mailId,
      account_id: l.accountId,
      folder: clean(l.folder),
      uid: l.uid,
      uidl: l.uid === null ? clean(l.uidl) : null,
      direction: l.direction,
      seen: l.seen,
      date: item.mail.date.toISOString(),
    };
    if (l.uid !== null) imap.set(`${l.accountId} ${l.folder} ${l.uid}`, row);
    else if (l.uidl !== null) pop.set(`${l.accountId} ${l.uidl}`, row);
  }
  const insert = (rows: object[], conflict: ReturnType<typeof sql>) =>
    sql`
      INSERT INTO mail_locations (org_id, mail_id, account_id, user_id, folder, uid, uidl, direction, seen, date)
      SELECT a.org_id, x.mail_id, a.id, a.user_id, x.folder, x.uid, x.uidl, x.direction, x.seen, x.date
      FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS x(mail_id uuid, account_id uuid, folder text,
        uid bigint, uidl text, direction text, seen boolean, date timestamptz)
      JOIN mailbox_accounts a ON a.id = x.account_id AND a.org_id = ${orgId}
      ${conflict}`.execute(deps.db);
  if (imap.size)
    await insert(
      byKey([...imap.entries()], (e) => e[0]).map((e) => e[1]),
      sql`ON CONFLICT (account_id, folder, uid) WHERE uid IS NOT NULL
        DO UPDATE SET seen = EXCLUDED.seen, mail_id = EXCLUDED.mail_id, direction = EXCLUDED.direction, date = EXCLUDED.date`,
    );
  if (pop.size)
    await insert(
      byKey([...pop.entries()], (e) => e[0]).map((e) => e[1]),
      sql`ON CONFLICT (account_id, uidl) WHERE uidl IS NOT NULL
        DO UPDATE SET seen = EXCLUDED.seen, mail_id = EXCLUDED.mail_id, direction = EXCLUDED.direction, date = EXCLUDED.date`,
    );
}
