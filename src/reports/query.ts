// Reading the rollups: the caller's date range in their time zone, the smallest level that holds
// what is filtered and grouped, and what the caller may see. A range reads UTC-day rows for the
// whole days inside it and 15-minute rows for its ragged ends; a break-up by local date reads each
// UTC day's row corrected by the 15-minute rows between UTC and local midnight, so each local day
// is exact in any time zone (offsets are multiples of 15 minutes).
import { type RawBuilder, sql } from 'kysely';
import { type Actor, can } from '../crm/access.ts';
import type { Deps } from '../deps.ts';
import { invalid } from '../errors.ts';

export const ROW_KEYS = [
  'sent',
  'bounced',
  'tracked',
  'bouncedTracked',
  'opened',
  'openedMachine',
  'clicked',
  'clickedMachine',
  'received',
  'replied',
] as const;
export type Row = Record<(typeof ROW_KEYS)[number], number>;

const COLUMNS: Record<keyof Row, string> = {
  sent: 'sent',
  bounced: 'bounced',
  tracked: 'tracked',
  bouncedTracked: 'bounced_tracked',
  opened: 'opened',
  openedMachine: 'opened_machine',
  clicked: 'clicked',
  clickedMachine: 'clicked_machine',
  received: 'received',
  replied: 'replied',
};

export const emptyRow = (): Row => Object.fromEntries(ROW_KEYS.map((k) => [k, 0])) as Row;
export function addRow(into: Row, r: Row): Row {
  for (const k of ROW_KEYS) into[k] += r[k];
  return into;
}
/** A rate over tracked messages (only those could be seen opened or clicked), 0..1, 4 decimals. */
export const rate = (n: number, of: number) => (of > 0 ? Math.round((n / of) * 10_000) / 10_000 : 0);

export type GroupBy = 'none' | 'date' | 'template' | 'version' | 'module' | 'user';

export interface RollupQuery {
  from: string;
  to: string;
  users?: string[];
  moduleId?: string;
  templateId?: string;
  templateIds?: string[];
  groupBy: GroupBy;
  /** Only these counters (the others come back 0): less to read and add up. */
  only?: (keyof Row)[];
}

/** What a caller may see: everything (admins, or read on every module), else readable modules + own. */
export interface Visibility {
  orgId: string;
  timeZone: string;
  restrict: { userId: string; moduleIds: string[] } | null;
}

export async function visibilityOf(deps: Deps, actor: Actor): Promise<Visibility> {
  const timeZone = validTimeZone(actor.timeZone) ? actor.timeZone : 'UTC';
  if (actor.isAdmin) return { orgId: actor.orgId, timeZone, restrict: null };
  const modules = await deps.db
    .selectFrom('modules')
    .select(['id', 'api_name'])
    .where('org_id', '=', actor.orgId)
    .execute();
  const readable = modules.filter((m) => can(actor, m.api_name, 'read')).map((m) => m.id);
  return {
    orgId: actor.orgId,
    timeZone,
    restrict: readable.length === modules.length ? null : { userId: actor.userId, moduleIds: readable },
  };
}

function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const DAY_MS = 86_400_000;

/** Checks a YYYY-MM-DD range: real dates, from <= to, at most ~3 years. */
export function checkRange(from: string, to: string): void {
  const f = Date.parse(`${from}T00:00:00Z`);
  const t = Date.parse(`${to}T00:00:00Z`);
  if (Number.isNaN(f) || new Date(f).toISOString().slice(0, 10) !== from) throw invalid('from is not a date');
  if (Number.isNaN(t) || new Date(t).toISOString().slice(0, 10) !== to) throw invalid('to is not a date');
  if (t < f) throw invalid('to is before from');
  if ((t - f) / DAY_MS > 1100) throw invalid('the date range is longer than three years');
}

/** The module id of an api name in the org (400 when there is none). */
export async function moduleIdOf(deps: Deps, orgId: string, apiName: string): Promise<string> {
  const m = await deps.db
    .selectFrom('modules')
    .select('id')
    .where('org_id', '=', orgId)
    .where('api_name', '=', apiName)
    .executeTakeFirst();
  if (!m) throw invalid(`no module "${apiName}"`);
  return m.id;
}

const KEY_COLS: Record<GroupBy, string[]> = {
  none: [],
  date: [],
  template: ['template_id'],
  version: ['template_id', 'template_version'],
  module: ['module_id'],
  user: ['user_id'],
};
const KEY: Record<Exclude<GroupBy, 'date'>, RawBuilder<unknown>> = {
  none: sql`''`,
  template: sql`coalesce(template_id::text, '')`,
  version: sql`coalesce(template_id::text, '') || ':' || coalesce(template_version::text, '')`,
  module: sql`coalesce(module_id::text, '')`,
  user: sql`coalesce(user_id::text, '')`,
};

/**
 * Sums the rollups over the range, per key of `groupBy` ('' = none: no template/module/user, or
 * the total). The rows add up exactly to the total: every counted fact is in exactly one bucket.
 */
export async function readRollups(
  deps: Deps,
  v: Visibility,
  q: RollupQuery,
): Promise<{ key: string; row: Row }[]> {
  checkRange(q.from, q.to);
  const userDim = !!q.users || q.groupBy === 'user' || !!v.restrict;
  const templateDim =
    !!q.moduleId ||
    !!q.templateId ||
    !!q.templateIds ||
    !!v.restrict ||
    ['template', 'version', 'module'].includes(q.groupBy);
  const level = userDim && templateDim ? 3 : userDim ? 1 : templateDim ? 2 : 0;

  const b = (
    await sql<{ s: Date; e: Date; ds: Date; de: Date }>`
      SELECT s, e, CASE WHEN date_bin('1 day', s, o) = s THEN s ELSE date_bin('1 day', s, o) + interval '1 day' END AS ds,
        date_bin('1 day', e, o) AS de
      FROM (SELECT (${q.from}::date)::timestamp AT TIME ZONE ${v.timeZone} AS s,
        (${q.to}::date + 1)::timestamp AT TIME ZONE ${v.timeZone} AS e,
        timestamptz '2000-01-01 00:00+00' AS o) x`.execute(deps.db)
  ).rows[0];

  const filters: RawBuilder<unknown>[] = [sql`org_id = ${v.orgId}::uuid`, sql`level = ${level}`];
  if (q.users) filters.push(sql`user_id = ANY(${q.users}::uuid[])`);
  if (q.moduleId) filters.push(sql`module_id = ${q.moduleId}::uuid`);
  if (q.templateId) filters.push(sql`template_id = ${q.templateId}::uuid`);
  if (q.templateIds) filters.push(sql`template_id = ANY(${q.templateIds}::uuid[])`);
  if (v.restrict)
    filters.push(
      sql`(module_id = ANY(${v.restrict.moduleIds}::uuid[]) OR user_id = ${v.restrict.userId}::uuid)`,
    );
  const where = sql.join(filters, sql` AND `);

  const keys = q.only ?? ROW_KEYS;
  const sums = sql.join(
    keys.map((k) => sql`sum(${sql.ref(COLUMNS[k])})::bigint AS ${sql.ref(k)}`),
    sql`, `,
  );
  // Only the columns the key needs: a leaderboard is then read from its covering index alone.
  const cols = sql.raw(['bucket', ...KEY_COLS[q.groupBy], ...keys.map((k) => COLUMNS[k])].join(', '));
  const full = (r: Record<string, number>) => ({ ...emptyRow(), ...r }) as Row;
  if (q.groupBy === 'date') {
    // Each local day from its UTC day's row, corrected by the 15-minute rows between the UTC and the
    // local midnight (those belong to the neighbouring day): a few hours of rows a day, not 96.
    const signed = (sign: number) =>
      sql.join(
        keys.map((k) => sql`${sign} * ${sql.ref(COLUMNS[k])} AS ${sql.ref(COLUMNS[k])}`),
        sql`, `,
      );
    const rows = await sql<Row & { key: string }>`
      WITH w AS (
        SELECT least(d AT TIME ZONE ${v.timeZone}, d AT TIME ZONE 'UTC') AS lo,
          greatest(d AT TIME ZONE ${v.timeZone}, d AT TIME ZONE 'UTC') AS hi
        FROM generate_series(${q.from}::timestamp, (${q.to}::date + 1)::timestamp, interval '1 day') d
      ), edge AS MATERIALIZED (
        SELECT x.* FROM w CROSS JOIN LATERAL (
          SELECT ${cols} FROM report_rollups WHERE ${where} AND grain = 'q' AND bucket >= w.lo AND bucket < w.hi) x
      ), parts AS (
        SELECT (bucket AT TIME ZONE 'UTC')::date AS day, ${signed(1)} FROM report_rollups
        WHERE ${where} AND grain = 'd' AND bucket >= ${q.from}::timestamp AT TIME ZONE 'UTC'
          AND bucket < (${q.to}::date + 1)::timestamp AT TIME ZONE 'UTC'
        UNION ALL SELECT (bucket AT TIME ZONE ${v.timeZone})::date, ${signed(1)} FROM edge
        UNION ALL SELECT (bucket AT TIME ZONE 'UTC')::date, ${signed(-1)} FROM edge
      )
      SELECT to_char(day, 'YYYY-MM-DD') AS key, ${sums} FROM parts
      WHERE day BETWEEN ${q.from}::date AND ${q.to}::date GROUP BY day ORDER BY day`.execute(deps.db);
    return rows.rows.map(({ key, ...row }) => ({ key, row: full(row) }));
  }

  // Whole UTC months from month rows, the other whole UTC days from day rows, the ragged ends from
  // 15-minute rows.
  const grainRows = (grain: 'q' | 'd' | 'm', spans: [Date, Date][]) =>
    sql`SELECT ${cols} FROM report_rollups WHERE ${where} AND grain = ${grain} AND (${sql.join(
      spans.map(([from, to]) => sql`(bucket >= ${from} AND bucket < ${to})`),
      sql` OR `,
    )})`;
  let parts: RawBuilder<unknown>;
  if (b.ds >= b.de) parts = grainRows('q', [[b.s, b.e]]);
  else {
    const edges = grainRows('q', [
      [b.s, b.ds],
      [b.de, b.e],
    ]);
    const { ms, me } = wholeMonths(b.ds, b.de);
    parts =
      ms < me
        ? sql`${grainRows('m', [[ms, me]])} UNION ALL ${grainRows('d', [
            [b.ds, ms],
            [me, b.de],
          ])} UNION ALL ${edges}`
        : sql`${grainRows('d', [[b.ds, b.de]])} UNION ALL ${edges}`;
  }
  const rows = await sql<Row & { key: string }>`
    SELECT ${KEY[q.groupBy]} AS key, ${sums} FROM (${parts}) r GROUP BY 1 ORDER BY 1`.execute(deps.db);
  return rows.rows.map(({ key, ...row }) => ({ key, row: full(row) }));
}

/** The whole UTC calendar months inside [ds, de) (both UTC midnights): [ms, me), empty when ms >= me. */
export function wholeMonths(ds: Date, de: Date): { ms: Date; me: Date } {
  const first = Date.UTC(ds.getUTCFullYear(), ds.getUTCMonth(), 1);
  const ms = first === ds.getTime() ? ds : new Date(Date.UTC(ds.getUTCFullYear(), ds.getUTCMonth() + 1, 1));
  return { ms, me: new Date(Date.UTC(de.getUTCFullYear(), de.getUTCMonth(), 1)) };
}

/** Every date of the range, YYYY-MM-DD (for a break-up by date with no gaps). */
export function datesOf(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += DAY_MS)
    out.push(new Date(t).toISOString().slice(0, 10));
  return out;
}

/** Names for keys: users, templates, modules of the org. */
export async function labelsOf(
  deps: Deps,
  orgId: string,
  kind: 'user' | 'template' | 'module',
  ids: string[],
): Promise<Map<string, string>> {
  const real = ids.filter((id) => id !== '');
  if (!real.length) return new Map();
  const rows =
    kind === 'user'
      ? await deps.db
          .selectFrom('users')
          .select(['id', 'name as label'])
          .where('org_id', '=', orgId)
          .where('id', 'in', real)
          .execute()
      : kind === 'template'
        ? await deps.db
            .selectFrom('templates')
            .select(['id', 'name as label'])
            .where('org_id', '=', orgId)
            .where('id', 'in', real)
            .execute()
        : await deps.db
            .selectFrom('modules')
            .select(['id', 'plural_label as label'])
            .where('org_id', '=', orgId)
            .where('id', 'in', real)
            .execute();
  return new Map(rows.map((r) => [r.id, r.label]));
}
