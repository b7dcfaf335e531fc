// Email & Calls Analytics (F5.2): emails sent, received and replied, and calls by their kind, per
// period (day, week, month or year in the user's time zone), per user, or both. The emails come
// from the reports rollups (src/reports/rollups.ts, 15-minute buckets, so any local day, week or
// month is an exact sum of them; counted as Email Analytics counts them: a reply in the bucket of
// the email it answers); calls are few and are counted from the raw records.
//
// The Calls module (src/crm/catalog.ts) has a Call Type (Outbound, Inbound, Missed) and a Call
// Result, but no "attended" flag, so attendance is derived: an outbound call is unattended when
// its result says nobody answered (No Response, Busy, Invalid Number), or it has no result and
// no duration; otherwise attended. Inbound calls are "received", Missed calls "missed".

import { sql } from 'kysely';
import { type Actor, can } from '../crm/access.ts';
import type { Deps } from '../deps.ts';
import { invalid } from '../errors.ts';
import { visibilityOf } from './query.ts';

export const GROUP_BYS = ['day', 'week', 'month', 'year'] as const;
export type GroupBy = (typeof GROUP_BYS)[number];
export const BYS = ['date', 'user', 'both'] as const;
export type By = (typeof BYS)[number];

/** Call results that mean an outbound call was not answered. */
export const UNANSWERED_RESULTS = ['No Response', 'Busy', 'Invalid Number'];

export interface EmailCallsCounts {
  sent: number;
  received: number;
  replied: number;
  dialledAttended: number;
  dialledUnattended: number;
  callsReceived: number;
  callsMissed: number;
  callMinutes: number;
}

export interface EmailCallsRow extends EmailCallsCounts {
  /** First day of the period ('YYYY-MM-DD', in the user's time zone); null when by = user. */
  period: string | null;
  /** null when by = date (or for activity of no user). */
  userId: string | null;
  userName: string | null;
}

export interface EmailCallsReport {
  from: string;
  to: string;
  groupBy: GroupBy;
  by: By;
  timeZone: string;
  /** Whether the caller may read the Calls module (calls are 0 otherwise). */
  calls: boolean;
  summary: EmailCallsCounts;
  rows: EmailCallsRow[];
}

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;

/** Checks a from/to date pair ('YYYY-MM-DD', inclusive) and bounds it to five years. */
export function checkRange(from: string, to: string): void {
  for (const [k, v] of [
    ['from', from],
    ['to', to],
  ] as const)
    if (!DATE_RE.test(v) || Number.isNaN(Date.parse(`${v}T00:00:00Z`)))
      throw invalid(`${k} must be a date (YYYY-MM-DD)`, [{ path: k, message: 'not a date' }]);
  if (from > to) throw invalid('from must not be after to', [{ path: 'from', message: 'after to' }]);
  if (Date.parse(to) - Date.parse(from) > 5 * 366 * 86_400_000)
    throw invalid('The range may span at most five years', [{ path: 'to', message: 'too far' }]);
}

/** `[from 00:00, to+1 00:00)` in the time zone, as SQL timestamptz expressions. */
export function rangeSql(from: string, to: string, tz: string) {
  return {
    lo: sql`((${from}::date)::timestamp AT TIME ZONE ${tz}::text)`,
    hi: sql`((${to}::date + 1)::timestamp AT TIME ZONE ${tz}::text)`,
  };
}

export async function emailCallsReport(
  deps: Deps,
  actor: Actor,
  q: { from: string; to: string; groupBy: GroupBy; by: By },
): Promise<EmailCallsReport> {
  checkRange(q.from, q.to);
  // As in the other email reports (src/reports/README.md): all of it for those who may read every
  // module, else the modules they may read plus their own sends and mail of records they own.
  const v = await visibilityOf(deps, actor);
  const tz = v.timeZone;
  const { lo, hi } = rangeSql(q.from, q.to, tz);
  const scope =
    v.restrict === null
      ? sql`TRUE`
      : sql`(r.module_id = ANY(${v.restrict.moduleIds}::uuid[]) OR r.user_id = ${v.restrict.userId})`;
  // The smallest rollup level with what is needed: 0 the org's totals, 1 per user, 3 per user and
  // module (to restrict by module).
  const level = v.restrict ? 3 : q.by === 'date' ? 0 : 1;
  const callsModule = await deps.db
    .selectFrom('modules')
    .select(['id'])
    .where('org_id', '=', actor.orgId)
    .where('api_name', '=', 'calls')
    .executeTakeFirst();
  const calls = !!callsModule && can(actor, 'calls', 'read');
  const callStart = sql`CASE WHEN r.data->>'call_start_time' ~ '^\\d{4}-\\d{2}-\\d{2}T'
    THEN (r.data->>'call_start_time')::timestamptz ELSE r.created_at END`;
  const duration = sql`CASE WHEN jsonb_typeof(r.data->'call_duration_seconds') = 'number'
    THEN (r.data->>'call_duration_seconds')::numeric ELSE 0 END`;
  const callKind = sql`CASE r.data->>'call_type'
    WHEN 'Inbound' THEN 'call_received'
    WHEN 'Missed' THEN 'call_missed'
    WHEN 'Outbound' THEN CASE
      WHEN r.data->>'call_result' = ANY(${UNANSWERED_RESULTS}::text[]) THEN 'dialled_unattended'
      WHEN r.data->>'call_result' IS NULL AND ${duration} = 0 THEN 'dialled_unattended'
      ELSE 'dialled_attended' END
    END`;
  const callsPart = calls
    ? sql`UNION ALL
      SELECT c.user_id, (c.at AT TIME ZONE ${tz}::text)::date, 0, 0, 0, c.k, c.secs FROM (
        SELECT r.owner_id AS user_id, ${callStart} AS at, ${callKind} AS k, ${duration} AS secs
        FROM records r WHERE r.org_id = ${actor.orgId} AND r.module_id = ${callsModule.id}
      ) c WHERE c.at >= ${lo} AND c.at < ${hi} AND c.k IS NOT NULL`
    : sql``;
  const period =
    q.by === 'user'
      ? sql`NULL::text`
      : sql`to_char(date_trunc(${q.groupBy}::text, a.day::timestamp), 'YYYY-MM-DD')`;
  // Emails per local day: each UTC day's row, corrected by the 15-minute rows between UTC and local
  // midnight (they belong to the neighbouring day), as in query.ts: a year reads day rows, not 96
  // quarter-hour rows a day.
  const rollups = sql`report_rollups r WHERE r.org_id = ${actor.orgId} AND r.level = ${level} AND ${scope}
    AND (r.sent > 0 OR r.received > 0 OR r.replied > 0)`;
  const user = q.by === 'date' ? sql`NULL::uuid` : sql`a.user_id`;
  const rows = (
    await sql<{
      period: string | null;
      user_id: string | null;
      user_name: string | null;
      sent: number;
      received: number;
      replied: number;
      dialled_attended: number;
      dialled_unattended: number;
      calls_received: number;
      calls_missed: number;
      call_seconds: string;
    }>`
    WITH w AS (
      SELECT least(d AT TIME ZONE ${tz}::text, d AT TIME ZONE 'UTC') AS lo,
        greatest(d AT TIME ZONE ${tz}::text, d AT TIME ZONE 'UTC') AS hi
      FROM generate_series(${q.from}::timestamp, (${q.to}::date + 1)::timestamp, interval '1 day') d
    ), edge AS MATERIALIZED (
      SELECT x.* FROM w CROSS JOIN LATERAL (
        SELECT r.user_id, r.bucket, r.sent, r.received, r.replied FROM ${rollups}
          AND r.grain = 'q' AND r.bucket >= w.lo AND r.bucket < w.hi) x
    ), e AS (
      SELECT r.user_id, (r.bucket AT TIME ZONE 'UTC')::date AS day, r.sent, r.received, r.replied
      FROM ${rollups} AND r.grain = 'd' AND r.bucket >= ${q.from}::timestamp AT TIME ZONE 'UTC'
        AND r.bucket < (${q.to}::date + 1)::timestamp AT TIME ZONE 'UTC'
      UNION ALL SELECT user_id, (bucket AT TIME ZONE ${tz}::text)::date, sent, received, replied FROM edge
      UNION ALL SELECT user_id, (bucket AT TIME ZONE 'UTC')::date, -sent, -received, -replied FROM edge
    ), a AS (
      SELECT user_id, day, sent::int AS sent, received::int AS received, replied::int AS replied,
        NULL::text AS k, 0::numeric AS secs
      FROM e WHERE day BETWEEN ${q.from}::date AND ${q.to}::date
      ${callsPart}
    ), g AS (
      SELECT ${period} AS period, ${user} AS user_id,
        sum(sent)::int AS sent,
        sum(received)::int AS received,
        sum(replied)::int AS replied,
        count(*) FILTER (WHERE k = 'dialled_attended')::int AS dialled_attended,
        count(*) FILTER (WHERE k = 'dialled_unattended')::int AS dialled_unattended,
        count(*) FILTER (WHERE k = 'call_received')::int AS calls_received,
        count(*) FILTER (WHERE k = 'call_missed')::int AS calls_missed,
        coalesce(sum(secs), 0)::text AS call_seconds
      FROM a GROUP BY 1, 2
      -- A UTC day's row moved whole to its neighbour leaves a group of zeros behind.
      HAVING sum(sent) <> 0 OR sum(received) <> 0 OR sum(replied) <> 0 OR count(k) > 0
    )
    SELECT g.*, u.name AS user_name FROM g LEFT JOIN users u ON u.id = g.user_id AND u.org_id = ${actor.orgId}
    ORDER BY g.period NULLS FIRST, u.name NULLS LAST, g.user_id`.execute(deps.db)
  ).rows;
  const out: EmailCallsRow[] = rows.map((r) => ({
    period: r.period,
    userId: r.user_id,
    userName: r.user_name,
    sent: r.sent,
    received: r.received,
    replied: r.replied,
    dialledAttended: r.dialled_attended,
    dialledUnattended: r.dialled_unattended,
    callsReceived: r.calls_received,
    callsMissed: r.calls_missed,
    callMinutes: Math.round((Number(r.call_seconds) / 60) * 10) / 10,
  }));
  const summary: EmailCallsCounts = {
    sent: 0,
    received: 0,
    replied: 0,
    dialledAttended: 0,
    dialledUnattended: 0,
    callsReceived: 0,
    callsMissed: 0,
    callMinutes: 0,
  };
  let seconds = 0;
  for (const r of rows) seconds += Number(r.call_seconds);
  for (const r of out)
    for (const k of Object.keys(summary) as (keyof EmailCallsCounts)[])
      if (k !== 'callMinutes') summary[k] += r[k];
  summary.callMinutes = Math.round((seconds / 60) * 10) / 10;
  return { from: q.from, to: q.to, groupBy: q.groupBy, by: q.by, timeZone: tz, calls, summary, rows: out };
}

export const EMAIL_CALLS_COLUMNS = [
  'sent',
  'received',
  'replied',
  'dialledAttended',
  'dialledUnattended',
  'callsReceived',
  'callsMissed',
  'callMinutes',
] as const satisfies readonly (keyof EmailCallsCounts)[];
