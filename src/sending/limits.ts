import { sql } from 'kysely';
import type { Edition } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { AppError } from '../errors.ts';
import { gmtDay, gmtDayStart, nextGmtDay } from './mass-limits.ts';

// Daily individual-email limits (F3.7), per org and GMT day, from the editable edition_limits table:
// per-user × active confirmed users while the org has at most `individual_user_cap` of them (Free: 50
// for up to 4 users), a flat `individual_flat_over_cap` above that (Free: 200); paid editions have no
// cap (300 × users). The check and the count are one statement, so concurrent sends never pass it.

export const INDIVIDUAL = 'individual';

export interface EditionLimitRow {
  individual_per_user: number;
  individual_user_cap: number | null;
  individual_flat_over_cap: number | null;
}

/** The pure rule: the day's limit for an edition's row and a number of active confirmed users. */
export function individualLimit(row: EditionLimitRow, users: number): number {
  if (row.individual_user_cap !== null && users > row.individual_user_cap)
    return row.individual_flat_over_cap ?? row.individual_per_user * row.individual_user_cap;
  return row.individual_per_user * users;
}

export interface Usage {
  edition: Edition;
  day: string;
  used: number;
  limit: number;
  activeUsers: number;
  resetsAt: string;
}

export async function individualUsage(deps: Deps, orgId: string): Promise<Usage> {
  const now = deps.clock.now();
  const day = gmtDay(now);
  const r = await sql<EditionLimitRow & { edition: Edition; users: number; used: number | null }>`
    SELECT o.edition, l.individual_per_user, l.individual_user_cap, l.individual_flat_over_cap,
      (SELECT count(*)::int FROM users u WHERE u.org_id = o.id AND u.status IN ('active', 'confirmed')) AS users,
      (SELECT used FROM daily_usage d WHERE d.org_id = o.id AND d.day = ${day} AND d.kind = ${INDIVIDUAL}) AS used
    FROM orgs o JOIN edition_limits l ON l.edition = o.edition WHERE o.id = ${orgId}`.execute(deps.db);
  const row = r.rows[0];
  return {
    edition: row.edition,
    day,
    used: row.used ?? 0,
    limit: individualLimit(row, row.users),
    activeUsers: row.users,
    resetsAt: gmtDayStart(nextGmtDay(day)).toISOString(),
  };
}

/**
 * Counts one individual email against today's limit, or refuses it with the numbers. Pass the
 * transaction that writes the message, so a failed write gives the count back.
 */
export async function consumeIndividual(deps: Deps, orgId: string, db = deps.db): Promise<void> {
  const u = await individualUsage({ ...deps, db }, orgId); // on the caller's connection: no second one per send
  const r = await sql<{ used: number }>`
    INSERT INTO daily_usage (org_id, day, kind, used) SELECT ${orgId}, ${u.day}, ${INDIVIDUAL}, 1 WHERE ${u.limit} >= 1
    ON CONFLICT (org_id, day, kind) DO UPDATE SET used = daily_usage.used + 1
      WHERE daily_usage.used + 1 <= ${u.limit}
    RETURNING used`.execute(db);
  if (r.rows.length === 0)
    throw new AppError(
      'limit_exceeded',
      `Your organization has sent its ${u.limit} individual emails for today (GMT day ${u.day}); the limit resets at ${u.resetsAt}`,
      [
        { path: 'used', message: String(Math.max(u.used, u.limit)) },
        { path: 'limit', message: String(u.limit) },
        { path: 'resetsAt', message: u.resetsAt },
      ],
    );
}
