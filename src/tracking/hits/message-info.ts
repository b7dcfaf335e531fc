// What the tracking endpoints and the hit writer need to know about a message: its org, send time,
// record, mass email, and its tracked links (the click target of link i is links[i], read from the
// message's own HTML source, never from the URL). Kept in memory, bounded, so a click costs no
// database work once its message or template version has been seen.
import { sql } from 'kysely';
import type { Deps } from '../../deps.ts';
import { trackedLinksOf } from '../../sending/fast/fast-path.ts';

export interface MessageInfo {
  id: string;
  orgId: string;
  sentAt: Date;
  recordId: string | null;
  massEmailId: string | null;
  /** Tracked link targets by index; index links.length is the hidden trap link. */
  links: readonly string[];
}

const MAX_MESSAGES = 100_000;
const MAX_VERSIONS = 2_000;
// A deleted message stops redirecting within this time even when it is cached.
const MESSAGE_TTL_MS = 10 * 60_000;

/** A Map as a bounded cache: the oldest entry goes first (insertion order), which is enough here. */
function bounded<V>(max: number) {
  const m = new Map<string, V>();
  return {
    get: (k: string) => m.get(k),
    set(k: string, v: V) {
      if (m.size >= max) m.delete(m.keys().next().value as string);
      m.set(k, v);
    },
    delete: (k: string) => m.delete(k),
  };
}

export interface MessageInfoCache {
  /** Cached info, or undefined (not loaded yet, or expired): the hot path's synchronous check. */
  peek(id: string): MessageInfo | undefined;
  /** Info for each id that names a message; unknown or deleted ones are absent from the map. */
  load(ids: readonly string[]): Promise<Map<string, MessageInfo>>;
}

export function messageInfoCache(deps: Pick<Deps, 'db'>): MessageInfoCache {
  const messages = bounded<{ info: MessageInfo; until: number }>(MAX_MESSAGES);
  const versions = bounded<readonly string[]>(MAX_VERSIONS);
  const inflight = new Map<string, Promise<MessageInfo | undefined>>();

  const peek = (id: string) => {
    const e = messages.get(id);
    if (!e) return undefined;
    if (e.until < Date.now()) {
      messages.delete(id);
      return undefined;
    }
    return e.info;
  };

  async function fetch(ids: string[]): Promise<Map<string, MessageInfo>> {
    const rows = (
      await sql<{
        id: string;
        org_id: string;
        sent: boolean;
        sent_ms: number;
        record_id: string | null;
        mass_email_id: string | null;
        template_id: string | null;
        template_version: number | null;
        html: string | null;
      }>`SELECT id, org_id, record_id, mass_email_id, template_id, template_version, html,
           -- milliseconds: pg's timestamp parser is slow, and a burst of opens loads thousands
           sent_at IS NOT NULL AS sent, floor(extract(epoch FROM coalesce(sent_at, created_at)) * 1000)::float8 AS sent_ms
         FROM messages WHERE id = ANY(${ids}::uuid[])`.execute(deps.db)
    ).rows;
    // Template versions not cached yet, in one query (a mass send's messages share one).
    const vkey = (r: (typeof rows)[number]) => `${r.template_id}:${r.template_version}`;
    const missing = new Map<string, { org: string; template: string; version: number }>();
    for (const r of rows)
      if (r.html === null && r.template_id && r.template_version !== null && !versions.get(vkey(r)))
        missing.set(vkey(r), { org: r.org_id, template: r.template_id, version: r.template_version });
    if (missing.size) {
      const vs = [...missing.values()];
      const found = (
        await sql<{ template_id: string; version: number; html: string }>`
          SELECT tv.template_id, tv.version, tv.html
          FROM unnest(${vs.map((v) => v.org)}::uuid[], ${vs.map((v) => v.template)}::uuid[],
                      ${vs.map((v) => v.version)}::int[]) AS k(org_id, template_id, version)
          JOIN template_versions tv
            ON tv.org_id = k.org_id AND tv.template_id = k.template_id AND tv.version = k.version`.execute(
          deps.db,
        )
      ).rows;
      for (const v of found) versions.set(`${v.template_id}:${v.version}`, trackedLinksOf(v.html));
    }
    const out = new Map<string, MessageInfo>();
    const until = Date.now() + MESSAGE_TTL_MS;
    for (const r of rows) {
      const info: MessageInfo = {
        id: r.id,
        orgId: r.org_id,
        sentAt: new Date(r.sent_ms),
        recordId: r.record_id,
        massEmailId: r.mass_email_id,
        links: r.html !== null ? trackedLinksOf(r.html) : (versions.get(vkey(r)) ?? []),
      };
      // A message not sent yet may still get its send time: only sent ones are kept.
      if (r.sent) messages.set(r.id, { info, until });
      out.set(r.id, info);
    }
    return out;
  }

  // Misses arriving in the same turn of the event loop share one query (a burst of clicks on
  // different messages costs one round trip, not one each).
  let queued: string[] = [];
  let queuedBatch: Promise<Map<string, MessageInfo>> | null = null;
  function fetchSoon(id: string): Promise<MessageInfo | undefined> {
    if (!queuedBatch)
      queuedBatch = new Promise<void>((r) => setImmediate(r)).then(() => {
        const ids = queued;
        queued = [];
        queuedBatch = null;
        return fetch(ids);
      });
    queued.push(id);
    const p = queuedBatch.then((m) => m.get(id));
    inflight.set(id, p);
    p.catch(() => {}).finally(() => inflight.delete(id));
    return p;
  }

  async function load(ids: readonly string[]): Promise<Map<string, MessageInfo>> {
    const out = new Map<string, MessageInfo>();
    const waiting: Promise<unknown>[] = [];
    for (const id of new Set(ids)) {
      const hit = peek(id);
      if (hit) out.set(id, hit);
      else waiting.push((inflight.get(id) ?? fetchSoon(id)).then((i) => i && out.set(id, i)));
    }
    await Promise.all(waiting);
    return out;
  }

  return { peek, load };
}
