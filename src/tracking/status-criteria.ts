// Email status in criteria (F4.8): `{ kind: 'email_status', status, when?, days? }` matches a record
// when at least one of the emails it was sent (or, for "received", that it sent us) is in that
// status within the time window, in the user's zone. Registered as a condition kind, so it works
// in every criteria: views, filters, mass email audiences, follow-up ignore criteria, autoresponders.
//
// The window applies to the moment the status was reached (sent, first open, first click, bounce,
// reply, received); for the negative ones (not opened, not clicked) to the send, as in "sent in the
// last 2 days and not opened". Opens are only seen on tracked emails, so an untracked email is
// neither opened nor "not opened". The SQL and the in-memory twin below must agree; a test on a
// real database checks that they do.
import { type RawBuilder, type SqlBool, sql } from 'kysely';
import { dayRangeToInstants, type InstantRange, relativeDayRange } from '../crm/criteria/dates.ts';
import { ConditionError, registerConditionKind } from '../crm/criteria/registry.ts';
import type { CriteriaContext, EvalRecord, KindConditionInput } from '../crm/criteria/types.ts';
import type { Db } from '../db/pool.ts';
import { RECORD_MESSAGE_KINDS } from './record-status.ts';
import { CRITERIA_STATUSES, type CriteriaStatus, STATUS_WINDOWS, type StatusWindow } from './status.ts';

export { CRITERIA_STATUSES, STATUS_WINDOWS };

export const EMAIL_STATUS_KIND = 'email_status';

const MAX_DAYS = 3650;

export interface EmailStatusNode {
  status: CriteriaStatus;
  when: StatusWindow | null;
  days: number | null;
}

/** What the in-memory evaluator needs of a record's emails (loadEmailFacts reads it). */
export interface MessageFacts {
  transport: 'relay' | 'outbox';
  tracked: boolean;
  sent_at: Date | null;
  bounced_at: Date | null;
  opened_at: Date | null;
  clicked_at: Date | null;
  replied_at: Date | null;
}
export interface EmailFacts {
  messages: MessageFacts[];
  /** When each email received from the record arrived. */
  received: Date[];
}
export type RecordWithEmails = EvalRecord & { emails?: EmailFacts };

const show = (v: unknown) => (v === undefined ? 'nothing' : JSON.stringify(v).slice(0, 60));
const listed = (xs: readonly string[]) => xs.join(', ');

export function validateEmailStatus(cond: KindConditionInput): EmailStatusNode {
  const { kind: _kind, status, when, days, ...rest } = cond as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length)
    throw new ConditionError(`email status takes "status", "when" and "days", not "${extra[0]}"`);
  if (typeof status !== 'string' || !(CRITERIA_STATUSES as readonly string[]).includes(status))
    throw new ConditionError(
      `email status needs "status", one of: ${listed(CRITERIA_STATUSES)}; got ${show(status)}`,
    );
  if (when === undefined || when === null) {
    if (days !== undefined && days !== null)
      throw new ConditionError('"days" goes with "when": "in_last_n_days" or "older_than_n_days"');
    return { status: status as CriteriaStatus, when: null, days: null };
  }
  if (typeof when !== 'string' || !(STATUS_WINDOWS as readonly string[]).includes(when))
    throw new ConditionError(
      `"when" must be one of: ${listed(STATUS_WINDOWS)} (or left out for any time); got ${show(when)}`,
    );
  const needsDays = when === 'in_last_n_days' || when === 'older_than_n_days';
  if (!needsDays) {
    if (days !== undefined && days !== null) throw new ConditionError(`"${when}" takes no "days"`);
    return { status: status as CriteriaStatus, when: when as StatusWindow, days: null };
  }
  if (typeof days !== 'number' || !Number.isInteger(days) || days < 1 || days > MAX_DAYS)
    throw new ConditionError(
      `"${when}" needs "days", a whole number from 1 to ${MAX_DAYS}; got ${show(days)}`,
    );
  return { status: status as CriteriaStatus, when: when as StatusWindow, days };
}

/** The window as UTC instants [gte, lt), from the user's local days; null for any time. */
export function windowOf(node: EmailStatusNode, ctx: CriteriaContext): InstantRange | null {
  if (!node.when) return null;
  return dayRangeToInstants(
    relativeDayRange(node.when, node.days ?? undefined, ctx.timeZone, ctx.now),
    ctx.timeZone,
  );
}

// ---- SQL ----------------------------------------------------------------------------------------

type Bool = RawBuilder<SqlBool>;

function inWindow(time: RawBuilder<unknown>, w: InstantRange | null): Bool {
  const parts: Bool[] = [sql<SqlBool>`${time} IS NOT NULL`];
  if (w?.gte !== undefined) parts.push(sql<SqlBool>`${time} >= ${w.gte}::timestamptz`);
  if (w?.lt !== undefined) parts.push(sql<SqlBool>`${time} < ${w.lt}::timestamptz`);
  return sql<SqlBool>`(${sql.join(parts, sql` AND `)})`;
}

// LEAST skips NULLs: the first open, counting a click as an open (F4.3).
const FIRST_OPEN = sql`LEAST(m.opened_at, m.clicked_at)`;
const NOT_BOUNCED_SENT = sql<SqlBool>`m.bounced_at IS NULL`;

function messagePredicate(status: Exclude<CriteriaStatus, 'received'>, w: InstantRange | null): Bool {
  switch (status) {
    case 'sent':
      return inWindow(sql`m.sent_at`, w);
    case 'delivered':
      return sql<SqlBool>`(${inWindow(sql`m.sent_at`, w)} AND ${NOT_BOUNCED_SENT} AND m.transport = 'relay')`;
    case 'bounced':
      return inWindow(sql`m.bounced_at`, w);
    case 'opened':
      return inWindow(FIRST_OPEN, w);
    case 'clicked':
      return inWindow(sql`m.clicked_at`, w);
    case 'replied':
      return inWindow(sql`m.replied_at`, w);
    case 'not_opened':
      return sql<SqlBool>`(${inWindow(sql`m.sent_at`, w)} AND m.tracked AND ${NOT_BOUNCED_SENT} AND m.opened_at IS NULL AND m.clicked_at IS NULL)`;
    case 'not_clicked':
      return sql<SqlBool>`(${inWindow(sql`m.sent_at`, w)} AND m.tracked AND ${NOT_BOUNCED_SENT} AND m.clicked_at IS NULL)`;
    case 'opened_not_replied':
      return sql<SqlBool>`(${inWindow(FIRST_OPEN, w)} AND m.replied_at IS NULL)`;
  }
}

/** EXISTS over the record's messages (messages_record_idx) or received emails (email_events_received_idx). */
export function compileEmailStatus(node: EmailStatusNode, ctx: CriteriaContext): Bool {
  const w = windowOf(node, ctx);
  if (node.status === 'received')
    return sql<SqlBool>`EXISTS (SELECT 1 FROM email_events e WHERE e.org_id = ${ctx.orgId} AND e.record_id = r.id AND e.kind = 'received' AND ${inWindow(sql`e.at`, w)})`;
  return sql<SqlBool>`EXISTS (SELECT 1 FROM messages m WHERE m.org_id = ${ctx.orgId} AND m.record_id = r.id AND m.kind = ANY(${[...RECORD_MESSAGE_KINDS]}::text[]) AND ${messagePredicate(node.status, w)})`;
}

// ---- In memory ----------------------------------------------------------------------------------

function within(t: Date | null, w: InstantRange | null): boolean {
  if (t === null) return false;
  const ms = t.getTime();
  return (w?.gte === undefined || ms >= Date.parse(w.gte)) && (w?.lt === undefined || ms < Date.parse(w.lt));
}

// The first open, counting a click as an open (as LEAST does in SQL).
function firstOpen(m: MessageFacts): Date | null {
  const times = [m.opened_at, m.clicked_at].filter((t): t is Date => t !== null);
  return times.length ? new Date(Math.min(...times.map((t) => t.getTime()))) : null;
}

function messageMatches(
  status: Exclude<CriteriaStatus, 'received'>,
  m: MessageFacts,
  w: InstantRange | null,
) {
  switch (status) {
    case 'sent':
      return within(m.sent_at, w);
    case 'delivered':
      return within(m.sent_at, w) && m.bounced_at === null && m.transport === 'relay';
    case 'bounced':
      return within(m.bounced_at, w);
    case 'opened':
      return within(firstOpen(m), w);
    case 'clicked':
      return within(m.clicked_at, w);
    case 'replied':
      return within(m.replied_at, w);
    case 'not_opened':
      return within(m.sent_at, w) && m.tracked && m.bounced_at === null && firstOpen(m) === null;
    case 'not_clicked':
      return within(m.sent_at, w) && m.tracked && m.bounced_at === null && m.clicked_at === null;
    case 'opened_not_replied':
      return within(firstOpen(m), w) && m.replied_at === null;
  }
}

export function evaluateEmailStatus(
  node: EmailStatusNode,
  ctx: CriteriaContext,
  record: EvalRecord,
): boolean {
  const emails = (record as RecordWithEmails).emails;
  // Silently answering "no" without the facts would make an in-memory check disagree with SQL.
  if (!emails) throw new Error("email status needs the record's emails: load them with loadEmailFacts");
  const w = windowOf(node, ctx);
  if (node.status === 'received') return emails.received.some((t) => within(t, w));
  const status = node.status;
  return emails.messages.some((m) => messageMatches(status, m, w));
}

/** Attaches each record's email facts, so that criteria with email status can run in memory. */
export async function loadEmailFacts<R extends EvalRecord>(
  db: Db,
  orgId: string,
  records: readonly R[],
): Promise<(R & { emails: EmailFacts })[]> {
  const ids = records.map((r) => r.id);
  const facts = new Map<string, EmailFacts>(ids.map((id) => [id, { messages: [], received: [] }]));
  if (ids.length) {
    const messages = await db
      .selectFrom('messages')
      .select([
        'record_id',
        'transport',
        'tracked',
        'sent_at',
        'bounced_at',
        'opened_at',
        'clicked_at',
        'replied_at',
      ])
      .where('org_id', '=', orgId)
      .where('record_id', 'in', ids)
      .where('kind', 'in', [...RECORD_MESSAGE_KINDS])
      .execute();
    for (const { record_id, ...m } of messages) facts.get(record_id as string)?.messages.push(m);
    const received = await db
      .selectFrom('email_events')
      .select(['record_id', 'at'])
      .where('org_id', '=', orgId)
      .where('record_id', 'in', ids)
      .where('kind', '=', 'received')
      .execute();
    for (const e of received) facts.get(e.record_id as string)?.received.push(e.at);
  }
  return records.map((r) => ({ ...r, emails: facts.get(r.id) as EmailFacts }));
}

registerConditionKind<EmailStatusNode>(EMAIL_STATUS_KIND, {
  validate: (cond) => validateEmailStatus(cond),
  compile: compileEmailStatus,
  evaluate: evaluateEmailStatus,
});
