// The delivery queue over the `messages` table (F3.8). deliverDue claims due rows in one statement
// (FOR UPDATE SKIP LOCKED: any number of workers), builds each raw message (MIME, DKIM with the
// org's keys, VERP return path, the Message-ID stored on the row), sends it through the org's relay
// or stores it in the local outbox, and records the outcomes in batched statements.
//
// States (0002_email.sql): queued → sending → sent | failed | deferred (→ sending again) | unknown.
//   2xx                                   → sent
//   5xx to MAIL FROM / RCPT TO / DATA / . → failed at once, with the reply
//   4xx, or no reply before the message   → deferred; retried after 1 min × 2^(attempts−1) (capped at
//     was sent (refused, dropped, timeout)   1 h, ±20 % jitter) until expires_at, then failed
//   no reply after the whole message      → unknown: it may have been delivered, never re-sent
//   still 'sending' after STUCK_AFTER_MS  → the worker died (recoverStuck): unknown if it had been
//                                            handed to the SMTP connection (delivery_handovers), back to
//                                            the queue if not, sent if its bytes are in the outbox
// A claimed message that could not start within RESERVE_HORIZON_MS (rate or connection limits) is
// released unattempted: back to its previous status, due again when the limit allows. So is a whole
// claim whose answer was lost (a crash or a broken connection after its commit), found by its claim_id.
import { randomUUID } from 'node:crypto';
import { convert as htmlToText } from 'html-to-text';
import { sql } from 'kysely';
import { type Actor, requireAdmin } from '../crm/index.ts';
import type { Db } from '../db/pool.ts';
import { claimOrPutBack, retryWrite } from '../db/retry-write.ts';
import type { MessageKind, MessageStatus } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { invalid, notFound } from '../errors.ts';
import { presenceOf, type WorkerView } from '../jobs/presence.ts';
import { enhancedCode, kindOf } from '../tracking/bounces/kinds.ts';
import { type BounceItem, recordBounces } from '../tracking/bounces/record.ts';
import { insightsOrgs } from '../tracking/hits/insights-switch.ts';
import { messageTrackingTokens } from '../tracking/tokens.ts';
import { addressDomain, mailbox, normaliseAddress, parseAddress } from './address.ts';
import { type DkimKey, dkimSign } from './dkim.ts';
import { keysFor, loadSigningKeys, type OrgSigningKeys } from './dkim-keys.ts';
import { fillTrackingSpots, markTrackingSpots, trackingBase, trackingMarkup } from './fast/fast-path.ts';
import { type Attachment, buildMessage, type ListUnsubscribe } from './mime.ts';
import { storeInOutbox } from './outbox.ts';
import { isShareUnder, LEFT_TO_OTHERS_RETRY_MS, relayShare } from './relay-share.ts';
import { loadRelays, type RelaySettings } from './relays.ts';
import { createSignPool, type SignPool } from './sign-pool.ts';
import {
  type Envelope,
  liveRelayTransports,
  type RelayTransport,
  relayTransport,
  type SendOutcome,
  sendOnce,
} from './transport.ts';
import { newMessageIdHeader, verpReturnPath } from './verp.ts';

/** The LISTEN/NOTIFY channel that wakes the delivery workers. */
export const DELIVERY_CHANNEL = 'parley_delivery';
/** A message this long in 'sending' belongs to a worker that died: it becomes unknown. */
export const STUCK_AFTER_MS = 10 * 60_000;
/** How long a claimed message may wait for its rate or connection slot before it is put back. */
export const RESERVE_HORIZON_MS = 10_000;

/**
 * By worker: the orgs whose relay it has no share of under the view of the workers it last had, and
 * until when that is taken as known (the relay's settings may change meanwhile).
 */
const noShareSeen = new WeakMap<object, { view: string; orgs: Map<string, number> }>();
const NO_SHARE_KNOWN_MS = 30_000;

const viewKey = (view: WorkerView | undefined) => (view ? `${view.rank}/${view.count}` : '');

function noteNoShare(deps: Pick<Deps, 'db'>, view: WorkerView | undefined, orgs: Set<string>): void {
  const key = viewKey(view);
  let seen = noShareSeen.get(deps.db);
  if (!seen || seen.view !== key) {
    seen = { view: key, orgs: new Map() };
    noShareSeen.set(deps.db, seen);
  }
  const until = performance.now() + NO_SHARE_KNOWN_MS;
  for (const o of orgs) seen.orgs.set(o, until);
}

/** What this worker's next claim leaves to the other workers. */
interface LeftToOthers {
  orgs: string[];
  /** Receiving domains (and their subdomains) of an org's relay that this worker sends nothing to. */
  domains: { orgId: string; domain: string }[];
}

/**
 * What this worker leaves to the others in its next claim: the messages of a relay it has no share
 * of (under the same view of the workers), those whose share's rate has no room left within the
 * horizon (it would only put them back), and those to a domain whose connections are all the other
 * workers' (relay-share.ts). Claimed anyway, such messages would go back to the queue, due again in
 * LEFT_TO_OTHERS_RETRY_MS, where the same worker's next poll could take them again and again before
 * the one with the share polls at all.
 */
function leftToOthers(deps: Pick<Deps, 'db'>, view: WorkerView | undefined): LeftToOthers {
  const out: LeftToOthers = { orgs: [], domains: [] };
  const seen = noShareSeen.get(deps.db);
  const now = performance.now();
  if (seen && seen.view === viewKey(view))
    for (const [orgId, until] of seen.orgs)
      if (until > now) out.orgs.push(orgId);
      else seen.orgs.delete(orgId);
  for (const t of liveRelayTransports(deps)) {
    if (t.limiter.room(RESERVE_HORIZON_MS) === 0) out.orgs.push(t.orgId);
    // a share built under another view of the workers is replaced at its org's next message
    else if (isShareUnder(t.version, view))
      for (const domain of t.limiter.domainsLeftToOthers()) out.domains.push({ orgId: t.orgId, domain });
  }
  return out;
}
const BACKOFF_BASE_MS = 60_000;
const BACKOFF_CAP_MS = 60 * 60_000;
const DEFAULT_BATCH = 500;
/** Results are written every this many messages (or FLUSH_AFTER_MS after the first unwritten one). */
const FLUSH_EVERY = 200;
const FLUSH_AFTER_MS = 250;
/** Batches of at least this many signed messages go to the worker-thread pool; fewer are signed inline. */
const POOL_MIN = 32;
const AFTER_DATA = new Set(['DATA', 'END']);

export interface DeliveryCounts {
  claimed: number;
  sent: number;
  deferred: number;
  failed: number;
  unknown: number;
  /** Put back unattempted (limits, nothing to render with). */
  released: number;
}

/** A claimed row, as deliverDue sees it. */
export interface DueMessage {
  id: string;
  org_id: string;
  kind: MessageKind;
  module_id: string | null;
  record_id: string | null;
  template_id: string | null;
  template_version: number | null;
  mass_email_id: string | null;
  sender_id: string | null;
  from_address: string;
  from_name: string | null;
  reply_to: string | null;
  to_address: string;
  to_name: string | null;
  subject: string;
  html: string | null;
  text: string | null;
  message_id_header: string;
  attempts: number;
  expires_at: Date;
  claimed_at: Date;
  created_at: Date;
  prev_status: MessageStatus;
}

/** What a renderer supplies for a row queued without its content (mass sends render at delivery). */
export interface RenderedParts {
  subject: string;
  text: string;
  html?: string | null;
  /** The HTML carries the open pixel and tracked links. */
  tracked?: boolean;
  listUnsubscribe?: ListUnsubscribe;
  extraHeaders?: Record<string, string>;
}

/** Renders rows whose html and text are both NULL; an Error fails that message permanently. */
export type DeliveryRenderer = (
  deps: Deps,
  rows: DueMessage[],
) => Promise<Map<string, RenderedParts | Error>>;

export interface DeliverOptions {
  /** Rows claimed at most (default 500). */
  limit?: number;
  /** Only this org's messages (tests, or a per-org drain). */
  orgId?: string;
  render?: DeliveryRenderer;
  /** For the backoff jitter; Math.random by default. */
  random?: () => number;
}

/** When a message queued now stops being retried (PARLEY_DELIVERY_LIFETIME_HOURS after `from`). */
export function deliveryExpiresAt(deps: Pick<Deps, 'config' | 'clock'>, from: Date = deps.clock.now()): Date {
  const hours = deps.config.deliveryLifetimeHours ?? 96;
  return new Date(from.getTime() + hours * 3_600_000);
}

/**
 * Wakes the delivery workers (NOTIFY). Pass the transaction that queued the messages: the
 * notification is sent when it commits, so workers never look before the rows are visible.
 */
export async function wakeDelivery(deps: Pick<Deps, 'db'>, db: Db = deps.db, orgId = ''): Promise<void> {
  await sql`SELECT pg_notify(${DELIVERY_CHANNEL}, ${orgId})`.execute(db);
}

/** The delay before the next attempt after `attempts` attempts (≥ 1): exponential, capped, jittered. */
export function retryDelayMs(attempts: number, random: () => number = Math.random): number {
  const base = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempts - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

// ---------------------------------------------------------------------------------------------
// Per-process resources: the DKIM signing pool (transports are cached in transport.ts)

const signPools = new WeakMap<object, SignPool>();

function signPoolFor(deps: Pick<Deps, 'db'>): SignPool {
  let pool = signPools.get(deps.db);
  if (!pool) {
    pool = createSignPool();
    signPools.set(deps.db, pool);
  }
  return pool;
}

/** Closes what delivery keeps open in this process (signing threads). Transports: closeRelayTransports. */
export async function closeSignPool(deps: Pick<Deps, 'db'>): Promise<void> {
  const pool = signPools.get(deps.db);
  signPools.delete(deps.db);
  await pool?.close();
}

// ---------------------------------------------------------------------------------------------
// Claim and record

async function claim(
  deps: Deps,
  now: Date,
  limit: number,
  orgId?: string,
  leave: LeftToOthers = { orgs: [], domains: [] },
): Promise<DueMessage[]> {
  // A domain limit covers its subdomains too (DeliveryLimiter.limitKey).
  const leaveDomains = leave.domains.length
    ? sql`AND NOT EXISTS (
        SELECT 1 FROM unnest(${leave.domains.map((d) => d.orgId)}::uuid[], ${leave.domains.map((d) => d.domain)}::text[])
          AS l(org_id, domain), lower(substring(messages.to_address FROM '[^@]*$')) AS t(domain)
        WHERE l.org_id = messages.org_id AND (t.domain = l.domain OR right(t.domain, length(l.domain) + 1) = '.' || l.domain))`
    : sql``;
  const claimId = randomUUID();
  const claimed = sql<DueMessage>`
    WITH due AS (
      SELECT id, status FROM messages
      WHERE status IN ('queued', 'deferred') AND next_attempt_at <= ${now}
        ${orgId ? sql`AND org_id = ${orgId}` : sql``}
        ${leave.orgs.length ? sql`AND org_id <> ALL(${leave.orgs}::uuid[])` : sql``}
        ${leaveDomains}
      ORDER BY next_attempt_at
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    )
    UPDATE messages m SET status = 'sending', claimed_at = ${now}, claim_id = ${claimId}, updated_at = ${now}
    FROM due WHERE m.id = due.id
    RETURNING m.id, m.org_id, m.kind, m.module_id, m.record_id, m.template_id, m.template_version,
      m.mass_email_id, m.sender_id, m.from_address, m.from_name, m.reply_to, m.to_address, m.to_name,
      m.subject, m.html, m.text, m.message_id_header, m.attempts, m.expires_at, m.claimed_at,
      m.created_at, due.status AS prev_status`;
  // Rows of a claim whose answer was lost would wait in 'sending' for recoverStuck; nothing of them
  // was attempted, so they go back to the queue now.
  return claimOrPutBack(
    deps,
    'messages',
    RESULTS_RETRY_MS,
    async () => (await claimed.execute(deps.db)).rows,
    () =>
      sql`UPDATE messages SET status = CASE WHEN attempts > 0 THEN 'deferred' ELSE 'queued' END, updated_at = ${now}
        WHERE status = 'sending' AND claimed_at = ${now} AND claim_id = ${claimId}`.execute(deps.db),
  );
}

interface Row {
  id: string;
  claimedAt: Date;
  status: MessageStatus;
  /** The row's attempts with this one: a value, not a step, so a write retried after its answer was lost adds nothing. */
  attempts: number;
  nextAttemptAt: Date | null;
  /** false: keep the row's last reply (a release carries none). */
  setReply: boolean;
  code: number | null;
  response: string | null;
  sentAt: Date | null;
  transport: 'relay' | 'outbox' | null;
  /** The subject as merged, for rows queued without content (kept otherwise). */
  subject: string;
  /** Whether what was sent is tracked (null: not built this time). */
  tracked: boolean | null;
}

/** Collects outcomes and writes them in batches: one UPDATE … FROM unnest per flush. */
class ResultWriter {
  readonly counts: DeliveryCounts;
  /** 5xx answers about a recipient (RCPT, or the message itself): recorded as bounces after the results. */
  readonly bounces: BounceItem[] = [];
  private pending: Row[] = [];
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private error: unknown = null;

  constructor(
    private readonly deps: Deps,
    private readonly random: () => number,
    claimed: number,
  ) {
    this.counts = { claimed, sent: 0, deferred: 0, failed: 0, unknown: 0, released: 0 };
  }

  /** Records an attempt's outcome, turning a deferral past expires_at into a failure. */
  outcome(
    m: DueMessage,
    o: SendOutcome,
    transport: 'relay' | 'outbox' | null,
    tracked: boolean | null = null,
  ) {
    const now = this.deps.clock.now();
    const attempts = m.attempts + 1;
    let status: MessageStatus = o.status;
    let response = o.response;
    let next: Date | null = null;
    if (o.status === 'deferred') {
      if (now.getTime() >= m.expires_at.getTime()) {
        status = 'failed';
        response = `gave up after ${attempts} attempt${attempts === 1 ? '' : 's'} (the retry lifetime ended); last reply: ${o.response}`;
      } else {
        next = new Date(
          Math.min(now.getTime() + retryDelayMs(attempts, this.random), m.expires_at.getTime()),
        );
      }
    }
    this.counts[status as 'sent' | 'deferred' | 'failed' | 'unknown']++;
    const stage = o.error?.command;
    const code = enhancedCode(o.response);
    const enhanced = code.startsWith('5') ? code : '';
    // A 5xx to RCPT is about the address; after DATA only when an enhanced code says what it is.
    if (
      o.status === 'failed' &&
      o.code !== null &&
      o.code >= 500 &&
      (stage === 'RCPT' || (stage && AFTER_DATA.has(stage) && enhanced))
    ) {
      this.bounces.push({
        messageId: m.id,
        kind: kindOf(enhanced, o.response),
        status: enhanced,
        reason: o.response,
        at: now,
        source: 'smtp',
      });
    }
    this.push({
      id: m.id,
      claimedAt: m.claimed_at,
      status,
      attempts,
      nextAttemptAt: next,
      setReply: true,
      code: o.code,
      response,
      sentAt: status === 'sent' ? now : null,
      transport,
      subject: m.subject,
      tracked,
    });
  }

  /** Puts a message back unattempted, due again in `retryInMs`. */
  release(m: DueMessage, retryInMs: number) {
    this.counts.released++;
    this.push({
      id: m.id,
      claimedAt: m.claimed_at,
      status: m.prev_status,
      attempts: m.attempts,
      nextAttemptAt: new Date(this.deps.clock.now().getTime() + Math.max(0, retryInMs)),
      setReply: false,
      code: null,
      response: null,
      sentAt: null,
      transport: null,
      subject: m.subject,
      tracked: null,
    });
  }

  /** Writes what is pending now. */
  async flush(): Promise<void> {
    this.flushSoon(0);
    await this.chain;
  }

  private push(r: Row) {
    this.pending.push(r);
    if (this.pending.length >= FLUSH_EVERY) this.flushSoon(0);
    else if (!this.timer) this.flushSoon(FLUSH_AFTER_MS);
  }

  private flushSoon(ms: number) {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (ms === 0) {
      this.enqueueFlush();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      this.enqueueFlush();
    }, ms);
  }

  private enqueueFlush() {
    const rows = this.pending;
    this.pending = [];
    if (!rows.length) return;
    this.chain = this.chain
      .then(() => writeResults(this.deps, rows))
      .catch((e) => {
        this.error ??= e;
      });
  }

  /** Writes everything still pending; throws if any write failed. */
  async close(): Promise<DeliveryCounts> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.enqueueFlush();
    await this.chain;
    if (this.error) throw this.error;
    return this.counts;
  }
}

/**
 * How long recording outcomes is retried. They are known (the relay answered): given up on, the
 * rows would stay 'sending' until recoverStuck calls them unknown. A database restart or failover
 * takes seconds to a minute or two, so this outlasts one; STUCK_AFTER_MS is well beyond it.
 */
const RESULTS_RETRY_MS = 5 * 60_000;

function writeResults(deps: Deps, rows: Row[]): Promise<void> {
  return retryWrite(deps, `recording ${rows.length} delivery results`, RESULTS_RETRY_MS, async () => {
    const now = deps.clock.now();
    // Guarded by claimed_at (this claim) and status: a row recoverStuck already called unknown still
    // gets its real outcome; a row claimed again since is not touched.
    await sql`
      UPDATE messages m SET
        status = v.status,
        attempts = v.attempts,
        next_attempt_at = coalesce(v.next_attempt_at, m.next_attempt_at),
        smtp_code = CASE WHEN v.set_reply THEN v.code ELSE m.smtp_code END,
        smtp_response = CASE WHEN v.set_reply THEN v.response ELSE m.smtp_response END,
        sent_at = coalesce(v.sent_at, m.sent_at),
        transport = coalesce(v.transport, m.transport),
        subject = CASE WHEN m.subject = '' THEN v.subject ELSE m.subject END,
        tracked = coalesce(v.tracked, m.tracked),
        updated_at = ${now}
      FROM unnest(
        ${rows.map((r) => r.id)}::uuid[], ${rows.map((r) => r.claimedAt.toISOString())}::timestamptz[],
        ${rows.map((r) => r.status)}::text[], ${rows.map((r) => r.attempts)}::int[],
        ${rows.map((r) => r.nextAttemptAt?.toISOString() ?? null)}::timestamptz[],
        ${rows.map((r) => r.setReply)}::boolean[], ${rows.map((r) => r.code)}::int[],
        ${rows.map((r) => r.response)}::text[], ${rows.map((r) => r.sentAt?.toISOString() ?? null)}::timestamptz[],
        ${rows.map((r) => r.transport)}::text[], ${rows.map((r) => r.subject)}::text[],
        ${rows.map((r) => r.tracked)}::boolean[]
      ) AS v(id, claimed_at, status, attempts, next_attempt_at, set_reply, code, response, sent_at, transport, subject, tracked)
      WHERE m.id = v.id AND m.claimed_at = v.claimed_at AND m.status IN ('sending', 'unknown')`.execute(
      deps.db,
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Building messages

interface Prepared {
  m: DueMessage;
  raw: Buffer;
  keys: readonly DkimKey[];
  envelope: Envelope;
  relay?: RelayTransport;
  tracked: boolean;
}

// Messages people write (one recipient each) are tracked like mass sends; system mail never is.
const TRACKED_KINDS = new Set<MessageKind>(['individual', 'mass', 'autoresponder', 'workflow']);

function contentOf(
  deps: Pick<Deps, 'config'>,
  m: DueMessage,
  rendered: RenderedParts | undefined,
  track: boolean,
): RenderedParts {
  if (rendered) return rendered;
  let html = m.html;
  // Every message has a text alternative; templates store one, a bare HTML row gets one made here.
  const text = m.text ?? (html ? htmlToText(html, { wordwrap: 78 }) : '');
  const tracked = !!html && track && TRACKED_KINDS.has(m.kind);
  if (html && tracked) {
    const spots = markTrackingSpots(html, { clicks: true, opens: true });
    const tokens = messageTrackingTokens(deps.config.secret as string, m.id, spots.links.length + 1);
    const markup = trackingMarkup(trackingBase(deps.config.publicUrl), tokens, spots.links.length);
    html = fillTrackingSpots(spots.marked, markup);
  }
  return { subject: m.subject, text, html, tracked };
}

/** The raw message (unsigned) and its envelope. Throws validation errors for unusable rows. */
export function composeMessage(
  deps: Pick<Deps, 'config' | 'clock'>,
  m: Pick<
    DueMessage,
    | 'id'
    | 'kind'
    | 'from_address'
    | 'from_name'
    | 'reply_to'
    | 'to_address'
    | 'to_name'
    | 'message_id_header'
    | 'created_at'
  >,
  content: RenderedParts,
  sendingDomain: string | null,
  attachments?: readonly Attachment[],
): { raw: Buffer; envelope: Envelope } {
  const from = mailbox(m.from_address, m.from_name, 'from');
  const to = mailbox(m.to_address, m.to_name, 'to');
  if (!deps.config.secret) throw new Error('no app secret: VERP return paths cannot be signed');
  const raw = buildMessage({
    from,
    replyTo: m.reply_to ? parseAddress(m.reply_to, 'replyTo') : undefined,
    to,
    subject: content.subject,
    text: content.text,
    html: content.html ?? undefined,
    messageIdHeader: m.message_id_header,
    // A scheduled (mass) send is dated when it goes out; one written by a person when it was written.
    date: m.kind === 'mass' ? deps.clock.now() : m.created_at,
    listUnsubscribe: content.listUnsubscribe,
    extraHeaders: content.extraHeaders,
    attachments,
  });
  const envelope = {
    from: verpReturnPath(m.id, sendingDomain ?? addressDomain(from.address), deps.config.secret),
    to: normaliseAddress(to.address, 'to'),
  };
  return { raw, envelope };
}

/** Files queued with messages (a report emailed as CSV); mass sends never carry any. */
async function loadAttachments(deps: Deps, rows: readonly DueMessage[]): Promise<Map<string, Attachment[]>> {
  const out = new Map<string, Attachment[]>();
  const ids = rows.filter((m) => m.kind !== 'mass').map((m) => m.id);
  if (!ids.length) return out;
  const found = await deps.db
    .selectFrom('message_attachments')
    .select(['message_id', 'filename', 'content_type', 'content'])
    .where('message_id', 'in', ids)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  for (const a of found) {
    const list = out.get(a.message_id) ?? [];
    list.push({ filename: a.filename, contentType: a.content_type, content: a.content });
    out.set(a.message_id, list);
  }
  return out;
}

/**
 * Prepends DKIM signatures: in the thread pool for big groups, inline for a few messages (or when
 * the pool fails). Returns the messages that could not be signed, with the reason.
 */
async function signAll(deps: Deps, items: Prepared[]): Promise<Map<Prepared, Error>> {
  const failed = new Map<Prepared, Error>();
  const groups = new Map<readonly DkimKey[], Prepared[]>();
  for (const p of items) {
    if (!p.keys.length) continue;
    const g = groups.get(p.keys) ?? [];
    g.push(p);
    groups.set(p.keys, g);
  }
  await Promise.all(
    [...groups].map(async ([keys, group]) => {
      const inline = () => {
        for (const p of group)
          try {
            p.raw = dkimSign(p.raw, keys);
          } catch (e) {
            failed.set(p, e as Error);
          }
      };
      if (group.length < POOL_MIN) return inline();
      try {
        const signed = await signPoolFor(deps).signMessages(
          keys,
          group.map((p) => p.raw),
        );
        group.forEach((p, i) => {
          p.raw = signed[i];
        });
      } catch (e) {
        deps.log.warn({ err: e }, 'delivery: the signing pool failed; signing inline');
        inline();
      }
    }),
  );
  return failed;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The queue

/**
 * Claims up to `limit` due messages and delivers them; returns what happened to them. Safe to run
 * in any number of workers at once.
 */
export async function deliverDue(deps: Deps, opts: DeliverOptions = {}): Promise<DeliveryCounts> {
  const limit = Math.max(1, Math.min(opts.limit ?? DEFAULT_BATCH, 5000));
  const presence = presenceOf(deps);
  const view = presence?.view() ?? undefined;
  // A worker just started (or cut off from the others) sends nothing until it knows its share.
  const rows =
    presence && !view ? [] : await claim(deps, deps.clock.now(), limit, opts.orgId, leftToOthers(deps, view));
  const results = new ResultWriter(deps, opts.random ?? Math.random, rows.length);
  if (!rows.length) return results.close();

  const orgIds = [...new Set(rows.map((r) => r.org_id))];
  let relays: Map<string, RelaySettings>;
  let keys: Map<string, OrgSigningKeys | Error>;
  let insights: Set<string>;
  let files: Map<string, Attachment[]>;
  try {
    [relays, keys, insights, files] = await Promise.all([
      loadRelays(deps, orgIds),
      loadSigningKeys(deps, orgIds),
      insightsOrgs(deps, orgIds),
      loadAttachments(deps, rows),
    ]);
  } catch (e) {
    // Nothing was attempted: put everything back for a little later.
    deps.log.error({ err: e }, 'delivery: loading relays or DKIM keys failed');
    for (const m of rows) results.release(m, 30_000);
    return results.close();
  }

  // This worker's part of each relay's limits (relay-share.ts). Messages through a relay it has no
  // part of now go back to the queue before any work is spent on them, and its next claims leave
  // that org's messages to the others.
  const noShare = new Set<string>();
  for (const [orgId, relay] of relays) {
    const share = relayShare(relay, view);
    if (share) relays.set(orgId, share);
    else noShare.add(orgId);
  }
  noteNoShare(deps, view, noShare);
  // With other workers, no more than the relay's rate lets this one start within the horizon: the
  // others go back, due now, for another worker (or this one's next batch) rather than wait here
  // for a slot of this worker's share. (Alone, it puts them back below, due at their slot.)
  const room = new Map<string, number>();
  if (presence)
    for (const [orgId, relay] of relays) {
      try {
        room.set(orgId, relayTransport(deps, relay).limiter.room(RESERVE_HORIZON_MS));
      } catch {
        // a password that cannot be decrypted: reported message by message below
      }
    }
  const sendable: DueMessage[] = [];
  let surplus = 0;
  for (const m of rows) {
    const left = room.get(m.org_id);
    if (noShare.has(m.org_id)) results.release(m, LEFT_TO_OTHERS_RETRY_MS);
    else if (left === 0) {
      results.release(m, 0);
      surplus++;
    } else {
      if (left !== undefined) room.set(m.org_id, left - 1);
      sendable.push(m);
    }
  }
  // The other workers hear of the messages put back for them at once, not at their next poll.
  if (surplus && presence)
    await results
      .flush()
      .then(() => wakeDelivery(deps))
      .catch(() => {}); // they poll anyway

  // Rows queued without content are rendered now (mass sends); without a renderer they wait.
  const unrendered = sendable.filter((m) => m.html == null && m.text == null);
  let rendered = new Map<string, RenderedParts | Error>();
  const renderFailed = new Map<string, string>();
  if (unrendered.length) {
    if (opts.render) {
      try {
        rendered = await opts.render(deps, unrendered);
      } catch (e) {
        // The renderer reports bad rows one by one; a throw is about everything (the database went
        // away): deferred, retried with backoff, failed only at the end of their lifetime.
        deps.log.error({ err: e }, 'delivery: rendering failed');
        for (const m of unrendered)
          renderFailed.set(m.id, `could not render the message now: ${(e as Error).message}`);
      }
    } else {
      deps.log.warn({ count: unrendered.length }, 'delivery: messages need rendering but no renderer is set');
    }
  }

  const outboxItems: Prepared[] = [];
  const relayItems: Prepared[] = [];
  for (const m of sendable) {
    const relay = relays.get(m.org_id);
    const orgKeys = keys.get(m.org_id);
    if (orgKeys instanceof Error) {
      results.outcome(m, { status: 'deferred', code: null, response: orgKeys.message }, null);
      continue;
    }
    let content: RenderedParts | undefined;
    if (m.html == null && m.text == null) {
      const r = rendered.get(m.id);
      const failure = renderFailed.get(m.id);
      if (failure) {
        results.outcome(m, { status: 'deferred', code: null, response: failure }, null);
        continue;
      }
      if (!r) {
        results.release(m, 60_000);
        continue;
      }
      if (r instanceof Error) {
        results.outcome(
          m,
          { status: 'failed', code: null, response: `could not render: ${r.message}` },
          null,
        );
        continue;
      }
      content = r;
      m.subject = r.subject; // recorded with the outcome, for the record's Emails list
    }
    let prepared: Prepared;
    try {
      const sendingDomain = relay?.sendingDomain ?? null;
      const c = contentOf(deps, m, content, insights.has(m.org_id));
      const { raw, envelope } = composeMessage(deps, m, c, sendingDomain, files.get(m.id));
      const fromDomain = addressDomain(normaliseAddress(m.from_address, 'from'));
      prepared = {
        m,
        raw,
        envelope,
        keys: keysFor(orgKeys, fromDomain, sendingDomain),
        tracked: !!c.tracked,
      };
    } catch (e) {
      // Bad data never gets better by waiting: the message fails with the reason.
      results.outcome(
        m,
        { status: 'failed', code: null, response: `could not build the message: ${(e as Error).message}` },
        null,
      );
      continue;
    }
    if (!relay) {
      outboxItems.push(prepared);
      continue;
    }
    try {
      prepared.relay = relayTransport(deps, relay);
    } catch (e) {
      results.outcome(
        m,
        { status: 'deferred', code: null, response: `the relay cannot be used: ${(e as Error).message}` },
        'relay',
      );
      continue;
    }
    relayItems.push(prepared);
  }

  const unsigned = await signAll(deps, [...outboxItems, ...relayItems]);
  for (const [p, e] of unsigned)
    results.outcome(
      p.m,
      { status: 'failed', code: null, response: `could not DKIM-sign: ${e.message}` },
      null,
    );
  const toOutbox = outboxItems.filter((p) => !unsigned.has(p));
  const toRelay = relayItems.filter((p) => !unsigned.has(p));

  if (toOutbox.length) {
    try {
      await storeInOutbox(
        deps.db,
        toOutbox.map((p) => ({ messageId: p.m.id, orgId: p.m.org_id, raw: p.raw })),
        deps.clock.now(),
      );
      for (const p of toOutbox)
        results.outcome(
          p.m,
          { status: 'sent', code: null, response: 'stored in the local outbox (no SMTP relay is set up)' },
          'outbox',
          p.tracked,
        );
    } catch (e) {
      // One statement: nothing was stored, so nothing was "sent" either.
      deps.log.error({ err: e }, 'delivery: storing in the outbox failed');
      for (const p of toOutbox) results.release(p.m, 30_000);
    }
  }

  const marks = new HandoverMarks(
    deps,
    rows[0].claimed_at,
    toRelay.map((p) => p.m.id),
  );
  await Promise.all(toRelay.map((p) => sendThroughRelay(p, results, marks)));
  const counts = await results.close();
  await marks.clear().catch((e) => deps.log.warn({ err: e }, 'delivery: clearing handover marks failed'));
  await recordSmtpBounces(deps, results);
  return counts;
}

/** 5xx answers during sending count as bounces (suppression, statuses, the bounce-rate guard). */
async function recordSmtpBounces(deps: Deps, results: ResultWriter): Promise<void> {
  if (!results.bounces.length) return;
  await recordBounces(deps, results.bounces).catch((e) =>
    deps.log.error(
      { err: e, count: results.bounces.length },
      'delivery: recording 5xx answers as bounces failed',
    ),
  );
}

/**
 * Records that messages are about to be handed to an SMTP connection, durably, before they are: a
 * crash can then only leave as 'unknown' the messages marked but not yet answered, not a whole
 * claimed batch. Marking costs a commit (an fsync), so it is done ahead, HANDOVER_CHUNK messages at
 * a time in the order they will be sent (the claim order the limiter follows), and the next chunk
 * is marked while the current one is being sent. One UPDATE per message measured 0.45 ms of
 * PostgreSQL CPU per message; a chunk of 32 costs ~1/32 of that. A crash leaves at most about
 * a chunk and a quarter per claim marked but not sent: those become unknown.
 */
class HandoverMarks {
  private readonly position = new Map<string, number>();
  /** Each chunk's durable write, by chunk number. */
  private readonly chunks = new Map<number, Promise<void>>();
  private readonly written: string[] = [];
  constructor(
    private readonly deps: Deps,
    private readonly claimedAt: Date,
    private readonly order: readonly string[],
  ) {
    for (let i = 0; i < order.length; i++) this.position.set(order[i], i);
  }
  mark(id: string): Promise<void> {
    const at = this.position.get(id);
    if (at === undefined) return Promise.reject(new Error(`message ${id} is not in this batch`));
    const chunk = Math.floor(at / HANDOVER_CHUNK);
    const done = this.write(chunk);
    // Near the end of a chunk, the next one is marked so that its commit is ready when needed.
    if (at % HANDOVER_CHUNK >= (HANDOVER_CHUNK * 3) / 4) this.write(chunk + 1).catch(() => {});
    return done;
  }
  private write(chunk: number): Promise<void> {
    let w = this.chunks.get(chunk);
    if (!w) {
      const ids = this.order.slice(chunk * HANDOVER_CHUNK, (chunk + 1) * HANDOVER_CHUNK);
      w = ids.length
        ? sql<{ id: string }>`INSERT INTO delivery_handovers (claimed_at, message_ids)
            VALUES (${this.claimedAt}, ${ids}::uuid[]) RETURNING id`
            .execute(this.deps.db)
            .then((r) => {
              this.written.push(r.rows[0].id);
            })
        : Promise.resolve();
      // a failed write is tried again by the next message that needs it
      w.catch(() => this.chunks.delete(chunk));
      this.chunks.set(chunk, w);
    }
    return w;
  }

  /** Once the claim's results are recorded, its marks are no longer needed. */
  async clear(): Promise<void> {
    await Promise.allSettled(this.chunks.values());
    if (this.written.length)
      await sql`DELETE FROM delivery_handovers WHERE id = ANY(${this.written}::bigint[])`.execute(
        this.deps.db,
      );
  }
}
const HANDOVER_CHUNK = 32;

async function sendThroughRelay(p: Prepared, results: ResultWriter, marks: HandoverMarks): Promise<void> {
  const relay = p.relay as RelayTransport;
  const domain = addressDomain(p.envelope.to);
  // reserve() runs synchronously for every message in claim order, before any of them awaits.
  const slot = relay.limiter.reserve(domain, RESERVE_HORIZON_MS);
  if (slot.delayMs === null) {
    results.release(p.m, slot.retryInMs);
    return;
  }
  if (slot.delayMs > 0) await sleep(slot.delayMs);
  const release = await relay.limiter.acquireSlots(domain, RESERVE_HORIZON_MS - slot.delayMs);
  if (!release) {
    results.release(p.m, 1000);
    return;
  }
  try {
    // Before marking: a message marked but not sent becomes unknown if the worker dies.
    await relay.opened;
    try {
      if (!relay.closed) await marks.mark(p.m.id);
    } catch {
      results.release(p.m, 5_000); // not handed over: safe to try again
      return;
    }
    // The transport was replaced while this message waited (new relay settings, or the workers
    // changed and its slot was reserved under a share no longer this worker's: relay-share.ts).
    // Back to the queue, to be sent under the new one.
    if (relay.closed) {
      results.release(p.m, 0);
      return;
    }
    results.outcome(p.m, await relay.send(p.envelope, p.raw), 'relay', p.tracked);
  } finally {
    release();
  }
}

/**
 * Settles messages left in 'sending' by a worker that died (claimed before `olderThanMs` ago): those
 * whose bytes are in the outbox were sent; those never handed to an SMTP connection go back to the
 * queue; the rest may or may not have been delivered and become unknown (never re-sent). Returns
 * how many became unknown.
 */
export async function recoverStuck(deps: Deps, olderThanMs = STUCK_AFTER_MS): Promise<number> {
  const now = deps.clock.now();
  const before = new Date(now.getTime() - olderThanMs);
  await sql`UPDATE messages m SET status = 'sent', sent_at = o.created_at, transport = 'outbox', updated_at = ${now},
      smtp_response = 'stored in the local outbox (no SMTP relay is set up)'
    FROM outbox o WHERE o.message_id = m.id AND m.status = 'sending' AND m.claimed_at < ${before}`.execute(
    deps.db,
  );
  await sql`UPDATE messages m SET status = 'queued', next_attempt_at = ${now}, updated_at = ${now}
    WHERE m.status = 'sending' AND m.claimed_at < ${before} AND NOT EXISTS (
      SELECT 1 FROM delivery_handovers h WHERE h.claimed_at = m.claimed_at AND m.id = ANY(h.message_ids))`.execute(
    deps.db,
  );
  const r = await deps.db
    .updateTable('messages')
    .set({
      status: 'unknown',
      smtp_response:
        'the worker sending this message stopped before recording the result: it may or may not have been delivered',
      updated_at: now,
    })
    .where('status', '=', 'sending')
    .where('claimed_at', '<', before)
    .executeTakeFirst();
  // No message of those claims is still 'sending' now: their marks are spent.
  await deps.db.deleteFrom('delivery_handovers').where('claimed_at', '<', before).execute();
  return Number(r.numUpdatedRows);
}

// ---------------------------------------------------------------------------------------------
// "Send test email"

export interface TestSendResult {
  ok: boolean;
  status: 'sent' | 'failed' | 'unknown';
  code: number | null;
  response: string;
  error?: { code?: string; command?: string };
  messageId: string;
  envelope: Envelope;
  dkim: { domain: string; selector: string; algorithm: string }[];
}

/**
 * Sends a short message through the org's relay now, over a fresh connection, and reports the
 * server's reply or the error. Recorded as a 'test' message; a 4xx is reported, not retried.
 */
export async function sendTestEmail(
  deps: Deps,
  actor: Actor,
  input: { to: string },
): Promise<TestSendResult> {
  requireAdmin(actor);
  const to = normaliseAddress(input.to, 'to');
  const relay = (await loadRelays(deps, [actor.orgId])).get(actor.orgId);
  if (!relay)
    throw invalid('No SMTP relay is set up: messages go to the local outbox. Save the relay settings first.');
  const user = await deps.db
    .selectFrom('users')
    .select(['email', 'name'])
    .where('id', '=', actor.userId)
    .where('org_id', '=', actor.orgId)
    .executeTakeFirst();
  if (!user) throw notFound('User');
  const fromDomain = addressDomain(normaliseAddress(user.email, 'from'));
  const sendingDomain = relay.sendingDomain ?? fromDomain;
  const now = deps.clock.now();
  const id = randomUUID();
  const subject = 'Parley test email';
  const text = `This is a test email sent by Parley through the SMTP relay ${relay.host}:${relay.port} (${relay.security}).\n\nIf you can read this, the relay settings work.\n`;
  const html = `<p>This is a test email sent by Parley through the SMTP relay <b>${relay.host}:${relay.port}</b> (${relay.security}).</p><p>If you can read this, the relay settings work.</p>`;
  const row = {
    id,
    kind: 'test' as const,
    from_address: user.email,
    from_name: user.name,
    reply_to: null,
    to_address: to,
    to_name: null,
    message_id_header: newMessageIdHeader(sendingDomain),
    created_at: now,
  };
  const { raw, envelope } = composeMessage(deps, row, { subject, text, html }, relay.sendingDomain);
  const orgKeys = (await loadSigningKeys(deps, [actor.orgId])).get(actor.orgId);
  if (orgKeys instanceof Error) throw invalid(orgKeys.message);
  const keys = keysFor(orgKeys, fromDomain, relay.sendingDomain);
  await deps.db
    .insertInto('messages')
    .values({
      ...row,
      org_id: actor.orgId,
      sender_id: actor.userId,
      subject,
      html,
      text,
      transport: 'relay',
      status: 'sending',
      next_attempt_at: now,
      expires_at: now,
      claimed_at: now,
      updated_at: now,
    })
    .execute();
  const outcome = await sendOnce(deps, relay, envelope, dkimSign(raw, keys));
  const status = outcome.status === 'deferred' ? 'failed' : outcome.status;
  const done = deps.clock.now();
  await deps.db
    .updateTable('messages')
    .set({
      status,
      attempts: 1,
      smtp_code: outcome.code,
      smtp_response: outcome.response,
      sent_at: status === 'sent' ? done : null,
      updated_at: done,
    })
    .where('id', '=', id)
    .execute();
  return {
    ok: status === 'sent',
    status,
    code: outcome.code,
    response: outcome.response,
    error: outcome.error,
    messageId: id,
    envelope,
    dkim: keys.map((k) => ({ domain: k.domain, selector: k.selector, algorithm: k.algorithm })),
  };
}
