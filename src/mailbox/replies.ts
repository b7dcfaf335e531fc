// What newly stored mail tells the insights (issue 5): a reply to an email Parley sent marks that
// message replied; mail from a Lead or Contact is "received" on the record; an address that writes
// in has its bounce suppression reconsidered. Called by ingestMail for mail it created only, so
// each email counts once however many mailboxes hold a copy.
import { sql } from 'kysely';
import type { Deps } from '../deps.ts';
import { reconsiderAddress } from '../tracking/bounces/suppression.ts';
import { type NewEmailEvent, recordEvents } from '../tracking/events.ts';
import type { NewLink } from './links.ts';

export interface NewMail {
  id: string;
  from: string | null;
  subject: string;
  date: Date;
  inReplyTo: string | null;
  references: string[];
  /** Auto-replies and delivery reports are stored but count as neither replied nor received. */
  autoReply: boolean;
}

/**
 * The org's own addresses: its connected mailboxes' and its users'. Mail from them is outgoing,
 * and they take part in every conversation, so threading by participant leaves them out.
 */
export async function ownAddresses(deps: Pick<Deps, 'db'>, orgId: string): Promise<Set<string>> {
  const rows = await sql<{ a: string }>`
    SELECT lower(email_address) AS a FROM mailbox_accounts WHERE org_id = ${orgId}
    UNION SELECT lower(email) FROM users WHERE org_id = ${orgId}`.execute(deps.db);
  return new Set(rows.rows.map((r) => r.a));
}

export async function noteIncoming(
  deps: Pick<Deps, 'db' | 'clock' | 'log'>,
  orgId: string,
  mails: readonly NewMail[],
  links: readonly NewLink[],
  own: ReadonlySet<string>,
): Promise<void> {
  const incoming = mails.filter((m) => m.from && !own.has(m.from) && !m.autoReply);
  if (!incoming.length) return;
  const events: NewEmailEvent[] = [];

  // Replies: the nearest Parley message the headers name (In-Reply-To, else the last reference).
  // The customer's address, not the sender's own copy: a message's from_address never counts.
  const wanted = incoming.flatMap((m) =>
    [m.inReplyTo, ...[...m.references].reverse()]
      .filter((r): r is string => !!r)
      .map((ref, rank) => ({ mail: m, ref, rank })),
  );
  if (wanted.length) {
    const replied = await sql<{
      id: string;
      record_id: string | null;
      mass_email_id: string | null;
      replied_at: Date;
    }>`
      WITH w AS (
        SELECT * FROM unnest(${wanted.map((w) => w.ref)}::text[], ${wanted.map((w) => w.rank)}::int[],
          ${wanted.map((w) => w.mail.id)}::uuid[], ${wanted.map((w) => w.mail.from)}::text[],
          ${wanted.map((w) => w.mail.date.toISOString())}::timestamptz[]) AS w(ref, rank, mail_id, sender, at)
      ), nearest AS (
        SELECT DISTINCT ON (w.mail_id) m.id, w.at
        FROM w JOIN messages m ON m.org_id = ${orgId} AND m.message_id_header = w.ref
        WHERE lower(m.from_address) <> w.sender
        ORDER BY w.mail_id, w.rank
      ), firsts AS (
        SELECT DISTINCT ON (id) id, at FROM nearest ORDER BY id, at
      )
      UPDATE messages m SET replied_at = greatest(f.at, coalesce(m.sent_at, f.at)), updated_at = now()
      FROM firsts f
      WHERE m.id = f.id AND m.org_id = ${orgId} AND m.replied_at IS NULL
      RETURNING m.id, m.record_id, m.mass_email_id, m.replied_at`.execute(deps.db);
    for (const r of replied.rows)
      events.push({
        orgId,
        messageId: r.id,
        recordId: r.record_id,
        massEmailId: r.mass_email_id,
        kind: 'replied',
        human: true,
        at: new Date(r.replied_at),
      });
  }

  // Received: one event per record the mail came from.
  const byId = new Map(incoming.map((m) => [m.id, m]));
  for (const l of links) {
    const m = byId.get(l.mailId);
    if (!m || l.role !== 'from') continue;
    events.push({
      orgId,
      messageId: null,
      recordId: l.recordId,
      massEmailId: null,
      kind: 'received',
      human: true,
      at: m.date,
      data: { mailId: m.id, subject: m.subject },
    });
  }
  await recordEvents(deps.db, events);

  // Only senders with a bounce suppression need the (per address) reconsideration.
  const senders = [...new Set(incoming.map((m) => m.from as string))];
  const suppressed = await sql<{ email: string }>`
    SELECT email FROM suppressions
    WHERE org_id = ${orgId} AND email = ANY(${senders}::text[]) AND reason IN ('soft_bounce', 'hard_bounce')`.execute(
    deps.db,
  );
  for (const s of suppressed.rows) await reconsiderAddress(deps, orgId, s.email);
}
