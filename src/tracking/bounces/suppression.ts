import { sql } from 'kysely';
import type { Actor } from '../../crm/access.ts';
import { requireAdmin } from '../../crm/access.ts';
import type { Db } from '../../db/pool.ts';
import type { SuppressionReason } from '../../db/schema.ts';
import type { Deps } from '../../deps.ts';
import { AppError, invalid, notFound } from '../../errors.ts';

// The org's suppression list, graded (issue 5): a hard bounce or a complaint suppresses at once;
// soft bounces only once 3 of the last 5 sends to the address bounced soft over more than a week;
// policy bounces never (the sender's problem: admins are alerted instead, see alerts.ts). An
// address that later writes in is reconsidered: bounce suppressions are lifted, complaints,
// unsubscribes and manual entries stay. Every change is written to suppression_history.

/**
 * A stronger reason replaces a weaker one, never the reverse: a complaint after a soft bounce must
 * not be lifted when the address writes in, and a bounce never downgrades an unsubscribe.
 */
export const REASON_RANK: Record<SuppressionReason, number> = {
  soft_bounce: 1,
  hard_bounce: 2,
  manual: 3,
  unsubscribe: 4,
  complaint: 5,
};
const rankOf = (col: string) =>
  sql.raw(
    `CASE ${col} ${Object.entries(REASON_RANK)
      .map(([r, n]) => `WHEN '${r}' THEN ${n}`)
      .join(' ')} ELSE 0 END`,
  );
const RANK_OF_STORED = rankOf('sp.reason');
const RANK_OF_EXCLUDED = rankOf('EXCLUDED.reason');
/** Reasons that an address writing in lifts: the evidence was that mail did not reach it. */
const LIFTABLE: SuppressionReason[] = ['soft_bounce', 'hard_bounce'];

export const SOFT_LIMIT = 3;
export const SOFT_WINDOW_SENDS = 5;
export const SOFT_SPAN_MS = 7 * 24 * 3_600_000;

export interface SuppressInput {
  orgId: string;
  email: string;
  reason: SuppressionReason;
  messageId?: string | null;
  detail?: string | null;
  userId?: string | null;
  at?: Date;
}

/**
 * Puts an address on the list, or raises its reason; returns true when something changed.
 * Idempotent: the same or a weaker reason again is a no-op.
 */
export async function suppress(db: Db, s: SuppressInput): Promise<boolean> {
  return (await suppressMany(db, [s])).length > 0;
}

/**
 * suppress for many addresses in two statements (a batch of bounces from a mass send). Returns the
 * "org email" keys that changed. The strongest reason wins when an address comes twice.
 */
export async function suppressMany(db: Db, list: readonly SuppressInput[]): Promise<string[]> {
  const best = new Map<string, SuppressInput & { email: string; at: Date }>();
  for (const s of list) {
    const email = s.email.trim().toLowerCase();
    const key = `${s.orgId} ${email}`;
    const had = best.get(key);
    if (!had || REASON_RANK[s.reason] > REASON_RANK[had.reason])
      best.set(key, { ...s, email, at: s.at ?? new Date() });
  }
  const rows = [...best.values()];
  if (!rows.length) return [];
  const col = <T>(f: (r: (typeof rows)[number]) => T) => rows.map(f);
  const changed = (
    await sql<{
      org_id: string;
      email: string;
      reason: SuppressionReason;
      detail: string | null;
      created_by: string | null;
      created_at: Date;
    }>`
      INSERT INTO suppressions AS sp (org_id, email, reason, message_id, detail, created_by, created_at)
      SELECT * FROM unnest(${col((r) => r.orgId)}::uuid[], ${col((r) => r.email)}::text[], ${col((r) => r.reason)}::text[],
        ${col((r) => r.messageId ?? null)}::uuid[], ${col((r) => r.detail ?? null)}::text[],
        ${col((r) => r.userId ?? null)}::uuid[], ${col((r) => r.at.toISOString())}::timestamptz[])
      ON CONFLICT (org_id, email) DO UPDATE SET reason = EXCLUDED.reason, message_id = EXCLUDED.message_id,
        detail = EXCLUDED.detail, created_by = EXCLUDED.created_by, created_at = EXCLUDED.created_at
      WHERE ${RANK_OF_STORED} < ${RANK_OF_EXCLUDED}
      RETURNING sp.org_id, sp.email, sp.reason, sp.detail, sp.created_by, sp.created_at`.execute(db)
  ).rows;
  if (!changed.length) return [];
  await db
    .insertInto('suppression_history')
    .values(
      changed.map((c) => ({
        org_id: c.org_id,
        email: c.email,
        action: 'added' as const,
        reason: c.reason,
        detail: c.detail,
        user_id: c.created_by,
        at: c.created_at,
      })),
    )
    .execute();
  return changed.map((c) => `${c.org_id} ${c.email}`);
}

/**
 * After a soft bounce: suppresses the address when SOFT_LIMIT of its last SOFT_WINDOW_SENDS sends
 * bounced soft and those bounces span more than a week (a full mailbox for a day is not a dead
 * address). Counting starts over after the suppression was lifted. Returns true when it suppressed.
 */
export async function gradeSoftBounce(
  db: Db,
  orgId: string,
  address: string,
  messageId: string,
  at: Date,
): Promise<boolean> {
  const email = address.trim().toLowerCase();
  // The sends to the address: its soft-bounced messages (a small partial index) and the other
  // messages of the same records (messages_record_idx); no scan of the org's messages.
  const r = (
    await sql<{ soft: number; first: Date | null; last: Date | null }>`
      WITH soft AS (
        SELECT id, record_id FROM messages
        WHERE org_id = ${orgId} AND lower(to_address) = ${email} AND bounce_kind = 'soft'
      ), lifted AS (
        SELECT max(at) AS at FROM suppression_history
        WHERE org_id = ${orgId} AND email = ${email} AND action = 'removed'
      ), recent AS (
        SELECT m.bounce_kind, m.bounced_at FROM messages m
        WHERE m.org_id = ${orgId} AND lower(m.to_address) = ${email}
          AND (m.id IN (SELECT id FROM soft)
            OR m.record_id IN (SELECT record_id FROM soft WHERE record_id IS NOT NULL))
          AND (m.sent_at IS NOT NULL OR m.bounced_at IS NOT NULL)
          AND coalesce(m.sent_at, m.bounced_at) > coalesce((SELECT at FROM lifted), '-infinity')
        ORDER BY coalesce(m.sent_at, m.bounced_at) DESC
        LIMIT ${SOFT_WINDOW_SENDS}
      )
      SELECT count(*) FILTER (WHERE bounce_kind = 'soft')::int AS soft,
        min(bounced_at) FILTER (WHERE bounce_kind = 'soft') AS first,
        max(bounced_at) FILTER (WHERE bounce_kind = 'soft') AS last
      FROM recent`.execute(db)
  ).rows[0];
  if (!r || r.soft < SOFT_LIMIT || !r.first || !r.last) return false;
  if (new Date(r.last).getTime() - new Date(r.first).getTime() <= SOFT_SPAN_MS) return false;
  return suppress(db, {
    orgId,
    email,
    reason: 'soft_bounce',
    messageId,
    detail: `${r.soft} of the last ${SOFT_WINDOW_SENDS} sends bounced soft between ${new Date(r.first).toISOString().slice(0, 10)} and ${new Date(r.last).toISOString().slice(0, 10)}`,
    at,
  });
}

/**
 * An address that wrote in (issue 6 calls this for each received email): a bounce suppression is
 * lifted, since mail evidently reaches it again; complaints, unsubscribes and manual entries stay.
 * Returns the reason lifted, or null. Runs in the caller's transaction when deps.db is one.
 */
export async function reconsiderAddress(
  deps: Pick<Deps, 'db' | 'clock' | 'log'>,
  orgId: string,
  address: string,
): Promise<SuppressionReason | null> {
  const email = address.trim().toLowerCase();
  const at = deps.clock.now();
  const run = (fn: (trx: Db) => Promise<SuppressionReason | null>) =>
    deps.db.isTransaction ? fn(deps.db) : deps.db.transaction().execute(fn);
  return run(async (trx) => {
    const gone = await trx
      .deleteFrom('suppressions')
      .where('org_id', '=', orgId)
      .where('email', '=', email)
      .where('reason', 'in', LIFTABLE)
      .returning(['reason'])
      .executeTakeFirst();
    if (!gone) return null;
    await trx
      .insertInto('suppression_history')
      .values({
        org_id: orgId,
        email,
        action: 'removed',
        reason: gone.reason,
        detail: 'The address wrote in',
        at,
      })
      .execute();
    deps.log.info({ orgId, reason: gone.reason }, 'suppression lifted: the address wrote in');
    return gone.reason;
  });
}

// ---------------------------------------------------------------------------------------------
// The admin API

const EMAIL = /^[^@\s<>(),;:"]+@[^@\s<>(),;:"]+\.[^@\s<>(),;:"]+$/;

export interface SuppressionView {
  email: string;
  reason: SuppressionReason;
  detail: string | null;
  messageId: string | null;
  createdAt: string;
  createdBy: string | null;
}

export async function listSuppressions(
  deps: Deps,
  actor: Actor,
  q: { search?: string; reason?: SuppressionReason; limit?: number; after?: string },
): Promise<{ items: SuppressionView[]; next: string | null; total: number }> {
  requireAdmin(actor);
  const limit = Math.min(Math.max(Math.trunc(q.limit ?? 50), 1), 200);
  // The cursor is the last row's (created_at, email): stable while rows are added at the top.
  let after: { at: string; email: string } | null = null;
  if (q.after) {
    try {
      const [at, email] = JSON.parse(Buffer.from(q.after, 'base64url').toString('utf8')) as string[];
      if (typeof at !== 'string' || typeof email !== 'string' || Number.isNaN(Date.parse(at))) throw 0;
      after = { at, email };
    } catch {
      throw invalid('The page cursor is not valid', [{ path: 'after', message: 'invalid cursor' }]);
    }
  }
  const search = q.search?.trim().toLowerCase();
  const pattern = search ? `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : null;
  const where = sql.join(
    [
      sql`sp.org_id = ${actor.orgId}`,
      ...(pattern ? [sql`sp.email LIKE ${pattern}`] : []),
      ...(q.reason ? [sql`sp.reason = ${q.reason}`] : []),
    ],
    sql` AND `,
  );
  const rows = (
    await sql<{
      email: string;
      reason: SuppressionReason;
      detail: string | null;
      message_id: string | null;
      created_at: Date;
      created_by_name: string | null;
    }>`
      SELECT sp.email, sp.reason, sp.detail, sp.message_id, sp.created_at, u.name AS created_by_name
      FROM suppressions sp LEFT JOIN users u ON u.id = sp.created_by AND u.org_id = sp.org_id
      WHERE ${where} ${after ? sql`AND (sp.created_at, sp.email) < (${after.at}::timestamptz, ${after.email})` : sql``}
      ORDER BY sp.created_at DESC, sp.email DESC
      LIMIT ${limit + 1}`.execute(deps.db)
  ).rows;
  const total = (
    await sql<{ n: number }>`SELECT count(*)::int AS n FROM suppressions sp WHERE ${where}`.execute(deps.db)
  ).rows[0].n;
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return {
    items: items.map((r) => ({
      email: r.email,
      reason: r.reason,
      detail: r.detail,
      messageId: r.message_id,
      createdAt: new Date(r.created_at).toISOString(),
      createdBy: r.created_by_name,
    })),
    next:
      rows.length > limit && last
        ? Buffer.from(JSON.stringify([new Date(last.created_at).toISOString(), last.email])).toString(
            'base64url',
          )
        : null,
    total,
  };
}

export async function addSuppression(
  deps: Deps,
  actor: Actor,
  input: { email: string; note?: string | null },
): Promise<{ email: string; reason: SuppressionReason; added: boolean }> {
  requireAdmin(actor);
  const email = input.email.trim().toLowerCase();
  if (!EMAIL.test(email) || email.length > 320)
    throw invalid('Enter a valid email address', [{ path: 'email', message: 'invalid address' }]);
  const note = input.note?.trim().slice(0, 500) || null;
  return deps.db.transaction().execute(async (trx) => {
    const added = await suppress(trx, {
      orgId: actor.orgId,
      email,
      reason: 'manual',
      detail: note,
      userId: actor.userId,
      at: deps.clock.now(),
    });
    const row = await trx
      .selectFrom('suppressions')
      .select('reason')
      .where('org_id', '=', actor.orgId)
      .where('email', '=', email)
      .executeTakeFirstOrThrow();
    return { email, reason: row.reason, added };
  });
}

/**
 * Takes an address off the list. Unsubscribes and complaints are the person's own wish (and the
 * law's): removing one needs `force`, so that it is never done by a slip.
 */
export async function removeSuppression(
  deps: Deps,
  actor: Actor,
  address: string,
  opts: { force?: boolean } = {},
): Promise<void> {
  requireAdmin(actor);
  const email = address.trim().toLowerCase();
  await deps.db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('suppressions')
      .select('reason')
      .where('org_id', '=', actor.orgId)
      .where('email', '=', email)
      .forUpdate()
      .executeTakeFirst();
    if (!row) throw notFound('Suppression');
    if ((row.reason === 'unsubscribe' || row.reason === 'complaint') && !opts.force)
      throw new AppError(
        'conflict',
        row.reason === 'unsubscribe'
          ? 'This person unsubscribed: remove it only with their renewed consent (confirm to remove)'
          : 'This person reported your email as spam: remove it only with their renewed consent (confirm to remove)',
      );
    await trx
      .deleteFrom('suppressions')
      .where('org_id', '=', actor.orgId)
      .where('email', '=', email)
      .execute();
    await trx
      .insertInto('suppression_history')
      .values({
        org_id: actor.orgId,
        email,
        action: 'removed',
        reason: row.reason,
        detail: 'Removed by an administrator',
        user_id: actor.userId,
        at: deps.clock.now(),
      })
      .execute();
  });
}

export async function suppressionHistory(deps: Deps, actor: Actor, address: string) {
  requireAdmin(actor);
  const rows = await deps.db
    .selectFrom('suppression_history as h')
    .leftJoin('users as u', (j) => j.onRef('u.id', '=', 'h.user_id').onRef('u.org_id', '=', 'h.org_id'))
    .select(['h.action', 'h.reason', 'h.detail', 'h.at', 'u.name as user'])
    .where('h.org_id', '=', actor.orgId)
    .where('h.email', '=', address.trim().toLowerCase())
    .orderBy('h.at', 'desc')
    .orderBy('h.id', 'desc')
    .limit(100)
    .execute();
  return rows.map((r) => ({ ...r, at: new Date(r.at).toISOString() }));
}
