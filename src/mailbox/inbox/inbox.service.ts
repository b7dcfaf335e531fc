import { type Expression, type SqlBool, sql } from 'kysely';
import { z } from 'zod';
import { type Actor, can, displayName, loadModules } from '../../crm/index.ts';
import type { Deps } from '../../deps.ts';
import { invalid, notFound } from '../../errors.ts';
import { compileSalesConditions, salesConditionSchema } from './sales-conditions.ts';

// The SalesInbox (F6.4): the signed-in user's own synced mail (their mail_locations), the mail from
// and to CRM records first, filtered by email conditions and by sales conditions of the linked record.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const PAGE_MAX = 100;

export const inboxQuerySchema = z
  .object({
    /** crm: linked to a record of a module the user can read; other: the rest; all: both. */
    tab: z.enum(['crm', 'other', 'all']).default('crm'),
    from: z.string().trim().max(200).optional(),
    to: z.string().trim().max(200).optional(),
    subject: z.string().trim().max(200).optional(),
    hasAttachment: z.boolean().optional(),
    unread: z.boolean().optional(),
    after: z.iso.datetime({ offset: true }).optional(),
    before: z.iso.datetime({ offset: true }).optional(),
    labelIds: z.array(z.uuid()).max(20).optional(),
    direction: z.enum(['in', 'out']).optional(),
    sales: z.array(salesConditionSchema).max(5).optional(),
    limit: z.number().int().min(1).max(PAGE_MAX).default(50),
    cursor: z.string().max(200).nullish(),
  })
  .strict();
export type InboxQuery = z.input<typeof inboxQuerySchema>;

const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);
const likeAny = (s: string) => `%${escapeLike(s.toLowerCase())}%`;

function encodeCursor(date: Date, id: string) {
  return Buffer.from(JSON.stringify([date.toISOString(), id])).toString('base64url');
}
function decodeCursor(c: string): [string, string] {
  try {
    const [d, id] = JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
    if (typeof d === 'string' && !Number.isNaN(Date.parse(d)) && typeof id === 'string' && UUID.test(id))
      return [d, id];
  } catch {}
  throw invalid('Invalid cursor', [{ path: 'cursor', message: 'not a cursor returned by this list' }]);
}

/** The modules whose links the user may see (and that make the CRM tab). */
async function readableModuleIds(deps: Deps, actor: Actor) {
  const modules = await loadModules(deps, actor.orgId);
  const readable = [...modules.values()].filter((m) => can(actor, m.apiName, 'read'));
  return { modules, ids: readable.map((m) => m.id) };
}

/** "This email is in the actor's own mailbox": the one rule every inbox query starts from. */
export const mineSql = (actor: Actor, extra = sql``) =>
  sql<SqlBool>`EXISTS (SELECT 1 FROM mail_locations AS l WHERE l.mail_id = m.id AND l.org_id = ${actor.orgId} AND l.user_id = ${actor.userId}${extra})`;

type Row = {
  id: string;
  subject: string;
  snippet: string;
  from_address: string | null;
  from_name: string | null;
  to_addresses: { address: string; name?: string | null }[];
  cc_addresses: { address: string; name?: string | null }[];
  date: Date;
  has_attachments: boolean;
  message_id_header: string | null;
  thread_id: string;
};

export async function queryInbox(deps: Deps, actor: Actor, input: unknown) {
  const parsed = inboxQuerySchema.safeParse(input);
  if (!parsed.success)
    throw invalid(
      `Invalid inbox filter: ${parsed.error.issues[0].path.join('.') || 'filter'}: ${parsed.error.issues[0].message}`,
      parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    );
  const q = parsed.data;
  const { modules, ids: readable } = await readableModuleIds(deps, actor);
  const where: Expression<SqlBool>[] = [sql<SqlBool>`m.org_id = ${actor.orgId}`, mineSql(actor)];
  const linked = readable.length
    ? sql<SqlBool>`EXISTS (SELECT 1 FROM mail_record_links AS lk WHERE lk.mail_id = m.id AND lk.org_id = ${actor.orgId} AND lk.module_id = ANY(${readable}::uuid[]))`
    : sql<SqlBool>`false`;
  if (q.tab === 'crm') where.push(linked);
  if (q.tab === 'other') where.push(sql<SqlBool>`NOT ${linked}`);
  if (q.from) {
    const p = likeAny(q.from);
    where.push(sql<SqlBool>`(lower(m.from_address) LIKE ${p} OR lower(m.from_name) LIKE ${p})`);
  }
  if (q.to) {
    const p = likeAny(q.to);
    where.push(
      sql<SqlBool>`EXISTS (SELECT 1 FROM jsonb_array_elements(m.to_addresses || m.cc_addresses) AS e WHERE lower(e ->> 'address') LIKE ${p} OR lower(e ->> 'name') LIKE ${p})`,
    );
  }
  if (q.subject) where.push(sql<SqlBool>`lower(m.subject) LIKE ${likeAny(q.subject)}`);
  if (q.hasAttachment !== undefined) where.push(sql<SqlBool>`m.has_attachments = ${q.hasAttachment}`);
  // Unread: some copy in the user's mailbox is not seen.
  if (q.unread !== undefined) {
    const unread = mineSql(actor, sql` AND NOT l.seen`);
    where.push(q.unread ? unread : sql<SqlBool>`NOT ${unread}`);
  }
  if (q.direction) where.push(mineSql(actor, sql` AND l.direction = ${q.direction}`));
  if (q.after) where.push(sql<SqlBool>`m.date >= ${new Date(q.after)}`);
  if (q.before) where.push(sql<SqlBool>`m.date < ${new Date(q.before)}`);
  if (q.labelIds?.length)
    where.push(
      sql<SqlBool>`EXISTS (SELECT 1 FROM mail_label_assignments AS la WHERE la.mail_id = m.id AND la.user_id = ${actor.userId} AND la.label_id = ANY(${q.labelIds}::uuid[]))`,
    );
  if (q.sales?.length) where.push(...(await compileSalesConditions(deps, actor, q.sales)));
  if (q.cursor) {
    const [d, id] = decodeCursor(q.cursor);
    where.push(sql<SqlBool>`(m.date, m.id) < (${d}::timestamptz, ${id}::uuid)`);
  }

  const rows =
    await sql<Row>`SELECT m.id, m.subject, m.snippet, m.from_address, m.from_name, m.to_addresses, m.cc_addresses, m.date,
      m.has_attachments, m.message_id_header, m.thread_id
    FROM mail_messages AS m WHERE ${sql.join(where, sql` AND `)}
    ORDER BY m.date DESC, m.id DESC LIMIT ${q.limit + 1}`.execute(deps.db);
  const page = rows.rows.slice(0, q.limit);
  const more = rows.rows.length > q.limit;
  const items = await decorate(deps, actor, page, modules, new Set(readable));
  const last = page.at(-1);
  return { items, nextCursor: more && last ? encodeCursor(last.date, last.id) : null };
}

/** Adds what the list shows beside the email itself: the user's copies, labels, records and watch. */
async function decorate(
  deps: Deps,
  actor: Actor,
  rows: Row[],
  modules: Awaited<ReturnType<typeof loadModules>>,
  readable: Set<string>,
) {
  if (!rows.length) return [];
  const ids = rows.map((r) => r.id);
  const [locs, labels, links, watches] = await Promise.all([
    deps.db
      .selectFrom('mail_locations')
      .select(['mail_id', 'folder', 'direction', 'seen'])
      .where('org_id', '=', actor.orgId)
      .where('user_id', '=', actor.userId)
      .where('mail_id', 'in', ids)
      .execute(),
    deps.db
      .selectFrom('mail_label_assignments as la')
      .innerJoin('mail_labels as lb', 'lb.id', 'la.label_id')
      .select(['la.mail_id', 'lb.id', 'lb.name', 'lb.colour'])
      .where('la.user_id', '=', actor.userId)
      .where('la.mail_id', 'in', ids)
      .orderBy('lb.name')
      .execute(),
    deps.db
      .selectFrom('mail_record_links as lk')
      .innerJoin('records as r', 'r.id', 'lk.record_id')
      .select(['lk.mail_id', 'lk.role', 'r.id', 'r.module_id', 'r.data'])
      .where('lk.org_id', '=', actor.orgId)
      .where('r.org_id', '=', actor.orgId)
      .where('lk.mail_id', 'in', ids)
      .execute(),
    deps.db
      .selectFrom('response_watches')
      .select(['id', 'mail_id', 'state', 'due_at', 'replied_at', 'reminded_at'])
      .where('org_id', '=', actor.orgId)
      .where('user_id', '=', actor.userId)
      .where('mail_id', 'in', ids)
      .orderBy('created_at', 'desc')
      .execute(),
  ]);
  const byModuleId = new Map([...modules.values()].map((m) => [m.id, m]));
  return rows.map((r) => {
    const mine = locs.filter((l) => l.mail_id === r.id);
    const w = watches.find((x) => x.mail_id === r.id);
    return {
      id: r.id,
      subject: r.subject,
      snippet: r.snippet,
      from: r.from_address ? { address: r.from_address, name: r.from_name } : null,
      to: r.to_addresses,
      cc: r.cc_addresses,
      date: r.date,
      hasAttachments: r.has_attachments,
      messageId: r.message_id_header,
      threadId: r.thread_id,
      unread: mine.some((l) => !l.seen),
      direction: mine.some((l) => l.direction === 'out') ? ('out' as const) : ('in' as const),
      folders: [...new Set(mine.map((l) => l.folder))],
      labels: labels
        .filter((l) => l.mail_id === r.id)
        .map((l) => ({ id: l.id, name: l.name, colour: l.colour })),
      records: links
        .filter((l) => l.mail_id === r.id && readable.has(l.module_id))
        .map((l) => {
          const mod = byModuleId.get(l.module_id);
          return {
            id: l.id,
            module: mod?.apiName ?? '',
            moduleLabel: mod?.singularLabel ?? '',
            displayName: mod ? displayName(mod.apiName, l.data) : '',
            role: l.role,
          };
        }),
      watch: w
        ? { id: w.id, state: w.state, dueAt: w.due_at, repliedAt: w.replied_at, remindedAt: w.reminded_at }
        : null,
    };
  });
}

/** One email of the user's own mailbox, as the list shows it (its body: /api/mail/:id, sanitised). */
export async function getInboxMail(deps: Deps, actor: Actor, mailId: string) {
  if (!UUID.test(mailId)) throw notFound('Email');
  const m = await deps.db
    .selectFrom('mail_messages as m')
    .select([
      'm.id',
      'm.subject',
      'm.snippet',
      'm.from_address',
      'm.from_name',
      'm.to_addresses',
      'm.cc_addresses',
      'm.date',
      'm.has_attachments',
      'm.message_id_header',
      'm.thread_id',
    ])
    .where('m.org_id', '=', actor.orgId)
    .where('m.id', '=', mailId)
    .where(mineSql(actor))
    .executeTakeFirst();
  if (!m) throw notFound('Email');
  const { modules, ids } = await readableModuleIds(deps, actor);
  const [item] = await decorate(deps, actor, [m as unknown as Row], modules, new Set(ids));
  return item;
}

/** Marks the user's copies of these emails read or unread (Parley's flag; IMAP is not written to). */
export async function markSeen(deps: Deps, actor: Actor, mailIds: string[], seen: boolean) {
  if (!mailIds.length || mailIds.some((id) => !UUID.test(id))) throw invalid('mailIds must be email ids');
  const r = await deps.db
    .updateTable('mail_locations')
    .set({ seen })
    .where('org_id', '=', actor.orgId)
    .where('user_id', '=', actor.userId)
    .where('mail_id', 'in', mailIds)
    .executeTakeFirst();
  return { updated: Number(r.numUpdatedRows) };
}
