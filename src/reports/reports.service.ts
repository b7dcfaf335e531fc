// The reports read from the rollups: Email Analytics (F5.1), the leaderboards (F5.4) and template
// performance per version (F2.3). Every one is scoped to the caller's org and to what they may see.
import { sql } from 'kysely';
import { type Actor, can } from '../crm/access.ts';
import type { Deps } from '../deps.ts';
import { notFound } from '../errors.ts';
import {
  addRow,
  datesOf,
  emptyRow,
  labelsOf,
  moduleIdOf,
  type Row,
  rate,
  readRollups,
  visibilityOf,
} from './query.ts';

export interface AnalyticsQuery {
  from: string;
  to: string;
  users?: string[];
  module?: string;
  template?: string;
  groupBy: 'date' | 'template' | 'module' | 'user';
}

export interface AnalyticsRow extends Row {
  key: string;
  label: string;
}

/** Email Analytics: the summary of the period and its break-up, whose rows add up to it. */
export async function emailAnalytics(
  deps: Deps,
  actor: Actor,
  q: AnalyticsQuery,
): Promise<{ summary: Row; rows: AnalyticsRow[] }> {
  const v = await visibilityOf(deps, actor);
  const moduleId = q.module ? await moduleIdOf(deps, actor.orgId, q.module) : undefined;
  const got = await readRollups(deps, v, {
    from: q.from,
    to: q.to,
    users: q.users,
    moduleId,
    templateId: q.template,
    groupBy: q.groupBy,
  });
  const summary = got.reduce((s, r) => addRow(s, r.row), emptyRow());
  if (q.groupBy === 'date') {
    const by = new Map(got.map((r) => [r.key, r.row]));
    return {
      summary,
      rows: datesOf(q.from, q.to).map((d) => ({ key: d, label: d, ...(by.get(d) ?? emptyRow()) })),
    };
  }
  const labels = await labelsOf(
    deps,
    actor.orgId,
    q.groupBy,
    got.map((r) => r.key),
  );
  const none = { template: 'No template', module: 'No module', user: 'No user' }[q.groupBy];
  return {
    summary,
    rows: got
      .map((r) => ({ key: r.key, label: r.key === '' ? none : (labels.get(r.key) ?? r.key), ...r.row }))
      .sort((a, b) => b.sent - a.sent || a.label.localeCompare(b.label)),
  };
}

export interface TemplateRank {
  templateId: string;
  name: string;
  sent: number;
  tracked: number;
  opened: number;
  clicked: number;
  rate: number;
}

/**
 * Top 10 templates by open rate and by click rate (rates over tracked sends; a template needs at
 * least minSends tracked sends in the period to rank, so one lucky send does not lead), and the
 * top 10 users by emails sent.
 */
export async function leaderboards(
  deps: Deps,
  actor: Actor,
  q: { from: string; to: string; minSends: number },
): Promise<{
  templatesByOpenRate: TemplateRank[];
  templatesByClickRate: TemplateRank[];
  usersBySent: { userId: string; name: string; sent: number }[];
}> {
  const v = await visibilityOf(deps, actor);
  const [byTemplate, byUser] = await Promise.all([
    readRollups(deps, v, {
      from: q.from,
      to: q.to,
      groupBy: 'template',
      only: ['sent', 'tracked', 'opened', 'clicked'],
    }),
    readRollups(deps, v, { from: q.from, to: q.to, groupBy: 'user', only: ['sent'] }),
  ]);
  const eligible = byTemplate.filter((r) => r.key !== '' && r.row.tracked >= q.minSends);
  const [tNames, uNames] = await Promise.all([
    labelsOf(
      deps,
      actor.orgId,
      'template',
      eligible.map((r) => r.key),
    ),
    labelsOf(
      deps,
      actor.orgId,
      'user',
      byUser.map((r) => r.key),
    ),
  ]);
  const rank = (by: 'opened' | 'clicked') =>
    eligible
      .map((r) => ({
        templateId: r.key,
        name: tNames.get(r.key) ?? r.key,
        sent: r.row.sent,
        tracked: r.row.tracked,
        opened: r.row.opened,
        clicked: r.row.clicked,
        rate: rate(r.row[by], r.row.tracked),
      }))
      .sort((a, b) => b.rate - a.rate || b.tracked - a.tracked || a.name.localeCompare(b.name))
      .slice(0, 10);
  return {
    templatesByOpenRate: rank('opened'),
    templatesByClickRate: rank('clicked'),
    usersBySent: byUser
      .filter((r) => r.key !== '' && r.row.sent > 0)
      .map((r) => ({ userId: r.key, name: uNames.get(r.key) ?? r.key, sent: r.row.sent }))
      .sort((a, b) => b.sent - a.sent || a.name.localeCompare(b.name))
      .slice(0, 10),
  };
}

export interface Performance {
  sent: number;
  tracked: number;
  opened: number;
  clicked: number;
  openRate: number;
  clickRate: number;
}
const performance = (r: Row): Performance => ({
  sent: r.sent,
  tracked: r.tracked,
  opened: r.opened,
  clicked: r.clicked,
  openRate: rate(r.opened, r.tracked),
  clickRate: rate(r.clicked, r.tracked),
});

/** One template's performance over the range, per version (every version, sent or not). */
export async function templatePerformance(
  deps: Deps,
  actor: Actor,
  templateId: string,
  q: { from: string; to: string },
): Promise<{
  templateId: string;
  name: string;
  total: Performance;
  versions: ({
    version: number;
    createdAt: Date;
    author: string | null;
    comment: string | null;
  } & Performance)[];
}> {
  const t = await deps.db
    .selectFrom('templates as t')
    .innerJoin('modules as m', 'm.id', 't.module_id')
    .select(['t.id', 't.name', 'm.api_name as module'])
    .where('t.org_id', '=', actor.orgId)
    .where('t.id', '=', templateId)
    .executeTakeFirst();
  // Templates are seen by those who can read their module (as in the template pages).
  if (!t || !can(actor, t.module, 'read')) throw notFound('Template');
  const v = await visibilityOf(deps, actor);
  const [got, versions] = await Promise.all([
    readRollups(deps, v, { from: q.from, to: q.to, templateId, groupBy: 'version' }),
    sql<{ version: number; created_at: Date; author: string | null; comment: string | null }>`
      SELECT tv.version, tv.created_at, u.name AS author, tv.comment
      FROM template_versions tv LEFT JOIN users u ON u.id = tv.author_id
      WHERE tv.org_id = ${actor.orgId} AND tv.template_id = ${templateId}
      ORDER BY tv.version`.execute(deps.db),
  ]);
  const byVersion = new Map(got.map((r) => [Number(r.key.split(':')[1]), r.row]));
  return {
    templateId: t.id,
    name: t.name,
    total: performance(got.reduce((s, r) => addRow(s, r.row), emptyRow())),
    versions: versions.rows.map((x) => ({
      version: x.version,
      createdAt: x.created_at,
      author: x.author,
      comment: x.comment,
      ...performance(byVersion.get(x.version) ?? emptyRow()),
    })),
  };
}

/** Every template of the org (or those whose name matches), with its performance over the range. */
export async function templatePerformanceList(
  deps: Deps,
  actor: Actor,
  q: { from: string; to: string; search?: string },
): Promise<{
  rows: ({ templateId: string; name: string; module: string; versions: number } & Performance)[];
}> {
  const v = await visibilityOf(deps, actor);
  const pattern = q.search ? `%${q.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : null;
  const templates = (
    await sql<{ id: string; name: string; module: string; versions: number }>`
      SELECT t.id, t.name, m.api_name AS module, t.current_version AS versions
      FROM templates t JOIN modules m ON m.id = t.module_id
      WHERE t.org_id = ${actor.orgId} AND t.deleted_at IS NULL
        ${pattern ? sql`AND t.name ILIKE ${pattern}` : sql``}
      ORDER BY lower(t.name) LIMIT 1000`.execute(deps.db)
  ).rows.filter((t) => can(actor, t.module, 'read'));
  if (!templates.length) return { rows: [] };
  const got = await readRollups(deps, v, {
    from: q.from,
    to: q.to,
    templateIds: templates.map((t) => t.id),
    groupBy: 'template',
  });
  const by = new Map(got.map((r) => [r.key, r.row]));
  return {
    rows: templates.map((t) => ({
      templateId: t.id,
      name: t.name,
      module: t.module,
      versions: t.versions,
      ...performance(by.get(t.id) ?? emptyRow()),
    })),
  };
}
