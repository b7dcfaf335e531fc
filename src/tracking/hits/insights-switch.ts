// The org's Insights switch (issue 5): on by default; off means nothing is tracked. New sends read
// orgs.insights_enabled to decide whether to add the pixel and rewrite links; the hit writer drops
// hits of orgs that have it off, so turning it off also stops recording hits of mail already sent.
import type { Actor } from '../../crm/access.ts';
import { requireAdmin } from '../../crm/access.ts';
import type { Deps } from '../../deps.ts';

export async function insightsEnabled(deps: Deps, actor: Actor): Promise<boolean> {
  requireAdmin(actor);
  const o = await deps.db
    .selectFrom('orgs')
    .select('insights_enabled')
    .where('id', '=', actor.orgId)
    .executeTakeFirstOrThrow();
  return o.insights_enabled;
}

export async function setInsightsEnabled(deps: Deps, actor: Actor, enabled: boolean): Promise<boolean> {
  requireAdmin(actor);
  const o = await deps.db
    .updateTable('orgs')
    .set({ insights_enabled: enabled })
    .where('id', '=', actor.orgId)
    .returning('insights_enabled')
    .executeTakeFirstOrThrow();
  deps.log.info({ org: actor.orgId, by: actor.userId, enabled }, 'insights switched');
  return o.insights_enabled;
}

/** Which of these orgs have Insights on: the sender tracks their HTML messages, the hit writer keeps their hits. */
export async function insightsOrgs(deps: Pick<Deps, 'db'>, orgIds: readonly string[]): Promise<Set<string>> {
  if (!orgIds.length) return new Set();
  const rows = await deps.db
    .selectFrom('orgs')
    .select('id')
    .where('id', 'in', [...orgIds])
    .where('insights_enabled', '=', true)
    .execute();
  return new Set(rows.map((r) => r.id));
}
