// Email statuses read from the database: a message's detail for the record's Emails list, and the
// latest email status of records (F4.5), computed when read (see 0007_email_status.sql for why).
import { sql } from 'kysely';
import type { Db } from '../db/pool.ts';
import {
  type EmailStatus,
  emailStatus,
  type LatestState,
  latestState,
  type MessageSummary,
  SUMMARY_COLUMNS,
} from './status.ts';

/** Kinds of message that are emails to a record (tests and system mail are not). */
export const RECORD_MESSAGE_KINDS = ['individual', 'mass'] as const;

/** Adds the derived status to rows that carry the summary columns. */
export function withStatus<T extends MessageSummary>(rows: T[]): (T & { insight: EmailStatus })[] {
  return rows.map((r) => ({ ...r, insight: emailStatus(r) }));
}

export interface RecordLatest {
  state: LatestState;
  at: string;
  messageId: string | null;
}

/**
 * The latest email status of each record (absent: no email either way). One statement; per record
 * one probe of messages_record_idx and one of email_events_received_idx.
 */
export async function latestEmailStatuses(
  db: Db,
  orgId: string,
  recordIds: readonly string[],
): Promise<Map<string, RecordLatest>> {
  const out = new Map<string, RecordLatest>();
  if (recordIds.length === 0) return out;
  const cols = sql.join(SUMMARY_COLUMNS.map((c) => sql.ref(`m.${c}`)));
  const rows = await sql<
    MessageSummary & { record_id: string; message_id: string | null; received_at: Date | null }
  >`
    SELECT x.id AS record_id, nm.*, rc.at AS received_at
    FROM unnest(${[...recordIds]}::uuid[]) AS x(id)
    LEFT JOIN LATERAL (
      SELECT m.id AS message_id, ${cols} FROM messages m
      WHERE m.org_id = ${orgId} AND m.record_id = x.id
        AND m.kind = ANY(${[...RECORD_MESSAGE_KINDS]}::text[]) AND (m.sent_at IS NOT NULL OR m.bounced_at IS NOT NULL)
      ORDER BY m.created_at DESC LIMIT 1
    ) nm ON true
    LEFT JOIN LATERAL (
      SELECT e.at FROM email_events e
      WHERE e.org_id = ${orgId} AND e.record_id = x.id AND e.kind = 'received'
      ORDER BY e.at DESC LIMIT 1
    ) rc ON true`.execute(db);
  for (const r of rows.rows) {
    const newest = r.message_id ? emailStatus(r) : null;
    const l = latestState(newest, r.received_at ? r.received_at.toISOString() : null);
    if (l) out.set(r.record_id, { ...l, messageId: l.state === 'received' ? null : r.message_id });
  }
  return out;
}
