// Open and click hits, buffered in memory and written in batches (issue 5: the endpoints answer at
// once whatever the database does; hits are durable within FLUSH_MS, so a crash loses at most the
// hits of that last moment). One write: one INSERT of the raw hits, the per-message totals, and the
// first human (and first machine) open/click events, in one transaction, for at most SLICE hits.
//
// The flush runs on the thread that answers the pixel, so its CPU is the endpoints' latency tail:
// rows go to PostgreSQL as one JSON parameter (pg escaped eleven arrays element by element, most of
// a flush's time), times as milliseconds, and a flush is cut into slices so no slice holds the event
// loop for more than a few milliseconds.
//
// Each slice is written under an id of its own (tracking_batches, in the same transaction): a slice
// whose commit's answer was lost is retried as it was, and skipped if it had committed after all.
//
// Opens are judged as they are written. A click that no rule condemns on its own waits (verdict
// NULL) until every click that could form a burst with it has been written, then the message's
// clicks are judged together: otherwise a scanner clicking every link over two flushes would count,
// and fire triggers, as a person.
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { fromMs } from '../../db/from-ms.ts';
import type { Deps } from '../../deps.ts';
import { type NewEmailEvent, recordEvents } from '../events.ts';
import { BURST_MS, classifyHits, type Hit } from './classify.ts';
import { insightsOrgs } from './insights-switch.ts';
import type { MessageInfo, MessageInfoCache } from './message-info.ts';

export interface RawHit {
  at: Date;
  messageId: string;
  kind: 'open' | 'click';
  link: number | null;
  method: string;
  ip: string;
  userAgent: string;
  headers: Record<string, string>;
}

export interface RecorderOptions {
  /** Longest time a hit waits in memory (the crash loss bound). */
  flushMs?: number;
  /** A flush starts early once this many hits wait. */
  batch?: number;
  /** Hits kept while the database is unreachable; beyond, the oldest are dropped (and counted). */
  maxBuffered?: number;
}

export interface HitRecorder {
  record(hit: RawHit): void;
  /** Writes what is buffered and judges the clicks whose burst window has closed. */
  flush(): Promise<void>;
  /** Stops the timers after a last flush. */
  close(): Promise<void>;
  readonly stats: { received: number; written: number; dropped: number; failedFlushes: number };
}

/** The headers the rules read, or that say who fetched (kept with each hit). */
export const KEPT_HEADERS = [
  'sec-purpose',
  'purpose',
  'x-purpose',
  'x-moz',
  'sec-fetch-purpose',
  'sec-fetch-mode',
  'sec-fetch-dest',
  'via',
  'x-forwarded-for',
  'from',
  'referer',
] as const;

// Everything a client sends is cut short and stripped of NUL (which PostgreSQL text rejects, and
// which would then fail the whole batch on every retry).
export const clean = (s: string, max: number) =>
  (s.length > max ? s.slice(0, max) : s).replaceAll('\u0000', '');

// A click's verdict can depend on clicks up to 2 × BURST_MS away (bursts chain through their
// members); it is judged once those have certainly been written.
const judgeDelay = (flushMs: number) => 2 * BURST_MS + flushMs + 2_000;
// Hits per write and waiting clicks per judging pass: each is one transaction, and its CPU on this
// thread (≈ 1 ms per 1,000 hits) is what a pixel request can wait behind.
const SLICE = 1_000;
const JUDGE_BATCH = 1_000;

interface Totals {
  humanOpens: number;
  machineOpens: number;
  firstOpen: Date | null;
  lastOpen: Date | null;
  humanClicks: number;
  machineClicks: number;
  firstClick: Date | null;
  lastClick: Date | null;
  firstClickLink: number | null;
  /** First machine open and click: one event each per message, human = false (reports count them). */
  firstMachineOpen: Date | null;
  firstMachineClick: Date | null;
}

const toHit = (h: RawHit | StoredHit): Hit => ({
  at: h.at,
  kind: h.kind,
  link: h.link ?? undefined,
  method: h.method,
  ip: h.ip,
  userAgent: h.userAgent,
  headers: h.headers,
});
const rulesInfo = (m: MessageInfo) => ({ sentAt: m.sentAt, links: m.links.length, trapLink: m.links.length });

/** Adds one judged hit to its message's totals; a click counts as an open too. */
function tally(
  totals: Map<string, Totals>,
  messageId: string,
  h: { at: Date; kind: string; link: number | null },
  human: boolean,
) {
  let t = totals.get(messageId);
  if (!t) {
    t = {
      humanOpens: 0,
      machineOpens: 0,
      firstOpen: null,
      lastOpen: null,
      humanClicks: 0,
      machineClicks: 0,
      firstClick: null,
      lastClick: null,
      firstClickLink: null,
      firstMachineOpen: null,
      firstMachineClick: null,
    };
    totals.set(messageId, t);
  }
  if (!human) {
    t.machineOpens++;
    if (!t.firstMachineOpen || h.at < t.firstMachineOpen) t.firstMachineOpen = h.at;
    if (h.kind !== 'click') return;
    t.machineClicks++;
    if (!t.firstMachineClick || h.at < t.firstMachineClick) t.firstMachineClick = h.at;
    return;
  }
  t.humanOpens++;
  if (!t.firstOpen || h.at < t.firstOpen) t.firstOpen = h.at;
  if (!t.lastOpen || h.at > t.lastOpen) t.lastOpen = h.at;
  if (h.kind !== 'click') return;
  t.humanClicks++;
  if (!t.firstClick || h.at < t.firstClick) {
    t.firstClick = h.at;
    t.firstClickLink = h.link;
  }
  if (!t.lastClick || h.at > t.lastClick) t.lastClick = h.at;
}

const ms = (d: Date | null) => (d ? d.getTime() : null);

/**
 * Adds the totals to the messages and records the first human open and click of each as events.
 * "Was it the first" is read from the updated counts (only this writes them, with the times): one
 * UPDATE, no locking read before it (measured: 4 µs of PostgreSQL per hit less). The ids are sorted
 * and the function's fixed row estimate makes the plan a nested loop over them, so two servers
 * flushing at once lock rows in the same order; were a deadlock ever reported, the slice fails and
 * is written again whole.
 */
async function applyTotals(
  tx: Deps['db'],
  totals: Map<string, Totals>,
  infos: Map<string, MessageInfo>,
): Promise<void> {
  if (!totals.size) return;
  const ids = [...totals.keys()].sort();
  const rows = ids.map((id) => {
    const x = totals.get(id) as Totals;
    return {
      id,
      ho: x.humanOpens,
      mo: x.machineOpens,
      fo: ms(x.firstOpen),
      lo: ms(x.lastOpen),
      hc: x.humanClicks,
      mc: x.machineClicks,
      fc: ms(x.firstClick),
      lc: ms(x.lastClick),
    };
  });
  // Only the messages with a first event come back (most of a busy flush's messages have none).
  const firsts = (
    await sql<{
      id: string;
      first_open: boolean;
      first_click: boolean;
      first_machine_open: boolean;
      first_machine_click: boolean;
    }>`
      WITH j AS (
        SELECT * FROM json_to_recordset(${JSON.stringify(rows)}::json)
          AS j(id uuid, ho int, mo int, fo bigint, lo bigint, hc int, mc int, fc bigint, lc bigint)
      ), u AS (
        SELECT id, ho, mo, ${fromMs('fo')} AS fo, ${fromMs('lo')} AS lo, hc, mc, ${fromMs('fc')} AS fc,
          ${fromMs('lc')} AS lc
        FROM j
      ), upd AS (
        UPDATE messages m SET
          open_count = m.open_count + u.ho,
          machine_open_count = m.machine_open_count + u.mo,
          opened_at = LEAST(m.opened_at, u.fo),
          last_opened_at = GREATEST(m.last_opened_at, u.lo),
          click_count = m.click_count + u.hc,
          machine_click_count = m.machine_click_count + u.mc,
          clicked_at = LEAST(m.clicked_at, u.fc),
          last_clicked_at = GREATEST(m.last_clicked_at, u.lc)
        FROM u
        WHERE m.id = u.id
        -- a count that now equals what this write adds was 0 before: its first event
        RETURNING m.id, (u.ho > 0 AND m.open_count = u.ho) AS first_open,
          (u.hc > 0 AND m.click_count = u.hc) AS first_click,
          (u.mo > 0 AND m.machine_open_count = u.mo) AS first_machine_open,
          (u.mc > 0 AND m.machine_click_count = u.mc) AS first_machine_click
      )
      SELECT * FROM upd WHERE first_open OR first_click OR first_machine_open OR first_machine_click`.execute(
      tx,
    )
  ).rows;
  const events: NewEmailEvent[] = [];
  for (const f of firsts) {
    const info = infos.get(f.id);
    const x = totals.get(f.id);
    if (!info || !x) continue;
    const base = {
      orgId: info.orgId,
      messageId: f.id,
      recordId: info.recordId,
      massEmailId: info.massEmailId,
    };
    if (f.first_open && x.firstOpen) events.push({ ...base, kind: 'opened', human: true, at: x.firstOpen });
    if (f.first_click && x.firstClick) {
      const link = x.firstClickLink;
      events.push({
        ...base,
        kind: 'clicked',
        human: true,
        at: x.firstClick,
        data: link === null ? {} : { link, url: info.links[link] ?? null },
      });
    }
    if (f.first_machine_open && x.firstMachineOpen)
      events.push({ ...base, kind: 'opened', human: false, at: x.firstMachineOpen });
    if (f.first_machine_click && x.firstMachineClick)
      events.push({ ...base, kind: 'clicked', human: false, at: x.firstMachineClick });
  }
  await recordEvents(tx, events);
}

interface StoredHit extends RawHit {
  id: string;
}

/** A hit as the INSERT reads it (short keys: a busy flush sends a few hundred kB of them). */
interface HitRow {
  o: string;
  m: string;
  t: number;
  k: 'open' | 'click';
  l: number | null;
  i: string;
  a: string;
  x: string;
  h: Record<string, string>;
  v: 'human' | 'machine' | null;
  r: string | null;
}

export function createHitRecorder(
  deps: Deps,
  cache: MessageInfoCache,
  opts: RecorderOptions = {},
): HitRecorder {
  const flushMs = opts.flushMs ?? 200;
  const batchSize = opts.batch ?? 5_000;
  const maxBuffered = opts.maxBuffered ?? 500_000;
  const stats = { received: 0, written: 0, dropped: 0, failedFlushes: 0 };
  let buffer: RawHit[] = [];
  /** The slice being written; one whose write failed is written again as it was, under its id. */
  let slice: { id: string; hits: RawHit[] } | null = null;
  const waiting = () => buffer.length + (slice?.hits.length ?? 0);
  let running: Promise<void> | null = null;
  let lastJudge = 0;
  let closed = false;
  let failures = 0;

  /** Writes one slice: raw hits of orgs with insights on, totals of the hits judged now, events. */
  async function write(batchId: string, hits: RawHit[]): Promise<void> {
    const infos = await cache.load(hits.map((h) => h.messageId));
    const orgs = [...new Set([...infos.values()].map((i) => i.orgId))];
    const on = await insightsOrgs(deps, orgs);
    // One JSON row per hit, in arrival order (the ids follow it).
    const rows: HitRow[] = [];
    const totals = new Map<string, Totals>();
    const one: Hit[] = [];
    for (const h of hits) {
      const info = infos.get(h.messageId);
      if (!info || !on.has(info.orgId)) continue;
      one[0] = toHit(h);
      const v = classifyHits(rulesInfo(info), one)[0];
      // A click no rule condemns alone waits for its burst window (see judge()).
      const waits = h.kind === 'click' && v.verdict === 'human';
      rows.push({
        o: info.orgId,
        m: h.messageId,
        t: h.at.getTime(),
        k: h.kind,
        l: h.link,
        i: h.ip,
        a: h.userAgent,
        x: h.method,
        h: h.headers,
        v: waits ? null : v.verdict,
        r: waits ? null : v.reason,
      });
      if (!waits) tally(totals, h.messageId, h, v.verdict === 'human');
    }
    if (!rows.length) return;
    const json = JSON.stringify(rows);
    await deps.db.transaction().execute(async (tx) => {
      const first =
        await sql`INSERT INTO tracking_batches (id) VALUES (${batchId}) ON CONFLICT DO NOTHING`.execute(tx);
      if (!Number(first.numAffectedRows)) return; // committed before, its answer lost
      await sql`
        INSERT INTO tracking_hits (org_id, message_id, at, kind, link, ip, user_agent, method, headers, verdict, reason)
        SELECT u.o, u.m, ${fromMs('u.t')}, u.k, u.l, u.i, u.a, u.x, u.h, u.v, u.r
        FROM ROWS FROM (json_to_recordset(${json}::json)
          AS (o uuid, m uuid, t bigint, k text, l int, i text, a text, x text, h jsonb, v text, r text))
          WITH ORDINALITY AS u(o, m, t, k, l, i, a, x, h, v, r, n)
        -- a message deleted since it was looked up takes its hits with it
        WHERE EXISTS (SELECT 1 FROM messages m WHERE m.id = u.m)
        ORDER BY u.n -- ids in arrival order`.execute(tx);
      await applyTotals(tx, totals, infos);
    });
    stats.written += rows.length;
  }

  /** Judges waiting clicks whose burst window has closed, each message's clicks together. */
  async function judge(): Promise<number> {
    const cutoff = new Date(deps.clock.now().getTime() - judgeDelay(flushMs));
    return deps.db.transaction().execute(async (tx) => {
      // Times come back as milliseconds: pg's timestamp parser is slow, and a pass reads thousands.
      const pending = (
        await sql<{
          id: string;
          message_id: string;
          at: number;
          link: number | null;
          method: string;
          ip: string;
          user_agent: string;
          headers: Record<string, string>;
        }>`
          SELECT id, message_id, floor(extract(epoch FROM at) * 1000)::float8 AS at, link, method, ip,
            user_agent, headers
          FROM tracking_hits
          WHERE verdict IS NULL AND at < ${cutoff.toISOString()}::timestamptz
          ORDER BY at LIMIT ${JUDGE_BATCH} FOR UPDATE SKIP LOCKED`.execute(tx)
      ).rows;
      if (!pending.length) return 0;
      const waiting = new Map<string, StoredHit>();
      const span = new Map<string, { m: string; lo: number; hi: number }>();
      for (const p of pending) {
        waiting.set(p.id, {
          id: p.id,
          at: new Date(p.at),
          messageId: p.message_id,
          kind: 'click',
          link: p.link,
          method: p.method,
          ip: p.ip,
          userAgent: p.user_agent,
          headers: p.headers,
        });
        const s = span.get(p.message_id);
        if (s) {
          s.lo = Math.min(s.lo, p.at);
          s.hi = Math.max(s.hi, p.at);
        } else span.set(p.message_id, { m: p.message_id, lo: p.at, hi: p.at });
      }
      const windows = [...span.values()].map((w) => ({
        m: w.m,
        lo: w.lo - 2 * BURST_MS,
        hi: w.hi + 2 * BURST_MS,
      }));
      // The other clicks of each window count only by time and link (bursts); their own verdicts
      // stand, so nothing else of them is read.
      const around = (
        await sql<{ id: string; message_id: string; at: number; link: number | null }>`
          SELECT h.id, h.message_id, floor(extract(epoch FROM h.at) * 1000)::float8 AS at, h.link
          FROM json_to_recordset(${JSON.stringify(windows)}::json) AS w(m uuid, lo bigint, hi bigint)
          JOIN tracking_hits h ON h.message_id = w.m AND h.at BETWEEN ${fromMs('w.lo')} AND ${fromMs('w.hi')}
            AND h.kind = 'click'`.execute(tx)
      ).rows;
      const infos = await cache.load([...span.keys()]);
      const byMessage = new Map<string, StoredHit[]>();
      for (const r of around) {
        let list = byMessage.get(r.message_id);
        if (!list) {
          list = [];
          byMessage.set(r.message_id, list);
        }
        list.push(
          waiting.get(r.id) ?? {
            id: r.id,
            at: new Date(r.at),
            messageId: r.message_id,
            kind: 'click',
            link: r.link,
            method: 'GET',
            ip: '',
            userAgent: '',
            headers: {},
          },
        );
      }
      const judged: { i: string; v: string; r: string }[] = [];
      const totals = new Map<string, Totals>();
      for (const [messageId, list] of byMessage) {
        const info = infos.get(messageId);
        if (!info) continue;
        const verdicts = classifyHits(rulesInfo(info), list.map(toHit));
        list.forEach((h, i) => {
          if (!waiting.has(h.id)) return;
          judged.push({ i: h.id, v: verdicts[i].verdict, r: verdicts[i].reason });
          tally(totals, messageId, h, verdicts[i].verdict === 'human');
        });
      }
      if (judged.length) {
        await sql`
        UPDATE tracking_hits h SET verdict = u.v, reason = u.r
        FROM json_to_recordset(${JSON.stringify(judged)}::json) AS u(i bigint, v text, r text)
        WHERE h.id = u.i`.execute(tx);
        await applyTotals(tx, totals, infos);
      }
      return pending.length;
    });
  }

  async function runOnce(): Promise<void> {
    while (slice || buffer.length) {
      if (!slice) {
        const hits = buffer.length > SLICE ? buffer.splice(0, SLICE) : buffer;
        if (hits === buffer) buffer = [];
        slice = { id: randomUUID(), hits };
      }
      try {
        await write(slice.id, slice.hits);
        slice = null;
        failures = 0;
      } catch (err) {
        // Kept as it is; the next tick writes it again.
        stats.failedFlushes++;
        if (failures++ % 50 === 0)
          deps.log.warn(
            { err: (err as Error).message, buffered: waiting() },
            'tracking hits not written yet',
          );
        throw err;
      }
    }
    const now = Date.now();
    if (now - lastJudge >= 1_000) {
      lastJudge = now;
      while ((await judge()) === JUDGE_BATCH) {}
    }
  }

  function kick(): Promise<void> {
    if (!running)
      running = runOnce().finally(() => {
        running = null;
      });
    return running;
  }
  const quiet = (p: Promise<void>) => p.catch(() => {});

  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    void quiet(kick()).finally(() => {
      if (!closed) {
        timer = setTimeout(tick, flushMs);
        timer.unref();
      }
    });
  };
  timer = setTimeout(tick, flushMs);
  timer.unref();

  return {
    stats,
    record(hit) {
      if (closed) return;
      stats.received++;
      buffer.push(hit);
      if (buffer.length > maxBuffered) {
        const over = buffer.length - maxBuffered;
        buffer.splice(0, over);
        stats.dropped += over;
      }
      if (buffer.length >= batchSize) void quiet(kick());
    },
    async flush() {
      if (running) await quiet(running);
      lastJudge = 0;
      await kick();
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      if (running) await quiet(running);
      await kick().catch((err) =>
        deps.log.error({ err: (err as Error).message, lost: waiting() }, 'tracking hits not written at stop'),
      );
    },
  };
}
