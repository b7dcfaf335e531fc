import { sql } from 'kysely';
import type { Db } from '../db/pool.ts';

// Daily mass-email limits (F3.7): per org, per GMT day, from the editable edition_limits table,
// raised by the org's add-on up to the table's ceiling. Mass emails, follow-ups and autoresponders
// all draw on the same daily budget (daily_usage kind 'mass').

export const MASS = 'mass';

/** The GMT day (YYYY-MM-DD) an instant falls in, and the instant that day starts. */
export function gmtDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}
export function gmtDayStart(day: string): Date {
  return new Date(`${day}T00:00:00.000Z`);
}
export function nextGmtDay(day: string): string {
  return gmtDay(new Date(gmtDayStart(day).getTime() + 86_400_000));
}

export async function massDailyLimit(db: Db, orgId: string): Promise<number> {
  const r = await db
    .selectFrom('orgs as o')
    .innerJoin('edition_limits as l', 'l.edition', 'o.edition')
    .select(['l.mass_daily', 'l.mass_addon_max', 'o.mass_email_addon'])
    .where('o.id', '=', orgId)
    .executeTakeFirstOrThrow();
  if (r.mass_daily === 0) return 0; // the edition has no mass email at all
  return Math.max(r.mass_daily, Math.min(r.mass_daily + r.mass_email_addon, r.mass_addon_max));
}

export async function massUsed(db: Db, orgId: string, day: string): Promise<number> {
  const r = await db
    .selectFrom('daily_usage')
    .select('used')
    .where('org_id', '=', orgId)
    .where('day', '=', day)
    .where('kind', '=', MASS)
    .executeTakeFirst();
  return r?.used ?? 0;
}

/**
 * Takes up to `want` sends from one day's budget and returns how many it got. Must run inside a
 * transaction: the usage row is locked, so concurrent reservations (several workers) queue on it
 * and the limit is never passed.
 */
export async function reserveMass(trx: Db, orgId: string, day: string, want: number, limit: number) {
  if (want <= 0 || limit <= 0) return 0;
  await sql`INSERT INTO daily_usage (org_id, day, kind, used) VALUES (${orgId}, ${day}, ${MASS}, 0)
    ON CONFLICT DO NOTHING`.execute(trx);
  const row = (
    await sql<{ used: number }>`SELECT used FROM daily_usage
      WHERE org_id = ${orgId} AND day = ${day} AND kind = ${MASS} FOR UPDATE`.execute(trx)
  ).rows[0];
  const take = Math.max(0, Math.min(want, limit - row.used));
  if (take > 0)
    await sql`UPDATE daily_usage SET used = used + ${take}
      WHERE org_id = ${orgId} AND day = ${day} AND kind = ${MASS}`.execute(trx);
  return take;
}

/** Gives back sends that were reserved but will not go out (a stop or delete before sending). */
export async function releaseMass(trx: Db, orgId: string, day: string, n: number) {
  if (n <= 0) return;
  await sql`UPDATE daily_usage SET used = greatest(0, used - ${n})
    WHERE org_id = ${orgId} AND day = ${day} AND kind = ${MASS}`.execute(trx);
}
