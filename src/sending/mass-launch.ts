import { type Expression, type SqlBool, sql } from 'kysely';
import { actorForUser, can, compileCriteria, scope, validateCriteria } from '../crm/index.ts';
import type { AddressChoice, FollowupAudience } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { resolveAudience } from './audience.ts';
import { gmtDay, gmtDayStart, massDailyLimit, nextGmtDay, releaseMass, reserveMass } from './mass-limits.ts';
import { insertMessagesSql, senderFor, sendingSetup } from './queue-rows.ts';
import { newMessageIdHeader } from './verp.ts';

// The launch of a due mass email or follow-up: resolve its audience once, write one queued
// message row per recipient and one exclusion row per record left out (one statement), then put
// rows in the queue day by day within the daily limit. Workers call launchDue; a row lock on the
// mass email (SKIP LOCKED) makes each launch happen exactly once however many workers race, and
// the launch re-reads the row, so an edit or stop made before it simply wins.

// opened_at / clicked_at are set by people's opens and clicks only (machine ones are counted apart),
// and "not opened" can only be known of a tracked message.
const FOLLOWUP_FILTER: Record<FollowupAudience, string> = {
  received: `m.status = 'sent' AND m.bounced_at IS NULL`,
  opened: `m.opened_at IS NOT NULL`,
  not_opened: `m.status = 'sent' AND m.tracked AND m.bounced_at IS NULL AND m.opened_at IS NULL`,
  clicked: `m.clicked_at IS NOT NULL`,
  not_clicked: `m.status = 'sent' AND m.tracked AND m.bounced_at IS NULL AND m.clicked_at IS NULL`,
};

const lifetimeMs = (deps: Deps) => deps.config.deliveryLifetimeHours * 3_600_000;

/** Launches every due mass email and follow-up; returns how many were launched. */
export async function launchDue(deps: Deps, opts: { orgId?: string } = {}): Promise<number> {
  await finishDone(deps, opts.orgId);
  await guardBounces(deps, opts.orgId);
  let launched = 0;
  for (let i = 0; i < 100; i++) {
    const did = await deps.db.transaction().execute((trx) => launchOne({ ...deps, db: trx }, opts.orgId));
    if (!did) break;
    launched++;
  }
  return launched;
}

async function launchOne(deps: Deps, orgId?: string): Promise<boolean> {
  const now = deps.clock.now();
  // Follow-ups timed "N days after the previous send" get their time once that send has started.
  await sql`
    UPDATE mass_emails f SET send_at = prev.started_at + make_interval(days => f.followup_days), updated_at = now()
    FROM mass_emails prev
    WHERE f.send_at IS NULL AND f.followup_days IS NOT NULL AND f.status = 'scheduled'
      AND prev.started_at IS NOT NULL
      AND ((f.position = 1 AND prev.id = f.parent_id) OR (prev.parent_id = f.parent_id AND prev.position = f.position - 1))`.execute(
    deps.db,
  );
  const m = (
    await sql<{
      id: string;
      org_id: string;
      module_id: string;
      parent_id: string | null;
      created_by: string;
      template_id: string;
      from_choice: AddressChoice;
      reply_to_choice: AddressChoice | null;
      audience: unknown;
      followup_audience: FollowupAudience | null;
      ignore_criteria: unknown;
      allow_wait: boolean;
      module: string;
    }>`
      SELECT me.*, mo.api_name AS module FROM mass_emails me JOIN modules mo ON mo.id = me.module_id
      WHERE me.started_at IS NULL AND me.send_at <= ${now} ${orgId ? sql`AND me.org_id = ${orgId}` : sql``}
        AND (me.status = 'sending' OR (me.status = 'scheduled'
          AND (me.parent_id IS NULL OR EXISTS (SELECT 1 FROM mass_emails p WHERE p.id = me.parent_id AND p.started_at IS NOT NULL))))
      ORDER BY me.send_at
      LIMIT 1
      FOR UPDATE OF me SKIP LOCKED`.execute(deps.db)
  ).rows[0];
  if (!m) return false;
  const stop = async (reason: string) => {
    await deps.db
      .updateTable('mass_emails')
      .set({
        status: 'stopped',
        stop_reason: reason,
        schedule_version: sql`schedule_version + 1`,
        updated_at: now,
      })
      .where('id', '=', m.id)
      .execute();
    deps.log.warn({ massEmailId: m.id, reason }, 'mass email stopped at launch');
  };
  const actor = await actorForUser(deps, { userId: m.created_by });
  if (!actor || !can(actor, m.module, 'mass_email')) {
    await stop('creator_cannot_send');
    return true;
  }
  const extra: Expression<SqlBool>[] = [];
  if (m.parent_id) {
    const cond = sql.raw(FOLLOWUP_FILTER[m.followup_audience ?? 'received']);
    extra.push(
      sql<SqlBool>`r.id IN (SELECT m.record_id FROM messages m WHERE m.mass_email_id = ${m.parent_id} AND m.record_id IS NOT NULL AND ${cond})`,
    );
    if (m.ignore_criteria) {
      const s = await scope(deps, actor, m.module);
      extra.push(
        sql<SqlBool>`NOT coalesce(${compileCriteria(validateCriteria(m.ignore_criteria, s.ctx), s.ctx)}, false)`,
      );
    }
  }
  let audience: Awaited<ReturnType<typeof resolveAudience>>;
  try {
    audience = await resolveAudience(
      deps,
      actor,
      m.module,
      m.parent_id ? null : (m.audience as Parameters<typeof resolveAudience>[3]),
      extra,
    );
  } catch (err) {
    // The view was deleted, a field of the criteria was removed …: tell the creator, send nothing.
    await stop(`audience_invalid: ${(err as Error).message}`.slice(0, 500));
    return true;
  }
  const t = await deps.db
    .selectFrom('templates as t')
    .innerJoin('template_versions as v', (j) =>
      j.onRef('v.template_id', '=', 't.id').onRef('v.version', '=', 't.current_version'),
    )
    .select(['t.id', 't.current_version', 'v.subject', 'v.from_address', 'v.from_name', 'v.reply_to'])
    .where('t.id', '=', m.template_id)
    .where('t.org_id', '=', m.org_id)
    .where('t.deleted_at', 'is', null)
    .executeTakeFirst();
  if (!t) {
    await stop('template_deleted');
    return true;
  }
  const sender = await senderFor(deps, m.org_id, m.created_by, m.from_choice, m.reply_to_choice, t);
  if (!sender) {
    await stop('from_address_unavailable');
    return true;
  }
  const setup = await sendingSetup(deps, m.org_id);
  const counts = (
    await sql<{ recipients: number; excluded: number }>`
      WITH aud AS MATERIALIZED (${audience.query}),
      ins AS (
        ${insertMessagesSql({
          orgId: m.org_id,
          kind: 'mass',
          moduleId: m.module_id,
          template: t,
          senderId: m.created_by,
          sender,
          setup,
          link: { column: 'mass_email_id', id: m.id },
          // Queued for now; this transaction parks whatever today's limit has no room for before
          // it commits, so no worker ever sees a row the limit does not cover.
          when: { at: now, expiresAt: new Date(now.getTime() + lifetimeMs(deps)) },
        })}
        RETURNING 1
      ), exc AS (
        INSERT INTO mass_email_exclusions (mass_email_id, org_id, record_id, email, reason)
        SELECT ${m.id}, ${m.org_id}, record_id, email, reason FROM aud WHERE reason IS NOT NULL
        ON CONFLICT DO NOTHING
        RETURNING 1
      )
      SELECT (SELECT count(*) FROM ins)::int AS recipients, (SELECT count(*) FROM exc)::int AS excluded`.execute(
      deps.db,
    )
  ).rows[0];
  await deps.db
    .updateTable('mass_emails')
    .set({
      status: 'sending',
      started_at: now,
      recipients: counts.recipients,
      excluded: counts.excluded,
      updated_at: now,
    })
    .where('id', '=', m.id)
    .execute();
  const today = await reserveMass(
    deps.db,
    m.org_id,
    gmtDay(now),
    counts.recipients,
    await massDailyLimit(deps.db, m.org_id),
  );
  let left = 0;
  if (today < counts.recipients) {
    await sql`UPDATE messages SET next_attempt_at = 'infinity', expires_at = 'infinity'
      WHERE id IN (SELECT id FROM messages WHERE mass_email_id = ${m.id} ORDER BY id OFFSET ${today})`.execute(
      deps.db,
    );
    left = await queueParked(deps, m.org_id, m.id, m.allow_wait, now);
  }
  if (left > 0 && !m.allow_wait) await stop('daily_limit_reached');
  if (counts.recipients === 0)
    await deps.db
      .updateTable('mass_emails')
      .set({ status: 'sent', finished_at: now })
      .where('id', '=', m.id)
      .execute();
  await sql`SELECT pg_notify('parley_delivery', ${m.org_id})`.execute(deps.db);
  return true;
}

// The bounce-rate guard: a send whose first BOUNCE_GUARD_MIN+ outcomes include more than
// BOUNCE_GUARD_RATE hard bounces (a 5xx at sending, or a hard DSN later) is stopped, so a bad list
// does not ruin the sender's reputation; its creator is told by email and sees the reason.
export const BOUNCE_GUARD_MIN = 500;
export const BOUNCE_GUARD_RATE = 0.05;

/**
 * Pauses the sends past the threshold; answers their ids. One transaction: the row locks hold until
 * the send is stopped, its queued rows held and its creator told, so two processes never both pause
 * one send, and a retry after a lost answer finds it all done or none of it.
 */
export function guardBounces(deps: Deps, orgId?: string): Promise<string[]> {
  return deps.db.transaction().execute((trx) => pauseBouncing({ ...deps, db: trx }, orgId));
}

async function pauseBouncing(deps: Deps, orgId?: string): Promise<string[]> {
  const hit = (
    await sql<{ id: string; org_id: string; created_by: string; name: string; done: number; hard: number }>`
      SELECT me.id, me.org_id, me.created_by, me.name, c.done, c.hard FROM mass_emails me
      CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE m.status IN ('sent', 'failed'))::int AS done,
          count(*) FILTER (WHERE m.bounce_kind = 'hard' OR (m.status = 'failed' AND m.smtp_code >= 500))::int AS hard
        FROM messages m WHERE m.mass_email_id = me.id
      ) c
      WHERE me.status = 'sending' ${orgId ? sql`AND me.org_id = ${orgId}` : sql``} AND c.done >= ${BOUNCE_GUARD_MIN} AND c.hard > c.done * ${BOUNCE_GUARD_RATE}::float8
      FOR UPDATE OF me SKIP LOCKED`.execute(deps.db)
  ).rows;
  for (const m of hit) {
    await deps.db
      .updateTable('mass_emails')
      .set({
        status: 'stopped',
        stop_reason: 'bounce_rate_too_high',
        schedule_version: sql`schedule_version + 1`,
        updated_at: deps.clock.now(),
      })
      .where('id', '=', m.id)
      .execute();
    const held = await holdQueued(deps.db, m.org_id, m.id);
    const pct = ((100 * m.hard) / m.done).toFixed(1);
    await notifyCreator(
      deps,
      m,
      `Mass email "${m.name}" was paused: too many hard bounces`,
      `Parley paused the mass email "${m.name}": ${m.hard} of its first ${m.done} messages (${pct} %) bounced hard, ` +
        `above the ${BOUNCE_GUARD_RATE * 100} % that mailbox providers tolerate. ${held} messages were not sent. ` +
        'Clean the list (remove the addresses that bounced), then start it again from the Stopped folder.',
    );
    deps.log.warn(
      { massEmailId: m.id, hard: m.hard, done: m.done },
      'mass email paused by the bounce-rate guard',
    );
  }
  return hit.map((m) => m.id);
}

/** A plain system email to the creator of a mass email (through the normal queue). */
async function notifyCreator(
  deps: Deps,
  m: { org_id: string; created_by: string },
  subject: string,
  text: string,
) {
  const u = await deps.db
    .selectFrom('users')
    .select(['email', 'name'])
    .where('id', '=', m.created_by)
    .executeTakeFirst();
  if (!u) return;
  const setup = await sendingSetup(deps, m.org_id);
  const domain = setup.domain ?? u.email.split('@')[1] ?? 'localhost';
  const now = deps.clock.now();
  await deps.db
    .insertInto('messages')
    .values({
      org_id: m.org_id,
      kind: 'system',
      from_address: u.email,
      from_name: 'Parley',
      to_address: u.email,
      to_name: u.name,
      subject,
      text,
      message_id_header: newMessageIdHeader(domain),
      transport: setup.transport,
      expires_at: new Date(now.getTime() + lifetimeMs(deps)),
    })
    .execute();
}

/**
 * Parks a mass email's unsent rows (they are never claimed while parked) and gives their
 * reserved sends back to the days they were reserved on.
 */
export async function holdQueued(trx: Deps['db'], orgId: string, massId: string) {
  const freed = (
    await sql<{ day: string; n: number }>`
      WITH old AS (
        SELECT id, next_attempt_at AS was FROM messages
        WHERE mass_email_id = ${massId} AND org_id = ${orgId} AND status = 'queued' AND next_attempt_at <> 'infinity'
        FOR UPDATE
      ), held AS (
        UPDATE messages m SET next_attempt_at = 'infinity', updated_at = now()
        FROM old WHERE m.id = old.id AND m.status = 'queued'
        RETURNING old.was
      )
      SELECT to_char(was AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*)::int AS n FROM held GROUP BY 1`.execute(
      trx,
    )
  ).rows;
  for (const f of freed) await releaseMass(trx, orgId, f.day, f.n);
  return freed.reduce((n, f) => n + f.n, 0);
}

/** A send is over when none of its rows can still go out (parked rows waiting for a day count as pending). */
export async function finishDone(deps: Deps, orgId?: string) {
  await sql`
    UPDATE mass_emails me SET status = 'sent', finished_at = now(), updated_at = now()
    WHERE me.status = 'sending' AND me.started_at IS NOT NULL ${orgId ? sql`AND me.org_id = ${orgId}` : sql``}
      AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.mass_email_id = me.id AND m.status IN ('queued', 'sending', 'deferred'))`.execute(
    deps.db,
  );
}

/**
 * Moves parked rows of a mass email into the queue, within each GMT day's remaining limit: today's
 * share at once, later days' shares (if the remainder may wait) at the start of their day.
 * Returns how many rows stay parked.
 */
export async function queueParked(deps: Deps, orgId: string, massId: string, allowWait: boolean, now: Date) {
  const limit = await massDailyLimit(deps.db, orgId);
  let left = Number(
    (
      await sql<{ n: number }>`SELECT count(*)::int AS n FROM messages
        WHERE mass_email_id = ${massId} AND org_id = ${orgId} AND status = 'queued' AND next_attempt_at = 'infinity'`.execute(
        deps.db,
      )
    ).rows[0].n,
  );
  let day = gmtDay(now);
  for (let guard = 0; left > 0 && guard < 3660; guard++) {
    const got = await reserveMass(deps.db, orgId, day, left, limit);
    if (got > 0) {
      const at = day === gmtDay(now) ? now : gmtDayStart(day);
      await sql`UPDATE messages SET next_attempt_at = ${at}, expires_at = ${new Date(at.getTime() + lifetimeMs(deps))},
          updated_at = now()
        WHERE id IN (SELECT id FROM messages WHERE mass_email_id = ${massId} AND org_id = ${orgId} AND status = 'queued'
          AND next_attempt_at = 'infinity' ORDER BY id LIMIT ${got})`.execute(deps.db);
      left -= got;
    }
    if (!allowWait || limit === 0) break;
    day = nextGmtDay(day);
  }
  return left;
}
