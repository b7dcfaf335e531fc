// Reading the email_events feed by cursor, safely from several processes. One reader per cursor at
// a time (the cursor row is locked, SKIP LOCKED: a busy cursor is skipped, not waited for); events
// are taken in (txid, id) order and only from transactions older than every one still running, so
// an event whose transaction commits late is never jumped over. The handler runs in the same
// transaction as the cursor move: its writes and the new position commit together.
import { sql, type Transaction } from 'kysely';
import pg from 'pg';
import type { DB, EmailEventKind } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { EVENTS_CHANNEL } from '../tracking/events.ts';

export interface FeedEvent {
  id: number;
  orgId: string;
  messageId: string | null;
  recordId: string | null;
  massEmailId: string | null;
  kind: EmailEventKind;
  human: boolean;
  at: Date;
  data: Record<string, unknown>;
}

/**
 * Hands the next batch of events after the cursor `name` to `handle`. Returns how many events were
 * handled, or -1 when another process holds the cursor.
 */
export async function readEventFeed(
  deps: Deps,
  name: string,
  limit: number,
  handle: (trx: Transaction<DB>, events: FeedEvent[]) => Promise<void>,
): Promise<number> {
  await sql`INSERT INTO feed_cursors (name) VALUES (${name}) ON CONFLICT DO NOTHING`.execute(deps.db);
  return deps.db.transaction().execute(async (trx) => {
    const cur = await sql<{ txid: string; event_id: number }>`
      SELECT txid::text AS txid, event_id FROM feed_cursors WHERE name = ${name} FOR UPDATE SKIP LOCKED`.execute(
      trx,
    );
    const c = cur.rows[0];
    if (!c) return -1;
    const rows = await sql<{
      id: number;
      org_id: string;
      message_id: string | null;
      record_id: string | null;
      mass_email_id: string | null;
      kind: EmailEventKind;
      human: boolean;
      at: Date;
      data: Record<string, unknown>;
      txid: string;
    }>`
      SELECT e.id, e.org_id, e.message_id, e.record_id, e.mass_email_id, e.kind, e.human, e.at, e.data,
        e.txid::text AS txid
      FROM email_events e
      WHERE (e.txid, e.id) > (${c.txid}::xid8, ${c.event_id}::bigint)
        AND e.txid < pg_snapshot_xmin(pg_current_snapshot())
      -- By the xid8 column, not the text alias: as text "1000" < "999", and a batch taken while
      -- transaction ids gain a digit would skip events and read others twice.
      ORDER BY e.txid, e.id
      LIMIT ${limit}`.execute(trx);
    if (!rows.rows.length) return 0;
    await handle(
      trx,
      rows.rows.map((r) => ({
        id: r.id,
        orgId: r.org_id,
        messageId: r.message_id,
        recordId: r.record_id,
        massEmailId: r.mass_email_id,
        kind: r.kind,
        human: r.human,
        at: r.at,
        data: r.data,
      })),
    );
    const last = rows.rows[rows.rows.length - 1];
    await sql`UPDATE feed_cursors SET txid = ${last.txid}::xid8, event_id = ${last.id}, updated_at = now()
      WHERE name = ${name}`.execute(trx);
    return rows.rows.length;
  });
}

export interface FeedLoop {
  wake(): void;
  stop(): Promise<void>;
}

/**
 * Runs `pass` when woken by NOTIFY on the events channel, and every pollMs anyway (retries that
 * came due, a missed notification). `pass` returns true when there is more to do right away.
 */
export function startFeedLoop(
  deps: Deps,
  opts: {
    name: string;
    connectionString: string;
    pollMs: number;
    pass: () => Promise<boolean>;
    isStopping?: () => boolean;
  },
): FeedLoop {
  let stopped = false;
  let woken = false;
  let wakeup: (() => void) | null = null;
  const wake = () => {
    woken = true;
    wakeup?.();
  };
  const idle = (ms: number) =>
    new Promise<void>((resolve) => {
      if (woken || stopped) return resolve();
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        wakeup = null;
        resolve();
      }
      wakeup = done;
    });
  const running = (async () => {
    while (!stopped) {
      woken = false;
      let more = false;
      try {
        more = await opts.pass();
      } catch (err) {
        if (!opts.isStopping?.() && !stopped) deps.log.error({ err }, `${opts.name} pass failed`);
      }
      if (!more) await idle(opts.pollMs);
    }
  })();

  // LISTEN on a connection of its own, re-established after a loss (polling covers the gap).
  let listener: pg.Client | null = null;
  let relisten: NodeJS.Timeout | null = null;
  async function listen() {
    if (stopped) return;
    const client = new pg.Client({ connectionString: opts.connectionString });
    // A second look shortly after: an event is only read once every older transaction has
    // ended, which may be a moment after its own commit notified us.
    client.on('notification', () => {
      wake();
      setTimeout(wake, 300).unref();
    });
    client.on('error', () => {
      client.end().catch(() => {});
      if (listener === client) listener = null;
      if (!stopped) relisten = setTimeout(() => void listen(), 2000);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${EVENTS_CHANNEL}`);
      if (stopped) await client.end();
      else listener = client;
    } catch {
      client.end().catch(() => {});
      if (!stopped) relisten = setTimeout(() => void listen(), 2000);
    }
  }
  void listen();

  return {
    wake,
    async stop() {
      stopped = true;
      if (relisten) clearTimeout(relisten);
      wake();
      await running;
      await listener?.end().catch(() => {});
    },
  };
}
