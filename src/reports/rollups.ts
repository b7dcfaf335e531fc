// Report rollups (0014_reports.sql), kept incrementally. Two cursors feed them:
// - 'reports:sent' follows messages reaching 'sent' by (sent_at, id), only as far as the horizon:
//   a moment older than every running writing transaction (and `lagMs` more, for a send time taken
//   before its transaction began), so a send committing late is never jumped over;
// - 'reports:events' follows the email_events feed (as webhooks/feed.ts reads it: (txid, id) order,
//   only transactions older than every running one; ordered by the xid8 column, never its text).
// Each batch's counters and its cursor move commit in one transaction, and a fact counts only when
// it is the first of its kind for its message in feed order (a duplicate event finds its twin), so
// two workers, crashes and replays all count each fact exactly once. The rebuild computes the same
// facts from raw data, up to the cursors, through the same writer (applyFacts).
import { type RawBuilder, sql, type Transaction } from 'kysely';
import type { DB } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { type FeedLoop, readEventFeed, startFeedLoop } from '../webhooks/feed.ts';

export const SENT_CURSOR = 'reports:sent';
export const EVENTS_CURSOR = 'reports:events';

/** Messages that are not users' emails (test sends, system mail) are left out of every report. */
const COUNTED_KINDS = sql`('individual', 'mass', 'autoresponder', 'workflow')`;

type Db = Deps['db'] | Transaction<DB>;

/**
 * Adds facts to the rollups. `facts` selects (org_id, at, user_id, module_id, template_id,
 * template_version, and the ten counters as integers); each fact lands in the 15-minute, the UTC-day
 * and the UTC-month bucket of `at`, at all four levels. Rows are written in key order (no deadlock between a
 * sent pass and an events pass running at once) unless `ordered` is false (the rebuild: alone).
 */
export async function applyFacts(db: Db, facts: RawBuilder<unknown>, ordered = true): Promise<void> {
  await sql`
    WITH f AS (${facts}), f3 AS (
      SELECT org_id, date_bin('15 minutes', at, timestamptz '2000-01-01 00:00+00') AS q,
        user_id, module_id, template_id, template_version,
        sum(sent) AS sent, sum(bounced) AS bounced, sum(tracked) AS tracked,
        sum(bounced_tracked) AS bounced_tracked, sum(opened) AS opened, sum(opened_machine) AS opened_machine,
        sum(clicked) AS clicked, sum(clicked_machine) AS clicked_machine, sum(received) AS received,
        sum(replied) AS replied
      FROM f GROUP BY 1, 2, 3, 4, 5, 6
    ), x AS (
      SELECT f3.org_id, l.level, g.grain,
        CASE g.grain WHEN 'q' THEN f3.q
          WHEN 'd' THEN date_bin('1 day', f3.q, timestamptz '2000-01-01 00:00+00')
          ELSE date_trunc('month', f3.q AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' END AS bucket,
        CASE WHEN l.level IN (1, 3) THEN f3.user_id END AS user_id,
        CASE WHEN l.level >= 2 THEN f3.module_id END AS module_id,
        CASE WHEN l.level >= 2 THEN f3.template_id END AS template_id,
        CASE WHEN l.level >= 2 THEN f3.template_version END AS template_version,
        sum(sent)::bigint AS sent, sum(bounced)::bigint AS bounced, sum(tracked)::bigint AS tracked,
        sum(bounced_tracked)::bigint AS bounced_tracked, sum(opened)::bigint AS opened,
        sum(opened_machine)::bigint AS opened_machine, sum(clicked)::bigint AS clicked,
        sum(clicked_machine)::bigint AS clicked_machine, sum(received)::bigint AS received,
        sum(replied)::bigint AS replied
      FROM f3 CROSS JOIN (VALUES (0::smallint), (1::smallint), (2::smallint), (3::smallint)) AS l(level)
        CROSS JOIN (VALUES ('q'::"char"), ('d'::"char"), ('m'::"char")) AS g(grain)
      GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
    )
    INSERT INTO report_rollups AS r (org_id, level, grain, bucket, user_id, module_id, template_id,
      template_version, sent, bounced, tracked, bounced_tracked, opened, opened_machine, clicked,
      clicked_machine, received, replied)
    SELECT * FROM x
    ${ordered ? sql`ORDER BY org_id, level, grain, bucket, user_id, module_id, template_id, template_version` : sql``}
    ON CONFLICT (org_id, level, grain, bucket, user_id, module_id, template_id, template_version)
    DO UPDATE SET sent = r.sent + excluded.sent, bounced = r.bounced + excluded.bounced,
      tracked = r.tracked + excluded.tracked, bounced_tracked = r.bounced_tracked + excluded.bounced_tracked,
      opened = r.opened + excluded.opened, opened_machine = r.opened_machine + excluded.opened_machine,
      clicked = r.clicked + excluded.clicked, clicked_machine = r.clicked_machine + excluded.clicked_machine,
      received = r.received + excluded.received, replied = r.replied + excluded.replied`.execute(db);
}

// ---- The facts, one definition each for the worker and the rebuild ----

/** A message reaching 'sent': sent, and tracked when it was. */
const sentFacts = (where: RawBuilder<unknown>) => sql`
  SELECT m.org_id, m.sent_at AS at, m.sender_id AS user_id, m.module_id, m.template_id, m.template_version,
    1 AS sent, 0 AS bounced, m.tracked::int AS tracked, 0 AS bounced_tracked, 0 AS opened,
    0 AS opened_machine, 0 AS clicked, 0 AS clicked_machine, 0 AS received, 0 AS replied
  FROM messages m WHERE m.sent_at IS NOT NULL AND m.kind IN ${COUNTED_KINDS} AND ${where}`;

/**
 * Message events, counted in the bucket of the message's send time: a bounce, a human or machine
 * open or click, a reply. `first` says which events count (the first of their kind per message).
 */
const messageEventFacts = (events: RawBuilder<unknown>) => sql`
  SELECT m.org_id, coalesce(m.sent_at, m.created_at) AS at, m.sender_id AS user_id, m.module_id,
    m.template_id, m.template_version, 0 AS sent, e.b AS bounced, 0 AS tracked,
    (e.b = 1 AND m.tracked)::int AS bounced_tracked, e.o AS opened, e.om AS opened_machine,
    e.c AS clicked, e.cm AS clicked_machine, 0 AS received, e.r AS replied
  FROM (${events}) e JOIN messages m ON m.id = e.message_id
  WHERE m.kind IN ${COUNTED_KINDS}`;

/** One email received from a record (per record and mail), for the record's owner and module. */
const receivedFacts = (events: RawBuilder<unknown>) => sql`
  SELECT r.org_id, e.at, r.owner_id AS user_id, r.module_id, NULL::uuid AS template_id,
    NULL::integer AS template_version, 0 AS sent, 0 AS bounced, 0 AS tracked, 0 AS bounced_tracked,
    0 AS opened, 0 AS opened_machine, 0 AS clicked, 0 AS clicked_machine, 1 AS received, 0 AS replied
  FROM (${events}) e JOIN records r ON r.id = e.record_id AND r.org_id = e.org_id`;

// Flags of one event, per message event kind.
const flags = sql`(kind = 'bounced')::int AS b, (kind = 'opened' AND human)::int AS o,
  (kind = 'opened' AND NOT human)::int AS om, (kind = 'clicked' AND human)::int AS c,
  (kind = 'clicked' AND NOT human)::int AS cm, (kind = 'replied')::int AS r`;

/** The facts of a batch of feed events: each counts only if no twin precedes it in feed order. */
function feedFacts(ids: number[]) {
  const batch = sql`SELECT * FROM email_events WHERE id = ANY(${ids}::bigint[])`;
  const messageEvents = sql`
    SELECT e.message_id, ${flags} FROM (${batch}) e
    WHERE e.message_id IS NOT NULL AND e.kind IN ('bounced', 'opened', 'clicked', 'replied')
      AND NOT EXISTS (SELECT 1 FROM email_events p
        WHERE p.message_id = e.message_id AND p.kind = e.kind
          AND (p.human = e.human OR e.kind NOT IN ('opened', 'clicked'))
          AND (p.txid, p.id) < (e.txid, e.id))`;
  const received = sql`
    SELECT e.org_id, e.record_id, e.at FROM (${batch}) e
    WHERE e.kind = 'received' AND e.record_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM email_events p
        WHERE p.org_id = e.org_id AND p.record_id = e.record_id AND p.kind = 'received'
          AND p.data->>'mailId' IS NOT DISTINCT FROM e.data->>'mailId' AND (p.txid, p.id) < (e.txid, e.id))`;
  return sql`${messageEventFacts(messageEvents)} UNION ALL ${receivedFacts(received)}`;
}

// ---- The worker ----

/** The latest send time the sent cursor may pass: older than every running writer, less the lag. */
const horizon = (lagMs: number) => sql`
  least(now(), coalesce((SELECT min(xact_start) FROM pg_stat_activity
    WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()), now()))
  - make_interval(secs => ${lagMs / 1000})`;

/** One batch of messages that reached 'sent'. Returns how many, or -1 when another worker has it. */
export async function sentPass(deps: Deps, opts: { limit?: number; lagMs?: number } = {}): Promise<number> {
  const limit = opts.limit ?? 5000;
  await sql`INSERT INTO feed_cursors (name) VALUES (${SENT_CURSOR}) ON CONFLICT DO NOTHING`.execute(deps.db);
  return deps.db.transaction().execute(async (trx) => {
    const cur = (
      await sql<{ at: string | null; message_id: string | null }>`
        SELECT at::text AS at, message_id FROM feed_cursors WHERE name = ${SENT_CURSOR} FOR UPDATE SKIP LOCKED`.execute(
        trx,
      )
    ).rows[0];
    if (!cur) return -1;
    const rows = (
      await sql<{ id: string; sent_at: string }>`
        SELECT m.id, m.sent_at::text AS sent_at FROM messages m
        WHERE (m.sent_at, m.id) > (${cur.at ?? '-infinity'}::timestamptz, ${cur.message_id ?? '00000000-0000-0000-0000-000000000000'}::uuid)
          AND m.sent_at <= ${horizon(opts.lagMs ?? 30_000)}
        ORDER BY m.sent_at, m.id LIMIT ${limit}`.execute(trx)
    ).rows;
    if (!rows.length) return 0;
    await applyFacts(trx, sentFacts(sql`m.id = ANY(${rows.map((r) => r.id)}::uuid[])`));
    const last = rows[rows.length - 1];
    // As text: a JS Date would drop the microseconds and the last rows would be read again.
    await sql`UPDATE feed_cursors SET at = ${last.sent_at}::timestamptz, message_id = ${last.id}, updated_at = now()
      WHERE name = ${SENT_CURSOR}`.execute(trx);
    return rows.length;
  });
}

/** Counts the facts of a batch of feed events (by id), in the feed reader's transaction. */
export async function applyFeedEvents(trx: Db, ids: number[]): Promise<void> {
  await applyFacts(trx, feedFacts(ids));
}

/** One batch of the email_events feed. */
export function eventsPass(deps: Deps, limit = 2000): Promise<number> {
  return readEventFeed(deps, EVENTS_CURSOR, limit, (trx, events) =>
    applyFeedEvents(
      trx,
      events.map((e) => e.id),
    ),
  );
}

/**
 * The reports worker. On its first run over a database (no cursor yet: a new install, or one
 * upgraded with history) it builds the rollups from raw data, then follows both cursors.
 */
export function startReportsWorker(
  deps: Deps,
  opts: { connectionString: string; isStopping?: () => boolean; pollMs?: number; lagMs?: number },
): FeedLoop {
  let ready = false;
  return startFeedLoop(deps, {
    name: 'reports',
    connectionString: opts.connectionString,
    pollMs: opts.pollMs ?? 2000,
    isStopping: opts.isStopping,
    pass: async () => {
      if (!ready) {
        const has = await sql`SELECT 1 FROM feed_cursors WHERE name = ${SENT_CURSOR}`.execute(deps.db);
        if (!has.rows.length) await rebuildRollups(deps, { lagMs: opts.lagMs });
        ready = true;
      }
      const e = await eventsPass(deps);
      const s = await sentPass(deps, { lagMs: opts.lagMs });
      return e >= 2000 || s >= 5000;
    },
  });
}

// ---- The rebuild ----

/**
 * Recomputes the rollups from raw data (messages and email_events), for one org or all. Both
 * cursors are locked meanwhile (workers wait). A full rebuild first moves the cursors to the newest
 * safe position (so it does the catching up at once); an org's rebuild keeps them, and counts the
 * org's facts up to them, so the workers carry on from there without counting anything twice.
 */
export async function rebuildRollups(
  deps: Deps,
  opts: { orgId?: string; lagMs?: number } = {},
): Promise<{ orgs: number | 'all' }> {
  await sql`INSERT INTO feed_cursors (name) VALUES (${EVENTS_CURSOR}), (${SENT_CURSOR}) ON CONFLICT DO NOTHING`.execute(
    deps.db,
  );
  await deps.db.transaction().execute(async (trx) => {
    await sql`SET LOCAL work_mem = '256MB'`.execute(trx);
    // Always in this order: the events cursor, then the sent cursor.
    await sql`SELECT 1 FROM feed_cursors WHERE name = ${EVENTS_CURSOR} FOR UPDATE`.execute(trx);
    await sql`SELECT 1 FROM feed_cursors WHERE name = ${SENT_CURSOR} FOR UPDATE`.execute(trx);
    if (!opts.orgId) {
      await sql`
        UPDATE feed_cursors c SET txid = n.txid, event_id = n.id, updated_at = now()
        FROM (SELECT txid, id FROM email_events WHERE txid < pg_snapshot_xmin(pg_current_snapshot())
          ORDER BY txid DESC, id DESC LIMIT 1) n
        WHERE c.name = ${EVENTS_CURSOR} AND (n.txid, n.id) > (c.txid, c.event_id)`.execute(trx);
      await sql`
        UPDATE feed_cursors SET at = greatest(coalesce(at, '-infinity'), ${horizon(opts.lagMs ?? 30_000)}),
          message_id = 'ffffffff-ffff-ffff-ffff-ffffffffffff', updated_at = now()
        WHERE name = ${SENT_CURSOR}`.execute(trx);
    }
    const org = opts.orgId ? sql`= ${opts.orgId}::uuid` : sql`IS NOT NULL`;
    await sql`DELETE FROM report_rollups WHERE org_id ${org}`.execute(trx);
    const cur = sql`(SELECT txid, event_id FROM feed_cursors WHERE name = ${EVENTS_CURSOR})`;
    const sentCur = sql`(SELECT at, message_id FROM feed_cursors WHERE name = ${SENT_CURSOR})`;
    const upTo = sql`(e.txid, e.id) <= (SELECT txid, event_id FROM ${cur} c)`;
    const sentUpTo = sql`(m.sent_at IS NOT NULL AND (m.sent_at, m.id) <= (SELECT coalesce(at, '-infinity'),
      coalesce(message_id, '00000000-0000-0000-0000-000000000000') FROM ${sentCur} s))`;
    // The same facts as the worker's, in one pass over the messages: each message's send (when the
    // sent cursor has passed it) and the first of each kind of its events (up to the events cursor).
    const events = sql`
      SELECT message_id, max(b) AS b, max(o) AS o, max(om) AS om, max(c) AS c, max(cm) AS cm, max(r) AS r
      FROM (SELECT message_id, ${flags} FROM email_events e
        WHERE e.org_id ${org} AND e.message_id IS NOT NULL AND e.kind IN ('bounced', 'opened', 'clicked', 'replied')
          AND ${upTo}) x
      GROUP BY message_id`;
    const messageFacts = sql`
      SELECT m.org_id, coalesce(m.sent_at, m.created_at) AS at, m.sender_id AS user_id, m.module_id,
        m.template_id, m.template_version, ${sentUpTo}::int AS sent, coalesce(e.b, 0) AS bounced,
        (${sentUpTo} AND m.tracked)::int AS tracked, (coalesce(e.b, 0) = 1 AND m.tracked)::int AS bounced_tracked,
        coalesce(e.o, 0) AS opened, coalesce(e.om, 0) AS opened_machine, coalesce(e.c, 0) AS clicked,
        coalesce(e.cm, 0) AS clicked_machine, 0 AS received, coalesce(e.r, 0) AS replied
      FROM messages m LEFT JOIN (${events}) e ON e.message_id = m.id
      WHERE m.org_id ${org} AND m.kind IN ${COUNTED_KINDS} AND (${sentUpTo} OR e.message_id IS NOT NULL)`;
    const received = receivedFacts(sql`
      SELECT DISTINCT ON (e.record_id, e.data->>'mailId') e.org_id, e.record_id, e.at FROM email_events e
      WHERE e.org_id ${org} AND e.kind = 'received' AND e.record_id IS NOT NULL AND ${upTo}
      ORDER BY e.record_id, e.data->>'mailId', e.txid, e.id`);
    await applyFacts(trx, sql`${messageFacts} UNION ALL ${received}`, false);
  });
  return { orgs: opts.orgId ? 1 : 'all' };
}
