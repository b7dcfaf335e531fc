// The one feed of judged email events (0004_insights_events.sql). Writers (tracking hits, bounces,
// unsubscribes, replies) call recordEvents inside the transaction that changed the message; readers
// (statuses, the live feed, outgoing webhooks, trigger actions) follow email_events.id as a cursor
// and LISTEN on EVENTS_CHANNEL to wake up, polling as a fallback.
import { sql } from 'kysely';
import type { Db } from '../db/pool.ts';
import type { EmailEventKind } from '../db/schema.ts';

export const EVENTS_CHANNEL = 'parley_email_events';

export interface NewEmailEvent {
  orgId: string;
  messageId: string | null;
  recordId: string | null;
  massEmailId: string | null;
  kind: EmailEventKind;
  /** false for machine opens and scanner clicks. */
  human: boolean;
  at: Date;
  data?: Record<string, unknown>;
}

/** Inserts the events in one statement and notifies the readers (on commit, when in a transaction). */
export async function recordEvents(db: Db, events: readonly NewEmailEvent[]): Promise<void> {
  if (!events.length) return;
  await sql`
    INSERT INTO email_events (org_id, message_id, record_id, mass_email_id, kind, human, at, data)
    SELECT * FROM unnest(
      ${events.map((e) => e.orgId)}::uuid[], ${events.map((e) => e.messageId)}::uuid[],
      ${events.map((e) => e.recordId)}::uuid[], ${events.map((e) => e.massEmailId)}::uuid[],
      ${events.map((e) => e.kind)}::text[], ${events.map((e) => e.human)}::boolean[],
      ${events.map((e) => e.at.toISOString())}::timestamptz[],
      ${events.map((e) => JSON.stringify(e.data ?? {}))}::jsonb[])`.execute(db);
  for (const org of new Set(events.map((e) => e.orgId)))
    await sql`SELECT pg_notify(${EVENTS_CHANNEL}, ${org})`.execute(db);
}
