// Sent Email Status (F5.3): one row per sent email, newest first, paged by keyset over
// (sent_at, id); filtered by date (the user's time zone) and status; columns chosen and ordered
// by the user, saved as named reports, exported as formula-safe CSV, or emailed to other users
// of the org as a CSV attachment through the normal delivery queue.

import { stringify } from 'csv-stringify/sync';
import { sql } from 'kysely';
import type { Actor } from '../crm/access.ts';
import { displayName } from '../crm/catalog.ts';
import { csvSafe } from '../crm/csv.ts';
import type { Deps } from '../deps.ts';
import { AppError, invalid, notFound } from '../errors.ts';
import { deliveryExpiresAt, wakeDelivery } from '../sending/delivery.ts';
import { sendingSetup } from '../sending/queue-rows.ts';
import { newMessageIdHeader } from '../sending/verp.ts';
import { type EmailState, emailStatus, type MessageSummary } from '../tracking/status.ts';
import { checkRange, rangeSql } from './calls.ts';
import { visibilityOf } from './query.ts';

export const SENT_COLUMNS = [
  'recipient',
  'record',
  'subject',
  'template',
  'sender',
  'sentAt',
  'status',
  'opens',
  'clicks',
] as const;
export type SentColumn = (typeof SENT_COLUMNS)[number];

/** The states a sent email can be in (emailStatus of a row with a send time). */
export const SENT_STATES = ['sent', 'delivered', 'bounced', 'opened', 'clicked', 'replied'] as const;
export type SentState = (typeof SENT_STATES)[number];

/** The same rule as stateOf in tracking/status.ts, for rows with a send time, in SQL (to filter). */
const STATE_SQL = sql`CASE
  WHEN m.replied_at IS NOT NULL THEN 'replied'
  WHEN m.clicked_at IS NOT NULL THEN 'clicked'
  WHEN m.opened_at IS NOT NULL THEN 'opened'
  WHEN m.bounced_at IS NOT NULL THEN 'bounced'
  WHEN m.status <> 'sent' THEN m.status
  WHEN m.transport = 'outbox' THEN 'sent'
  ELSE 'delivered' END`;

/** Rows per CSV export or emailed report; a longer report is cut there (and says so). */
export const EXPORT_MAX = 100_000;
const MAX_RECIPIENTS = 50;

export interface SentFilter {
  from: string;
  to: string;
  status?: SentState | null;
}

export interface SentRow {
  id: string;
  recipient: { address: string; name: string | null };
  record: { id: string; module: string; name: string } | null;
  subject: string;
  template: { id: string; name: string; version: number | null } | null;
  sender: { id: string; name: string } | null;
  sentAt: string;
  status: EmailState;
  opens: number;
  clicks: number;
  machineOpens: number;
  machineClicks: number;
}

export interface SentPage {
  rows: SentRow[];
  /** Pass as `after` for the next page; null on the last. */
  next: string | null;
}

function checkFilter(f: SentFilter): void {
  checkRange(f.from, f.to);
  if (f.status != null && !(SENT_STATES as readonly string[]).includes(f.status))
    throw invalid(`status must be one of ${SENT_STATES.join(', ')}`, [
      { path: 'status', message: 'unknown' },
    ]);
}

/** Cursor: the row's send time in microseconds since the epoch (exact, unlike a JS Date) and id. */
function parseCursor(after: string): { us: number; id: string } {
  const m = /^(\d{1,17})\.([0-9a-f-]{36})$/.exec(after);
  if (!m) throw invalid('after is not a cursor from this report', [{ path: 'after', message: 'bad cursor' }]);
  return { us: Number(m[1]), id: m[2] as string };
}

/** Which messages the actor sees, and the sent_at bounds of the date range in their time zone. */
async function scope(deps: Deps, actor: Actor, f: { from: string; to: string }) {
  // As in the other email reports: modules they may read, plus their own sends.
  const v = await visibilityOf(deps, actor);
  const { lo, hi } = rangeSql(f.from, f.to, v.timeZone);
  const where =
    v.restrict === null
      ? sql`TRUE`
      : sql`(m.module_id = ANY(${v.restrict.moduleIds}::uuid[]) OR m.sender_id = ${v.restrict.userId})`;
  return sql`m.sent_at >= ${lo} AND m.sent_at < ${hi} AND ${where}`;
}

export async function listSentStatus(
  deps: Deps,
  actor: Actor,
  f: SentFilter & { after?: string; limit?: number },
): Promise<SentPage> {
  checkFilter(f);
  const limit = Math.min(Math.max(f.limit ?? 50, 1), 1000);
  const cur = f.after ? parseCursor(f.after) : null;
  const rows = (
    await sql<
      MessageSummary & {
        id: string;
        us: number;
        to_address: string;
        to_name: string | null;
        record_id: string | null;
        record_data: Record<string, unknown> | null;
        module: string | null;
        subject: string;
        template_id: string | null;
        template_name: string | null;
        template_version: number | null;
        sender_id: string | null;
        sender_name: string | null;
      }
    >`
    SELECT m.id, (extract(epoch FROM m.sent_at) * 1000000)::int8 AS us, m.to_address, m.to_name,
      r.id AS record_id, r.data AS record_data, mo.api_name AS module,
      coalesce(nullif(m.subject, ''), tv.subject, '') AS subject,
      m.template_id, t.name AS template_name, m.template_version, m.sender_id, u.name AS sender_name,
      m.status, m.transport, m.sent_at, m.tracked, m.bounced_at, m.bounce_kind, m.bounce_reason,
      m.opened_at, m.last_opened_at, m.open_count, m.machine_open_count, m.clicked_at,
      m.last_clicked_at, m.click_count, m.machine_click_count, m.replied_at
    FROM messages m
    LEFT JOIN records r ON r.id = m.record_id
    LEFT JOIN modules mo ON mo.id = r.module_id
    LEFT JOIN templates t ON t.id = m.template_id
    LEFT JOIN template_versions tv ON tv.template_id = m.template_id AND tv.version = m.template_version
    LEFT JOIN users u ON u.id = m.sender_id
    WHERE m.org_id = ${actor.orgId} AND m.sent_at IS NOT NULL AND m.kind NOT IN ('system', 'test')
      AND ${await scope(deps, actor, f)}
      ${f.status ? sql`AND ${STATE_SQL} = ${f.status}` : sql``}
      ${cur ? sql`AND (m.sent_at, m.id) < ('epoch'::timestamptz + ${cur.us} * interval '1 microsecond', ${cur.id}::uuid)` : sql``}
    ORDER BY m.sent_at DESC, m.id DESC
    LIMIT ${limit + 1}`.execute(deps.db)
  ).rows;
  const more = rows.length > limit;
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    rows: page.map((r) => {
      const s = emailStatus(r);
      return {
        id: r.id,
        recipient: { address: r.to_address, name: r.to_name },
        record:
          r.record_id && r.module
            ? { id: r.record_id, module: r.module, name: displayName(r.module, r.record_data ?? {}) }
            : null,
        subject: r.subject,
        template:
          r.template_id && r.template_name
            ? { id: r.template_id, name: r.template_name, version: r.template_version }
            : null,
        sender: r.sender_id ? { id: r.sender_id, name: r.sender_name ?? '' } : null,
        sentAt: s.sentAt as string,
        status: s.state,
        opens: s.opens.human,
        clicks: s.clicks.human,
        machineOpens: s.opens.machine,
        machineClicks: s.clicks.machine,
      };
    }),
    next: more && last ? `${last.us}.${last.id}` : null,
  };
}

const HEADERS: Record<SentColumn, string> = {
  recipient: 'Recipient',
  record: 'Record',
  subject: 'Subject',
  template: 'Template',
  sender: 'Sender',
  sentAt: 'Sent At',
  status: 'Status',
  opens: 'Opens',
  clicks: 'Clicks',
};

function cell(r: SentRow, c: SentColumn): string {
  switch (c) {
    case 'recipient':
      return r.recipient.name ? `${r.recipient.name} <${r.recipient.address}>` : r.recipient.address;
    case 'record':
      return r.record?.name ?? '';
    case 'subject':
      return r.subject;
    case 'template':
      return r.template ? `${r.template.name} (v${r.template.version ?? '?'})` : '';
    case 'sender':
      return r.sender?.name ?? '';
    case 'sentAt':
      return r.sentAt;
    case 'status':
      return r.status;
    case 'opens':
      return String(r.opens);
    case 'clicks':
      return String(r.clicks);
  }
}

export function checkColumns(columns: unknown): SentColumn[] {
  if (
    !Array.isArray(columns) ||
    columns.length === 0 ||
    columns.some((c) => !(SENT_COLUMNS as readonly unknown[]).includes(c)) ||
    new Set(columns).size !== columns.length
  )
    throw invalid(`columns must be distinct names among ${SENT_COLUMNS.join(', ')}`, [
      { path: 'columns', message: 'bad columns' },
    ]);
  return columns as SentColumn[];
}

/** The report as CSV (formula-safe cells), at most EXPORT_MAX rows. */
export async function sentStatusCsv(
  deps: Deps,
  actor: Actor,
  f: SentFilter & { columns: SentColumn[] },
): Promise<{ csv: string; rows: number; truncated: boolean }> {
  const cols = checkColumns(f.columns);
  const parts = [stringify([cols.map((c) => HEADERS[c])])];
  let after: string | undefined;
  let n = 0;
  let truncated = false;
  do {
    const page = await listSentStatus(deps, actor, { ...f, after, limit: 1000 });
    const take = page.rows.slice(0, EXPORT_MAX - n);
    if (take.length) parts.push(stringify(take.map((r) => cols.map((c) => csvSafe(cell(r, c))))));
    n += take.length;
    after = page.next ?? undefined;
    if (after && n >= EXPORT_MAX) {
      truncated = true;
      after = undefined;
    }
  } while (after);
  return { csv: parts.join(''), rows: n, truncated };
}

// ---- Saved reports (private to their owner) ----

export interface SavedReportConfig {
  columns: SentColumn[];
  status: SentState | null;
  /** A relative window ('last_7_days'…) or fixed dates; the UI fills dates from it. */
  from: string | null;
  to: string | null;
}

export interface SavedReport {
  id: string;
  name: string;
  config: SavedReportConfig;
  updatedAt: string;
}

function checkConfig(c: unknown): SavedReportConfig {
  const o = (c ?? {}) as Record<string, unknown>;
  const columns = checkColumns(o.columns);
  const status = o.status == null ? null : (o.status as SentState);
  if (status && !(SENT_STATES as readonly string[]).includes(status))
    throw invalid('Unknown status', [{ path: 'config.status', message: 'unknown' }]);
  const date = (v: unknown, k: string) => {
    if (v == null || v === '') return null;
    if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v))
      throw invalid(`${k} must be a date (YYYY-MM-DD)`, [{ path: `config.${k}`, message: 'not a date' }]);
    return v;
  };
  return { columns, status, from: date(o.from, 'from'), to: date(o.to, 'to') };
}

function checkName(name: unknown): string {
  const n = typeof name === 'string' ? name.replace(/\p{Cc}/gu, ' ').trim() : '';
  if (!n || n.length > 100)
    throw invalid('Name the report (1 to 100 characters)', [{ path: 'name', message: 'required' }]);
  return n;
}

const toSaved = (r: { id: string; name: string; config: unknown; updated_at: Date }): SavedReport => ({
  id: r.id,
  name: r.name,
  config: r.config as SavedReportConfig,
  updatedAt: new Date(r.updated_at).toISOString(),
});

export async function listSavedReports(deps: Deps, actor: Actor): Promise<SavedReport[]> {
  const rows = await sql<{ id: string; name: string; config: unknown; updated_at: Date }>`
    SELECT id, name, config, updated_at FROM saved_reports
    WHERE org_id = ${actor.orgId} AND user_id = ${actor.userId} AND kind = 'sent_status'
    ORDER BY name`.execute(deps.db);
  return rows.rows.map(toSaved);
}

/** Saves under the name (replacing the user's report of that name). */
export async function saveReport(
  deps: Deps,
  actor: Actor,
  input: { name: unknown; config: unknown },
): Promise<SavedReport> {
  const name = checkName(input.name);
  const config = checkConfig(input.config);
  const r = await sql<{ id: string; name: string; config: unknown; updated_at: Date }>`
    INSERT INTO saved_reports (org_id, user_id, kind, name, config)
    VALUES (${actor.orgId}, ${actor.userId}, 'sent_status', ${name}, ${JSON.stringify(config)}::jsonb)
    ON CONFLICT (org_id, user_id, kind, name) DO UPDATE SET config = EXCLUDED.config, updated_at = now()
    RETURNING id, name, config, updated_at`.execute(deps.db);
  return toSaved(r.rows[0] as { id: string; name: string; config: unknown; updated_at: Date });
}

export async function deleteSavedReport(deps: Deps, actor: Actor, id: string): Promise<void> {
  const r = await sql`
    DELETE FROM saved_reports WHERE id = ${id} AND org_id = ${actor.orgId} AND user_id = ${actor.userId}`.execute(
    deps.db,
  );
  if (!Number(r.numAffectedRows)) throw notFound('Report');
}

// ---- Emailing the report ----

/**
 * Queues one system message per chosen user of the org, each carrying the CSV (built with the
 * sender's permissions: they share what they can see) in message_attachments.
 */
export async function emailSentStatus(
  deps: Deps,
  actor: Actor,
  input: SentFilter & { columns: SentColumn[]; userIds: string[]; name?: string | null },
): Promise<{ queued: number; rows: number; truncated: boolean }> {
  const ids = [...new Set(input.userIds)];
  if (!ids.length || ids.length > MAX_RECIPIENTS)
    throw invalid(`Choose 1 to ${MAX_RECIPIENTS} users`, [{ path: 'userIds', message: 'count' }]);
  const users = await deps.db
    .selectFrom('users')
    .select(['id', 'email', 'name'])
    .where('org_id', '=', actor.orgId)
    .where('id', 'in', ids)
    .where('status', 'in', ['active', 'confirmed'])
    .execute();
  if (users.length !== ids.length)
    throw invalid('Every recipient must be an active user of your organization', [
      { path: 'userIds', message: 'unknown user' },
    ]);
  const me = await deps.db
    .selectFrom('users')
    .select(['email', 'name'])
    .where('id', '=', actor.userId)
    .where('org_id', '=', actor.orgId)
    .executeTakeFirst();
  if (!me) throw new AppError('forbidden', 'Unknown user');
  const name = input.name ? checkName(input.name) : 'Sent Email Status';
  const { csv, rows, truncated } = await sentStatusCsv(deps, actor, input);
  const setup = await sendingSetup(deps, actor.orgId);
  const domain = setup.domain ?? me.email.split('@')[1] ?? 'localhost';
  const filename = `sent-email-status-${input.from}-to-${input.to}.csv`;
  const text =
    `${me.name} shared the report "${name}" with you: emails sent from ${input.from} to ${input.to}` +
    `${input.status ? `, status ${input.status}` : ''}; ${rows} rows${truncated ? ` (the first ${EXPORT_MAX})` : ''}.\n\n` +
    `The report is attached as ${filename}.\n`;
  const content = Buffer.from(csv, 'utf8');
  await deps.db.transaction().execute(async (trx) => {
    const msgs = await trx
      .insertInto('messages')
      .values(
        users.map((u) => ({
          org_id: actor.orgId,
          kind: 'system' as const,
          sender_id: actor.userId,
          from_address: me.email,
          from_name: 'Parley',
          reply_to: me.email,
          to_address: u.email,
          to_name: u.name,
          subject: `Parley report: ${name}`,
          text,
          message_id_header: newMessageIdHeader(domain),
          transport: setup.transport,
          expires_at: deliveryExpiresAt(deps),
        })),
      )
      .returning('id')
      .execute();
    await sql`
      INSERT INTO message_attachments (message_id, filename, content_type, content)
      SELECT id, ${filename}, 'text/csv; charset=utf-8', ${content}::bytea
      FROM unnest(${msgs.map((m) => m.id)}::uuid[]) AS id`.execute(trx);
    await wakeDelivery(deps, trx, actor.orgId);
  });
  return { queued: users.length, rows, truncated };
}
