import { sql } from 'kysely';
import { type Actor, displayName, requireAdmin } from '../../crm/index.ts';
import type { DropboxItemState, MailAddress } from '../../db/schema.ts';
import type { Deps } from '../../deps.ts';
import { AppError, invalid, notFound } from '../../errors.ts';
import { LINKED_MODULES } from '../links.ts';

// Dropbox items as admins review them (Salesforce's "unresolved items"): the unmatched ones can be
// assigned to Leads and Contacts (the email is then linked to them) or discarded (the stored email
// is deleted unless something else still holds it).

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PAGE = 50;
const CURSOR = /^(\d{4}-\d\d-\d\dT[\d:.]+Z)_([0-9a-f-]{36})$/i;
export const MAX_ASSIGN = 50;

export async function listItems(
  deps: Deps,
  actor: Actor,
  q: { state?: DropboxItemState; cursor?: string; limit?: number } = {},
) {
  requireAdmin(actor);
  const state = q.state ?? 'unmatched';
  let query = deps.db
    .selectFrom('dropbox_items as i')
    .leftJoin('mail_messages as m', 'm.id', 'i.mail_id')
    .select([
      'i.id',
      'i.mail_id as mailId',
      'i.envelope_from as envelopeFrom',
      'i.from_address as fromAddress',
      'i.from_name as fromName',
      'i.subject',
      'i.date',
      'i.received_at as receivedAt',
      'i.remote_ip as remoteIp',
      'i.spf',
      'i.spf_detail as spfDetail',
      'i.dkim',
      'i.dkim_domain as dkimDomain',
      'i.dkim_detail as dkimDetail',
      'i.state',
      'i.reason',
      'm.to_addresses as to',
      'm.cc_addresses as cc',
      'm.snippet',
    ])
    .where('i.org_id', '=', actor.orgId)
    .where('i.state', '=', state);
  // Newest first, in pages: the cursor is the last item's (received_at, id).
  if (q.cursor) {
    const m = CURSOR.exec(q.cursor);
    if (!m || !UUID.test(m[2])) throw invalid('This page cursor is not valid');
    query = query.where(sql<boolean>`(i.received_at, i.id) < (${m[1]}::timestamptz, ${m[2]}::uuid)`);
  }
  const limit = Math.min(Math.max(q.limit ?? PAGE, 1), 100);
  const items = await query.orderBy('i.received_at', 'desc').orderBy('i.id', 'desc').limit(limit).execute();
  const last = items.at(-1);
  const next = items.length === limit && last ? `${last.receivedAt.toISOString()}_${last.id}` : null;
  const linked = items.length
    ? await deps.db
        .selectFrom('mail_record_links as l')
        .innerJoin('records as r', 'r.id', 'l.record_id')
        .innerJoin('modules as mo', 'mo.id', 'r.module_id')
        .select(['l.mail_id', 'r.id', 'r.data', 'mo.api_name'])
        .where('l.org_id', '=', actor.orgId)
        .where(
          'l.mail_id',
          'in',
          items.flatMap((i) => (i.mailId ? [i.mailId] : [])),
        )
        .execute()
    : [];
  return {
    items: items.map((i) => ({
      ...i,
      to: i.to ?? [],
      cc: i.cc ?? [],
      snippet: i.snippet ?? '',
      records: linked
        .filter((l) => l.mail_id === i.mailId)
        .map((l) => ({ id: l.id, module: l.api_name, displayName: displayName(l.api_name, l.data) })),
    })),
    next,
  };
}

async function unmatchedItem(deps: Deps, actor: Actor, id: string) {
  const item = UUID.test(id)
    ? await deps.db
        .selectFrom('dropbox_items')
        .selectAll()
        .where('org_id', '=', actor.orgId)
        .where('id', '=', id)
        .executeTakeFirst()
    : undefined;
  if (!item) throw notFound('Dropbox item');
  if (item.state !== 'unmatched') throw new AppError('conflict', `This email was already ${item.state}`);
  return item;
}

/**
 * Links an unmatched email to the chosen Leads and Contacts of the org. A record's role is how its
 * address takes part in the email (from, to, cc); a record that is not a participant counts as To.
 */
export async function assignItem(deps: Deps, actor: Actor, id: string, recordIds: readonly string[]) {
  requireAdmin(actor);
  const ids = [...new Set(recordIds)];
  if (!ids.length || ids.length > MAX_ASSIGN || !ids.every((r) => UUID.test(r)))
    throw invalid(`Choose between 1 and ${MAX_ASSIGN} records`, [{ path: 'recordIds', message: 'invalid' }]);
  const item = await unmatchedItem(deps, actor, id);
  const mailId = item.mail_id;
  // Deleted meanwhile (its mailbox copy removed): nothing to link; it can only be discarded.
  if (!mailId) throw new AppError('conflict', 'This email is no longer stored');
  const records = await deps.db
    .selectFrom('records as r')
    .innerJoin('modules as mo', 'mo.id', 'r.module_id')
    .select(['r.id', 'r.module_id', 'r.data'])
    .where('r.org_id', '=', actor.orgId)
    .where('mo.org_id', '=', actor.orgId)
    .where('mo.api_name', 'in', [...LINKED_MODULES])
    .where('r.id', 'in', ids)
    .execute();
  if (records.length !== ids.length) throw notFound('Lead or Contact');
  const mail = await deps.db
    .selectFrom('mail_messages')
    .select(['from_address', 'to_addresses', 'cc_addresses'])
    .where('org_id', '=', actor.orgId)
    .where('id', '=', mailId)
    .executeTakeFirstOrThrow();
  // The column type wraps a Generated JSON column; the value read is the plain array.
  const lower = (a: unknown) => new Set((a as MailAddress[]).map((x) => x.address.toLowerCase()));
  const to = lower(mail.to_addresses);
  const cc = lower(mail.cc_addresses);
  const roleOf = (data: Record<string, unknown>) => {
    const email = typeof data.email === 'string' ? data.email.toLowerCase() : '';
    if (email && email === mail.from_address?.toLowerCase()) return 'from' as const;
    if (email && cc.has(email) && !to.has(email)) return 'cc' as const;
    return 'to' as const;
  };
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    const claimed = await trx
      .updateTable('dropbox_items')
      .set({ state: 'attached', resolved_by: actor.userId, resolved_at: now })
      .where('id', '=', item.id)
      .where('state', '=', 'unmatched')
      .executeTakeFirst();
    if (!claimed.numUpdatedRows) throw new AppError('conflict', 'This email was resolved meanwhile');
    await trx
      .insertInto('mail_record_links')
      .values(
        records.map((r) => ({
          mail_id: mailId,
          record_id: r.id,
          org_id: actor.orgId,
          module_id: r.module_id,
          role: roleOf(r.data),
        })),
      )
      .onConflict((oc) => oc.columns(['mail_id', 'record_id']).doNothing())
      .execute();
  });
  return { id: item.id, state: 'attached' as const, recordIds: ids };
}

/** Discards an unmatched email; the stored email goes too unless a mailbox, a record or another
 * dropbox item still holds it. */
export async function discardItem(deps: Deps, actor: Actor, id: string) {
  requireAdmin(actor);
  const item = await unmatchedItem(deps, actor, id);
  const now = deps.clock.now();
  let deleted = false;
  await deps.db.transaction().execute(async (trx) => {
    const claimed = await trx
      .updateTable('dropbox_items')
      .set({ state: 'discarded', resolved_by: actor.userId, resolved_at: now })
      .where('id', '=', item.id)
      .where('state', '=', 'unmatched')
      .executeTakeFirst();
    if (!claimed.numUpdatedRows) throw new AppError('conflict', 'This email was resolved meanwhile');
    if (!item.mail_id) return;
    const r = await trx
      .deleteFrom('mail_messages as m')
      .where('m.org_id', '=', actor.orgId)
      .where('m.id', '=', item.mail_id)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('mail_locations')
              .select(sql`1`.as('x'))
              .whereRef('mail_id', '=', 'm.id')
              .union(selectFrom('mail_record_links').select(sql`1`.as('x')).whereRef('mail_id', '=', 'm.id'))
              .union(
                selectFrom('dropbox_items')
                  .select(sql`1`.as('x'))
                  .whereRef('mail_id', '=', 'm.id')
                  .where('state', '<>', 'discarded'),
              ),
          ),
        ),
      )
      .executeTakeFirst();
    deleted = r.numDeletedRows > 0;
  });
  return { id: item.id, state: 'discarded' as const, mailDeleted: deleted };
}
