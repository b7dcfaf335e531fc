import { type SqlBool, sql } from 'kysely';
import type { Actor } from '../crm/index.ts';
import { requireModule } from '../crm/index.ts';
import type { Deps } from '../deps.ts';
import { invalid, notFound } from '../errors.ts';

// Mass email statistics (F4.10). Every number is a count over the send's message rows under one
// named condition, and the same condition lists its recipients, so a number and its list agree.

export const STATS = {
  sent: sql<SqlBool>`m.status = 'sent'`,
  bounced: sql<SqlBool>`m.bounced_at IS NOT NULL`,
  delivered: sql<SqlBool>`m.status = 'sent' AND m.bounced_at IS NULL`,
  // Opens and clicks can only be seen on tracked messages (HTML, Insights on): the rest count apart.
  tracked: sql<SqlBool>`m.status = 'sent' AND m.tracked`,
  not_delivered: sql<SqlBool>`(m.status IN ('failed', 'unknown') OR m.bounced_at IS NOT NULL)`,
  opened: sql<SqlBool>`m.opened_at IS NOT NULL`,
  unopened: sql<SqlBool>`m.status = 'sent' AND m.tracked AND m.bounced_at IS NULL AND m.opened_at IS NULL`,
  clicked: sql<SqlBool>`m.clicked_at IS NOT NULL`,
  unclicked: sql<SqlBool>`m.status = 'sent' AND m.tracked AND m.bounced_at IS NULL AND m.clicked_at IS NULL`,
  pending: sql<SqlBool>`m.status IN ('queued', 'sending', 'deferred')`,
  waiting: sql<SqlBool>`m.status = 'queued' AND m.next_attempt_at > now()`,
} as const;
export type StatName = keyof typeof STATS;
export const STAT_NAMES = Object.keys(STATS) as StatName[];

async function loadOwned(deps: Deps, actor: Actor, id: string) {
  const m = /^[0-9a-f-]{36}$/i.test(id)
    ? await deps.db
        .selectFrom('mass_emails as me')
        .innerJoin('modules as mo', 'mo.id', 'me.module_id')
        .select(['me.id', 'me.name', 'me.recipients', 'me.excluded', 'mo.api_name as module'])
        .where('me.org_id', '=', actor.orgId)
        .where('me.id', '=', id)
        .executeTakeFirst()
    : undefined;
  if (!m) throw notFound('Mass email');
  requireModule(actor, m.module, 'mass_email');
  return m;
}

/** All the counts of one mass email or follow-up, in one scan of its rows. */
export async function massStats(deps: Deps, actor: Actor, id: string) {
  const m = await loadOwned(deps, actor, id);
  const cols = STAT_NAMES.map((n) => sql`count(*) FILTER (WHERE ${STATS[n]})::int AS ${sql.ref(n)}`);
  const row = (
    await sql<Record<StatName, number> & { total: number; machine_opens: number; machine_clicks: number }>`
      SELECT count(*)::int AS total, ${sql.join(cols)},
        coalesce(sum(m.machine_open_count), 0)::int AS machine_opens,
        coalesce(sum(m.machine_click_count), 0)::int AS machine_clicks
      FROM messages m WHERE m.org_id = ${actor.orgId} AND m.mass_email_id = ${m.id}`.execute(deps.db)
  ).rows[0];
  const excluded = await deps.db
    .selectFrom('mass_email_exclusions')
    .select(['reason', (eb) => eb.fn.countAll<number>().as('n')])
    .where('org_id', '=', actor.orgId)
    .where('mass_email_id', '=', m.id)
    .groupBy('reason')
    .execute();
  return {
    id: m.id,
    name: m.name,
    recipients: row.total,
    ...Object.fromEntries(STAT_NAMES.map((n) => [n, row[n]])),
    machineOpens: row.machine_opens,
    machineClicks: row.machine_clicks,
    excluded: Object.fromEntries(excluded.map((e) => [e.reason, Number(e.n)])),
  } as {
    id: string;
    name: string;
    recipients: number;
    machineOpens: number;
    machineClicks: number;
    excluded: Record<string, number>;
  } & Record<StatName, number>;
}

/** The recipients behind one number, paged by message id. */
export async function massStatRecipients(
  deps: Deps,
  actor: Actor,
  id: string,
  stat: string,
  page: { limit?: number; after?: string | null } = {},
) {
  const m = await loadOwned(deps, actor, id);
  if (!(STAT_NAMES as string[]).includes(stat)) throw invalid(`stat must be one of ${STAT_NAMES.join(', ')}`);
  const limit = Math.min(Math.max(Math.trunc(page.limit ?? 100), 1), 10_000);
  const rows = (
    await sql<{
      id: string;
      record_id: string | null;
      to_address: string;
      to_name: string | null;
      status: string;
      sent_at: Date | null;
      opened_at: Date | null;
      clicked_at: Date | null;
      bounced_at: Date | null;
      bounce_reason: string | null;
      smtp_response: string | null;
    }>`
      SELECT m.id, m.record_id, m.to_address, m.to_name, m.status, m.sent_at, m.opened_at, m.clicked_at,
        m.bounced_at, m.bounce_reason, m.smtp_response
      FROM messages m
      WHERE m.org_id = ${actor.orgId} AND m.mass_email_id = ${m.id} AND ${STATS[stat as StatName]}
        ${page.after ? sql`AND m.id > ${page.after}::uuid` : sql``}
      ORDER BY m.id LIMIT ${limit + 1}`.execute(deps.db)
  ).rows;
  const items = rows.slice(0, limit);
  return { items, next: rows.length > limit ? items[items.length - 1].id : null };
}
