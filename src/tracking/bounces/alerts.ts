import { sql } from 'kysely';
import { type Actor, requireAdmin } from '../../crm/access.ts';
import type { Db } from '../../db/pool.ts';
import type { Deps } from '../../deps.ts';
import { notFound } from '../../errors.ts';
import { sendingSetup } from '../../sending/queue-rows.ts';
import { newMessageIdHeader } from '../../sending/verp.ts';

// Alerts for the org's admins: mail refused for policy (5.7.x: spam filters, block lists,
// SPF/DKIM/DMARC, reputation) is the sender's problem, so the address is not suppressed, but
// someone must fix the sending. Repeats of one problem (same recipient domain and status) add to
// one open alert; a new alert also emails every admin, through the normal queue, once.

export interface PolicyBounce {
  orgId: string;
  messageId: string;
  recipient: string;
  status: string;
  reason: string;
  at: Date;
}

/** Records the bounce on its alert; returns true when it opened a new one (the admins are emailed). */
export async function alertPolicyBounce(
  deps: Pick<Deps, 'config' | 'clock'> & { db: Db },
  b: PolicyBounce,
): Promise<boolean> {
  const domain = b.recipient.split('@')[1]?.toLowerCase() || 'unknown';
  const status = b.status || '5.7.x';
  const title = `Mail to ${domain} refused for policy reasons (${status})`;
  const detail = b.reason.slice(0, 1000);
  const r = (
    await sql<{ inserted: boolean }>`
      INSERT INTO admin_alerts AS a (org_id, kind, key, title, detail, message_id, first_at, last_at)
      VALUES (${b.orgId}, 'bounce_policy', ${`${domain} ${status}`}, ${title}, ${detail}, ${b.messageId}, ${b.at}, ${b.at})
      ON CONFLICT (org_id, kind, key) WHERE dismissed_at IS NULL
      DO UPDATE SET count = a.count + 1, detail = EXCLUDED.detail, message_id = EXCLUDED.message_id,
        last_at = greatest(a.last_at, EXCLUDED.last_at)
      RETURNING (xmax = 0) AS inserted`.execute(deps.db)
  ).rows[0];
  if (!r?.inserted) return false;
  await emailAdmins(
    deps,
    b.orgId,
    `Parley: ${title}`,
    `${title}.\n\nThe receiving server said: ${detail}\n\n` +
      'This is not the recipient\u2019s fault, so the address was not suppressed: the receiving system ' +
      'refused the mail because of how it was sent (content, authentication such as SPF, DKIM and DMARC, ' +
      'or the sending server\u2019s reputation). Check your sending domain\u2019s DNS records and your relay, ' +
      'then dismiss the alert under Settings \u203a Suppressions. Further refusals of this kind are counted on ' +
      'the same alert without another email.',
  );
  return true;
}

/** A plain system email to every active admin of the org (through the normal queue). */
export async function emailAdmins(
  deps: Pick<Deps, 'config' | 'clock'> & { db: Db },
  orgId: string,
  subject: string,
  text: string,
): Promise<number> {
  const admins = await deps.db
    .selectFrom('users as u')
    .innerJoin('profiles as p', 'p.id', 'u.profile_id')
    .select(['u.email', 'u.name'])
    .where('u.org_id', '=', orgId)
    .where('p.is_admin', '=', true)
    .where('u.status', 'in', ['active', 'confirmed'])
    .execute();
  if (!admins.length) return 0;
  const setup = await sendingSetup(deps as Deps, orgId);
  const now = deps.clock.now();
  await deps.db
    .insertInto('messages')
    .values(
      admins.map((u) => ({
        org_id: orgId,
        kind: 'system' as const,
        from_address: u.email,
        from_name: 'Parley',
        to_address: u.email,
        to_name: u.name,
        subject,
        text,
        message_id_header: newMessageIdHeader(setup.domain ?? u.email.split('@')[1] ?? 'localhost'),
        transport: setup.transport,
        expires_at: new Date(now.getTime() + deps.config.deliveryLifetimeHours * 3_600_000),
      })),
    )
    .execute();
  return admins.length;
}

export interface AlertView {
  id: string;
  kind: string;
  title: string;
  detail: string;
  count: number;
  messageId: string | null;
  firstAt: string;
  lastAt: string;
  dismissedAt: string | null;
}

/** Open alerts first, then the last 50 dismissed ones. */
export async function listAlerts(deps: Deps, actor: Actor): Promise<AlertView[]> {
  requireAdmin(actor);
  const rows = (
    await sql<{
      id: string;
      kind: string;
      title: string;
      detail: string;
      count: number;
      message_id: string | null;
      first_at: Date;
      last_at: Date;
      dismissed_at: Date | null;
    }>`
      (SELECT * FROM admin_alerts WHERE org_id = ${actor.orgId} AND dismissed_at IS NULL ORDER BY last_at DESC LIMIT 200)
      UNION ALL
      (SELECT * FROM admin_alerts WHERE org_id = ${actor.orgId} AND dismissed_at IS NOT NULL ORDER BY dismissed_at DESC LIMIT 50)`.execute(
      deps.db,
    )
  ).rows;
  const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    title: r.title,
    detail: r.detail,
    count: r.count,
    messageId: r.message_id,
    firstAt: iso(r.first_at) as string,
    lastAt: iso(r.last_at) as string,
    dismissedAt: iso(r.dismissed_at),
  }));
}

export async function dismissAlert(deps: Deps, actor: Actor, id: string): Promise<void> {
  requireAdmin(actor);
  const r = await deps.db
    .updateTable('admin_alerts')
    .set({ dismissed_at: deps.clock.now(), dismissed_by: actor.userId })
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .where('dismissed_at', 'is', null)
    .executeTakeFirst();
  if (!r.numUpdatedRows) throw notFound('Open alert');
}
