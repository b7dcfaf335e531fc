// Which orgs have Insights on (orgs.insights_enabled, on by default): their HTML messages get the
// open pixel, tracked links and the trap link when they are sent.
import type { Deps } from '../deps.ts';

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
