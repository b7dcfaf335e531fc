// Sales signals (F4.11): what a user hears, live, about records they own: opened, clicked (people
// only, never privacy proxies or link scanners), bounced, replied, received. Read from the
// email_events feed by id, woken by NOTIFY on parley_email_events (one LISTEN connection per
// process, shared by every open stream), with a slow poll as the fallback.

import { sql } from 'kysely';
import pg from 'pg';
import { type Actor, can, displayName } from '../crm/index.ts';
import type { Db } from '../db/pool.ts';
import type { Deps } from '../deps.ts';
import { EVENTS_CHANNEL } from './events.ts';

const FEED_BATCH = 200;

export const FEED_KINDS = ['opened', 'clicked', 'bounced', 'replied', 'received'] as const;
export type FeedKind = (typeof FEED_KINDS)[number];

export interface FeedEvent {
  id: string;
  kind: FeedKind;
  at: string;
  module: string;
  recordId: string;
  recordName: string;
  messageId: string | null;
  subject: string | null;
  /** Bounces: hard, soft or policy. */
  bounceKind: string | null;
}

/** The newest event id of the org: a new stream starts after it. */
export async function feedHead(db: Db, orgId: string): Promise<string> {
  const r = await sql<{
    id: string | null;
  }>`SELECT max(id)::text AS id FROM email_events WHERE org_id = ${orgId}`.execute(db);
  return r.rows[0]?.id ?? '0';
}

/**
 * The user's events with id > after (ids as decimal strings: bigserial), oldest first, scoped to
 * the org and to records the user owns; `event` is null where the user may not read the module
 * (the id still counts as read, so such events never hold the stream up).
 */
export async function readFeed(
  db: Db,
  actor: Actor,
  after: string,
  opts: { exclude?: string[]; limit?: number } = {},
): Promise<{ id: string; event: FeedEvent | null }[]> {
  const rows = await sql<{
    id: string;
    kind: FeedKind;
    at: Date;
    record_id: string;
    message_id: string | null;
    data: Record<string, unknown>;
    module: string;
    record_data: Record<string, unknown>;
    subject: string | null;
  }>`
    SELECT e.id::text AS id, e.kind, e.at, e.record_id, e.message_id, e.data, mo.api_name AS module,
      r.data AS record_data, m.subject
    FROM email_events e
    JOIN records r ON r.id = e.record_id AND r.org_id = e.org_id
    JOIN modules mo ON mo.id = r.module_id
    LEFT JOIN messages m ON m.id = e.message_id AND m.org_id = e.org_id
    WHERE e.org_id = ${actor.orgId} AND e.id > ${after}::bigint AND r.owner_id = ${actor.userId}
      AND e.kind = ANY(${[...FEED_KINDS]}::text[])
      AND (e.human OR e.kind NOT IN ('opened', 'clicked'))
      AND NOT (e.id = ANY(${opts.exclude ?? []}::bigint[]))
    ORDER BY e.id
    LIMIT ${opts.limit ?? 200}`.execute(db);
  return rows.rows.map((r) => ({
    id: r.id,
    event: can(actor, r.module, 'read')
      ? {
          id: r.id,
          kind: r.kind,
          at: r.at.toISOString(),
          module: r.module,
          recordId: r.record_id,
          recordName: displayName(r.module, r.record_data),
          messageId: r.message_id,
          subject: r.subject,
          bounceKind: r.kind === 'bounced' && typeof r.data.kind === 'string' ? r.data.kind : null,
        }
      : null,
  }));
}

const bigger = (a: string, b: string) => (BigInt(a) >= BigInt(b) ? a : b);

/**
 * One user's position in the feed. Ids are handed out before commit, so an event can become
 * visible after one with a higher id: each read looks back over what arrived in the last
 * `lookbackMs` and skips what was already sent, so a late commit is still delivered.
 */
export class FeedCursor {
  private sent = new Set<string>(); // ids sent above the floor
  private marks: { at: number; cursor: string }[] = [];
  /** The last read was a full batch: read again at once. */
  more = false;
  constructor(
    public cursor: string,
    private readonly lookbackMs = 30_000,
  ) {}

  async next(db: Db, actor: Actor, now = Date.now()): Promise<FeedEvent[]> {
    this.marks.push({ at: now, cursor: this.cursor });
    while (this.marks.length > 1 && this.marks[1].at <= now - this.lookbackMs) this.marks.shift();
    const from = this.marks[0].cursor;
    // What is at or below the floor is never read again, so it need not be remembered.
    for (const id of this.sent) if (BigInt(id) <= BigInt(from)) this.sent.delete(id);
    const rows = await readFeed(db, actor, from, { exclude: [...this.sent], limit: FEED_BATCH });
    for (const r of rows) {
      this.sent.add(r.id);
      this.cursor = bigger(this.cursor, r.id);
    }
    this.more = rows.length === FEED_BATCH;
    return rows.flatMap((r) => (r.event ? [r.event] : []));
  }
}

/** Wakes the streams of an org when its events are recorded. */
export interface FeedHub {
  subscribe(orgId: string, wake: () => void): () => void;
  close(): Promise<void>;
}

/** One LISTEN connection, opened with the first subscriber; reconnects after a loss. */
export function createFeedHub(deps: Deps, connectionString: string | undefined): FeedHub {
  const subscribers = new Map<string, Set<() => void>>();
  let client: pg.Client | null = null;
  let retry: NodeJS.Timeout | null = null;
  let closed = false;
  const wakeAll = (orgId?: string) => {
    for (const [org, set] of subscribers) if (!orgId || org === orgId) for (const w of set) w();
  };
  async function listen() {
    if (closed || client || !connectionString) return;
    const c = new pg.Client({ connectionString });
    client = c;
    const lost = (err: Error) => {
      c.end().catch(() => {});
      if (client === c) client = null;
      if (closed) return;
      deps.log.debug({ err: { message: err.message } }, 'live feed LISTEN connection lost; retrying');
      retry = setTimeout(() => void listen(), 2000);
    };
    c.on('notification', (n) => {
      if (n.channel === EVENTS_CHANNEL) wakeAll(n.payload);
    });
    c.on('error', lost);
    try {
      await c.connect();
      await c.query(`LISTEN ${EVENTS_CHANNEL}`);
      wakeAll(); // anything recorded while not listening
    } catch (err) {
      lost(err as Error);
    }
  }
  return {
    subscribe(orgId, wake) {
      const set = subscribers.get(orgId) ?? new Set();
      subscribers.set(orgId, set);
      set.add(wake);
      void listen();
      return () => {
        set.delete(wake);
        if (set.size === 0) subscribers.delete(orgId);
      };
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const c = client;
      client = null;
      await c?.end().catch(() => {});
    },
  };
}
