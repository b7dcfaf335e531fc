// The webhook dispatcher: turns the email_events feed and messages reaching 'sent' into one
// delivery row per subscribed endpoint (fan-out, idempotent by event_key), then POSTs due
// deliveries, signed, with exponential backoff. Any number of workers may run it: the feed cursors
// are locked while read and deliveries are claimed with SKIP LOCKED, so each attempt is made once.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { sql, type Transaction } from 'kysely';
import { claimOrPutBack } from '../db/retry-write.ts';
import type { DB, WebhookEvent } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { decryptSecret } from '../sending/secrets.ts';
import { type FeedEvent, type FeedLoop, readEventFeed, startFeedLoop } from './feed.ts';
import { secretContext } from './service.ts';
import { SIGNATURE_HEADER, signPayload } from './signing.ts';
import { checkWebhookUrl, guardedLookup } from './targets.ts';

/** Delay before attempt n+1 after n failed attempts: 9 attempts spread over about 23 hours. */
export const BACKOFF_MS = [
  30e3,
  2 * 60e3,
  10 * 60e3,
  30 * 60e3,
  60 * 60e3,
  3 * 3600e3,
  6 * 3600e3,
  12 * 3600e3,
];
export const REQUEST_TIMEOUT_MS = 10_000;
// A claimed batch is done within (batch / concurrency) × timeout = 20 s, far inside the 2 minutes
// after which a claim is taken for abandoned.
const CLAIM_BATCH = 32;
const CONCURRENCY = 16;
const STUCK_AFTER_MS = 2 * 60_000;
const MAX_UUID = 'ffffffff-ffff-ffff-ffff-ffffffffffff';

export interface DispatchOptions {
  /** 'delivered' = sent, and no bounce seen this long after. */
  deliveredAfterMs?: number;
  /** 'sent' is read this long after sent_at, so that late-committing batches are not jumped over. */
  sentLagMs?: number;
  backoffMs?: readonly number[];
  timeoutMs?: number;
}

const FEED_KINDS: Partial<Record<string, WebhookEvent>> = {
  opened: 'opened',
  clicked: 'clicked',
  bounced: 'bounced',
  replied: 'replied',
  unsubscribed: 'unsubscribed',
};

type Trx = Transaction<DB>;

async function subscribers(trx: Trx, orgIds: string[], events: WebhookEvent[]) {
  if (!orgIds.length) return [];
  return trx
    .selectFrom('webhook_endpoints')
    .select(['id', 'org_id', 'events'])
    .where('enabled', '=', true)
    .where('org_id', 'in', orgIds)
    .where(sql<boolean>`events && ${events}::text[]`)
    .execute();
}

interface MessageInfo {
  id: string;
  to_address: string;
  subject: string;
  record_id: string | null;
  module: string | null;
  mass_email_id: string | null;
  sent_at: Date | null;
}

async function messageInfo(trx: Trx, ids: string[]): Promise<Map<string, MessageInfo>> {
  if (!ids.length) return new Map();
  const rows = await trx
    .selectFrom('messages as m')
    .leftJoin('modules as mo', 'mo.id', 'm.module_id')
    .select([
      'm.id',
      'm.to_address',
      'm.subject',
      'm.record_id',
      'mo.api_name as module',
      'm.mass_email_id',
      'm.sent_at',
    ])
    .where('m.id', 'in', ids)
    .execute();
  return new Map(rows.map((r) => [r.id, r]));
}

interface Fanned {
  orgId: string;
  event: WebhookEvent;
  key: string;
  data: Record<string, unknown>;
}

async function insertDeliveries(
  trx: Trx,
  endpoints: { id: string; org_id: string; events: WebhookEvent[] }[],
  items: Fanned[],
  now: Date,
) {
  const rows = [];
  for (const it of items)
    for (const e of endpoints) {
      if (e.org_id !== it.orgId || !e.events.includes(it.event)) continue;
      const id = randomUUID();
      rows.push({
        id,
        org_id: it.orgId,
        endpoint_id: e.id,
        event_key: it.key,
        event: it.event,
        payload: JSON.stringify({ id, event: it.event, createdAt: now.toISOString(), data: it.data }),
        next_attempt_at: now,
      });
    }
  for (let i = 0; i < rows.length; i += 500)
    await trx
      .insertInto('webhook_deliveries')
      .values(rows.slice(i, i + 500))
      .onConflict((c) => c.columns(['endpoint_id', 'event_key']).doNothing())
      .execute();
  return rows.length;
}

const messageData = (m: MessageInfo | undefined) =>
  m
    ? {
        messageId: m.id,
        to: m.to_address,
        subject: m.subject,
        recordId: m.record_id,
        module: m.module,
        massEmailId: m.mass_email_id,
      }
    : {};

/** Email events (opens, clicks, bounces, replies, unsubscribes) → deliveries. Human events only. */
export async function fanOutEvents(deps: Deps, limit = 1000): Promise<number> {
  return readEventFeed(deps, 'webhooks.events', limit, async (trx, events: FeedEvent[]) => {
    const wanted = events.filter((e) => e.human && FEED_KINDS[e.kind]);
    const endpoints = await subscribers(
      trx,
      [...new Set(wanted.map((e) => e.orgId))],
      [...new Set(wanted.map((e) => FEED_KINDS[e.kind] as WebhookEvent))],
    );
    if (!endpoints.length) return;
    const orgs = new Set(endpoints.map((e) => e.org_id));
    const mine = wanted.filter((e) => orgs.has(e.orgId));
    const info = await messageInfo(trx, [
      ...new Set(mine.map((e) => e.messageId).filter((x): x is string => !!x)),
    ]);
    await insertDeliveries(
      trx,
      endpoints,
      mine.map((e) => ({
        orgId: e.orgId,
        event: FEED_KINDS[e.kind] as WebhookEvent,
        key: `e:${e.id}`,
        data: {
          ...messageData(e.messageId ? info.get(e.messageId) : undefined),
          recordId: e.recordId,
          massEmailId: e.massEmailId,
          at: e.at.toISOString(),
          detail: e.data,
        },
      })),
      deps.clock.now(),
    );
  });
}

/**
 * Messages that reached 'sent' (or, for 'delivered', were sent long enough ago without a bounce)
 * → deliveries. Read by a (sent_at, id) cursor, only for orgs with a subscriber, so sending itself
 * does no extra work.
 */
export async function fanOutSent(
  deps: Deps,
  which: 'sent' | 'delivered',
  lagMs: number,
  limit = 1000,
): Promise<number> {
  const name = `webhooks.${which}`;
  await sql`INSERT INTO feed_cursors (name) VALUES (${name}) ON CONFLICT DO NOTHING`.execute(deps.db);
  return deps.db.transaction().execute(async (trx) => {
    const cur = await trx
      .selectFrom('feed_cursors')
      .select(['at', 'message_id'])
      .where('name', '=', name)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
    if (!cur) return -1;
    const now = deps.clock.now();
    const upTo = new Date(now.getTime() - lagMs);
    const from = cur.at ?? upTo; // a new cursor starts now: no history is replayed
    const fromId = cur.at ? (cur.message_id ?? MAX_UUID) : MAX_UUID;
    const endpoints = await trx
      .selectFrom('webhook_endpoints')
      .select(['id', 'org_id', 'events'])
      .where('enabled', '=', true)
      .where(sql<boolean>`${which} = ANY(events)`)
      .execute();
    let n = 0;
    let next = { at: upTo, id: MAX_UUID };
    if (endpoints.length && from < upTo) {
      const orgIds = [...new Set(endpoints.map((e) => e.org_id))];
      const rows = await trx
        .selectFrom('messages as m')
        .leftJoin('modules as mo', 'mo.id', 'm.module_id')
        .select([
          'm.id',
          'm.org_id',
          'm.to_address',
          'm.subject',
          'm.record_id',
          'mo.api_name as module',
          'm.mass_email_id',
          'm.sent_at',
        ])
        .where('m.org_id', 'in', orgIds)
        .where('m.status', '=', 'sent')
        .where('m.kind', 'not in', ['test', 'system'])
        .where(sql<boolean>`(m.sent_at, m.id) > (${from}::timestamptz, ${fromId}::uuid)`)
        .where('m.sent_at', '>=', from) // the plain bound is what the BRIN index can use
        .where('m.sent_at', '<=', upTo)
        .$if(which === 'delivered', (q) => q.where('m.bounced_at', 'is', null))
        .orderBy('m.sent_at')
        .orderBy('m.id')
        .limit(limit)
        .execute();
      n = rows.length;
      if (rows.length === limit) {
        const last = rows[rows.length - 1];
        next = { at: last.sent_at as Date, id: last.id };
      }
      await insertDeliveries(
        trx,
        endpoints,
        rows.map((m) => ({
          orgId: m.org_id,
          event: which,
          key: `${which === 'sent' ? 's' : 'd'}:${m.id}`,
          data: { ...messageData(m), at: (m.sent_at as Date).toISOString() },
        })),
        now,
      );
    }
    await trx
      .updateTable('feed_cursors')
      .set({ at: next.at, message_id: next.id, updated_at: now })
      .where('name', '=', name)
      .execute();
    return n;
  });
}

interface Claimed {
  id: string;
  org_id: string;
  endpoint_id: string;
  event: string;
  payload: Record<string, unknown>;
  attempts: number;
  claimed_at: Date;
  url: string;
  secret_enc: string;
}

/** Claims due deliveries (SKIP LOCKED) and POSTs them; returns how many were attempted. */
export async function deliverDueWebhooks(
  deps: Deps,
  opts: DispatchOptions & { limit?: number; concurrency?: number } = {},
): Promise<number> {
  const now = deps.clock.now();
  const claimId = randomUUID();
  const claim = sql<Claimed>`
    WITH due AS (
      SELECT d.id FROM webhook_deliveries d
      JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
      WHERE d.status = 'pending' AND d.next_attempt_at <= ${now}
      ORDER BY d.next_attempt_at
      LIMIT ${opts.limit ?? CLAIM_BATCH}
      FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries d SET status = 'delivering', claimed_at = ${now}, claim_id = ${claimId},
      attempts = d.attempts + 1
    FROM due, webhook_endpoints e
    WHERE d.id = due.id AND e.id = d.endpoint_id
    RETURNING d.id, d.org_id, d.endpoint_id, d.event, d.payload, d.attempts, d.claimed_at, e.url, e.secret_enc`;
  // Nothing of a claim whose answer was lost was POSTed: its deliveries go back now, the attempt
  // not counted (recoverWebhooks would count it, two minutes later).
  const claimed = await claimOrPutBack(
    deps,
    'webhook deliveries',
    STUCK_AFTER_MS / 2,
    () => claim.execute(deps.db),
    () =>
      sql`UPDATE webhook_deliveries SET status = 'pending', attempts = attempts - 1
        WHERE status = 'delivering' AND claimed_at = ${now} AND claim_id = ${claimId}`.execute(deps.db),
  );
  const queue = [...claimed.rows];
  const outcomes: Outcome[] = [];
  const workers = Array.from(
    { length: Math.min(opts.concurrency ?? CONCURRENCY, queue.length) },
    async () => {
      for (let d = queue.shift(); d; d = queue.shift()) outcomes.push(await attempt(deps, d, opts));
    },
  );
  await Promise.all(workers);
  await recordOutcomes(deps, outcomes, opts);
  return claimed.rows.length;
}

interface Outcome {
  d: Claimed;
  code: number | null;
  error: string | null;
  duration: number;
  at: Date;
}

async function attempt(deps: Deps, d: Claimed, opts: DispatchOptions): Promise<Outcome> {
  const body = JSON.stringify(d.payload);
  const started = Date.now();
  let code: number | null = null;
  let error: string | null = null;
  try {
    const secret = decryptSecret(deps.config, d.secret_enc, secretContext(d.org_id, d.endpoint_id));
    code = await post(
      deps,
      d.url,
      body,
      {
        'content-type': 'application/json',
        'user-agent': 'Parley-Webhooks/1',
        'parley-event': d.event,
        'parley-delivery': d.id,
        [SIGNATURE_HEADER]: signPayload(secret, body, deps.clock.now()),
      },
      opts.timeoutMs ?? REQUEST_TIMEOUT_MS,
    );
    if (code < 200 || code >= 300) error = `HTTP ${code}`;
  } catch (e) {
    error = (e as Error).message.slice(0, 500);
  }
  return { d, code, error, duration: Date.now() - started, at: deps.clock.now() };
}

/** Writes a batch's outcomes in two statements (guarded by the claim, so a stale one is ignored). */
async function recordOutcomes(deps: Deps, outcomes: Outcome[], opts: DispatchOptions) {
  if (!outcomes.length) return;
  const backoff = opts.backoffMs ?? BACKOFF_MS;
  const rows = outcomes.map((o) => {
    const ok = o.error === null;
    const retry = !ok && o.d.attempts <= backoff.length;
    return {
      ...o,
      status: ok ? 'delivered' : retry ? 'pending' : 'failed',
      next: retry ? new Date(o.at.getTime() + backoff[o.d.attempts - 1]) : o.at,
    };
  });
  await deps.db.transaction().execute(async (trx) => {
    await sql`
      UPDATE webhook_deliveries d SET
        status = v.status, next_attempt_at = v.next, last_status_code = v.code, last_error = v.error,
        last_duration_ms = v.duration, delivered_at = CASE WHEN v.status = 'delivered' THEN v.at END
      FROM unnest(
        ${rows.map((r) => r.d.id)}::uuid[], ${rows.map((r) => r.d.claimed_at.toISOString())}::timestamptz[],
        ${rows.map((r) => r.status)}::text[], ${rows.map((r) => r.next.toISOString())}::timestamptz[],
        ${rows.map((r) => r.code)}::int[], ${rows.map((r) => r.error)}::text[],
        ${rows.map((r) => r.duration)}::int[], ${rows.map((r) => r.at.toISOString())}::timestamptz[]
      ) AS v(id, claimed_at, status, next, code, error, duration, at)
      WHERE d.id = v.id AND d.claimed_at = v.claimed_at AND d.status = 'delivering'`.execute(trx);
    await sql`
      INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, duration_ms, error)
      SELECT v.id, coalesce((SELECT max(a.attempt) FROM webhook_attempts a WHERE a.delivery_id = v.id), 0) + 1,
        v.at, v.code, v.duration, v.error
      FROM unnest(
        ${rows.map((r) => r.d.id)}::uuid[], ${rows.map((r) => r.at.toISOString())}::timestamptz[],
        ${rows.map((r) => r.code)}::int[], ${rows.map((r) => r.duration)}::int[], ${rows.map((r) => r.error)}::text[]
      ) AS v(id, at, code, duration, error)`.execute(trx);
  });
}

// Connections are kept for the next delivery to the same receiver; each one was checked by the
// guarded lookup when it was opened.
const httpAgent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

/** One POST; resolves with the status code. Redirects are not followed (a 3xx is a failure). */
function post(
  deps: Deps,
  url: string,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<number> {
  const allow = deps.config.webhooksAllowPrivate;
  const u = checkWebhookUrl(url, allow); // literal addresses never reach the lookup below
  const client = u.protocol === 'https:' ? https : http;
  const agent = u.protocol === 'https:' ? httpsAgent : httpAgent;
  return new Promise((resolve, reject) => {
    // A hard deadline for the whole exchange (a receiver that trickles its answer is cut off too).
    const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const settle = (f: () => void) => {
      clearTimeout(deadline);
      f();
    };
    const req = client.request(
      u,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
        lookup: guardedLookup(allow) as never,
        agent,
      },
      (res) => {
        res.on('data', () => {}); // drain; the body is not kept
        res.on('end', () => settle(() => resolve(res.statusCode ?? 0)));
        res.on('error', (e) => settle(() => reject(e)));
      },
    );
    req.on('error', (e) => settle(() => reject(e)));
    req.end(body);
  });
}

/** Deliveries left 'delivering' by a worker that stopped go back to pending (at least once). */
export async function recoverWebhooks(deps: Deps): Promise<number> {
  const now = deps.clock.now();
  const r = await deps.db
    .updateTable('webhook_deliveries')
    .set({ status: 'pending', next_attempt_at: now, last_error: 'worker stopped during the attempt' })
    .where('status', '=', 'delivering')
    .where('claimed_at', '<', new Date(now.getTime() - STUCK_AFTER_MS))
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

/** Delivery logs are kept 30 days. */
export async function purgeWebhookLog(deps: Deps): Promise<number> {
  const r = await deps.db
    .deleteFrom('webhook_deliveries')
    .where('status', 'in', ['delivered', 'failed'])
    .where('created_at', '<', new Date(deps.clock.now().getTime() - 30 * 86400e3))
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** One pass of everything: fan-out of each feed, then the due deliveries. */
export async function dispatchWebhooks(deps: Deps, opts: DispatchOptions = {}) {
  const events = await fanOutEvents(deps);
  const sent = await fanOutSent(deps, 'sent', opts.sentLagMs ?? 30_000);
  const delivered = await fanOutSent(deps, 'delivered', opts.deliveredAfterMs ?? 15 * 60_000);
  const attempted = await deliverDueWebhooks(deps, opts);
  return { events, sent, delivered, attempted };
}

/** The dispatcher loop of a worker process: woken by new email events, polling for retries. */
export function startWebhookDispatcher(
  deps: Deps,
  opts: DispatchOptions & { connectionString: string; pollMs?: number; isStopping?: () => boolean },
): FeedLoop {
  let lastHousekeeping = 0;
  return startFeedLoop(deps, {
    name: 'webhook dispatch',
    connectionString: opts.connectionString,
    pollMs: opts.pollMs ?? 5000,
    isStopping: opts.isStopping,
    pass: async () => {
      if (Date.now() - lastHousekeeping > 60_000) {
        lastHousekeeping = Date.now();
        await recoverWebhooks(deps);
        await purgeWebhookLog(deps);
      }
      const r = await dispatchWebhooks(deps, opts);
      return r.events >= 1000 || r.sent >= 1000 || r.delivered >= 1000 || r.attempted >= CLAIM_BATCH;
    },
  });
}
