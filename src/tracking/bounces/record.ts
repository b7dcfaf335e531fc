import { sql } from 'kysely';
import type { Db } from '../../db/pool.ts';
import type { Deps } from '../../deps.ts';
import { guardBounces } from '../../sending/mass-launch.ts';
import { type NewEmailEvent, recordEvents } from '../events.ts';
import { alertPolicyBounce } from './alerts.ts';
import type { BounceKind } from './kinds.ts';
import { gradeSoftBounce, type SuppressInput, suppressMany } from './suppression.ts';

// Recording bounces and complaints, whatever brought them: a DSN or prose bounce at the inbound
// listener, a 5xx answer while sending (the deliverer), a provider's webhook. States move forward
// only: hard > policy > soft, so a late soft never overwrites a hard and a duplicate is a no-op;
// a complaint is recorded once per message. Each change writes one email_events row, applies the
// graded suppression, and mass emails that got hard bounces go through the bounce-rate guard.

export interface BounceItem {
  /** messages.id */
  messageId: string;
  kind: BounceKind;
  /** The RFC 3463 enhanced status code, '' when none was given. */
  status: string;
  reason: string;
  at: Date;
  source: 'dsn' | 'smtp' | 'provider';
}

export interface RecordedBounces {
  /** Items that changed their message (the rest were duplicates, late, or named no message). */
  recorded: number;
  duplicates: number;
  unknown: number;
  /** Addresses put on (or raised on) the suppression list. */
  suppressed: string[];
  /** New admin alerts opened by policy bounces. */
  alerts: number;
  /** Mass emails paused by the bounce-rate guard. */
  paused: string[];
}

/** fn inside db when it is a transaction already, else inside a new one. */
export function inTransaction<T>(db: Db, fn: (trx: Db) => Promise<T>): Promise<T> {
  return db.isTransaction ? fn(db) : db.transaction().execute(fn);
}

const RANK: Record<Exclude<BounceKind, 'complaint'>, number> = { soft: 1, policy: 2, hard: 3 };

interface Row {
  id: string;
  org_id: string;
  to_address: string;
  record_id: string | null;
  mass_email_id: string | null;
  bounce_kind: 'hard' | 'soft' | 'policy' | null;
  complained_at: Date | null;
}

/**
 * Records bounces and complaints. `opts.orgId` restricts the messages to one org (callers that
 * know it, such as webhooks, pass it so an item can never touch another org's message).
 * Safe to call with any mix of items, in any order, any number of times; inside the caller's
 * transaction when deps.db is one (the deliverer recording a 5xx with the message's outcome),
 * else in its own.
 */
export async function recordBounces(
  deps: Deps,
  items: readonly BounceItem[],
  opts: { orgId?: string } = {},
): Promise<RecordedBounces> {
  const out: RecordedBounces = {
    recorded: 0,
    duplicates: 0,
    unknown: 0,
    suppressed: [],
    alerts: 0,
    paused: [],
  };
  if (!items.length) return out;
  const guardOrgs = new Set<string>();
  await inTransaction(deps.db, async (trx) => {
    const ids = [...new Set(items.map((i) => i.messageId.toLowerCase()))].sort();
    // Locked in id order: concurrent writers (listener, webhooks, deliverer) never deadlock.
    const rows = (
      await sql<Row>`
        SELECT id, org_id, to_address, record_id, mass_email_id, bounce_kind, complained_at FROM messages
        WHERE id = ANY(${ids}::uuid[]) ${opts.orgId ? sql`AND org_id = ${opts.orgId}` : sql``}
        ORDER BY id FOR UPDATE`.execute(trx)
    ).rows;
    const byId = new Map(rows.map((r) => [r.id, r]));
    const events: NewEmailEvent[] = [];
    // Decided in memory first, then written set-wise: a mass send's batch of 5xx answers costs a
    // handful of statements, not a few per bounce.
    const bounced = new Map<string, { kind: BounceItem['kind']; at: Date; reason: string | null }>();
    const complained = new Map<string, Date>();
    const toSuppress: SuppressInput[] = [];
    const softs: Row[] = [];
    const policies: { m: Row; it: BounceItem; reason: string }[] = [];
    // Oldest first, so that a batch holding a message's soft and later hard bounce ends at hard.
    const ordered = [...items].sort((a, b) => a.at.getTime() - b.at.getTime());
    for (const it of ordered) {
      const m = byId.get(it.messageId.toLowerCase());
      if (!m) {
        out.unknown++;
        continue;
      }
      const reason = it.reason.replace(/\s+/g, ' ').trim().slice(0, 1000);
      const event = (kind: 'bounced' | 'complained'): NewEmailEvent => ({
        orgId: m.org_id,
        messageId: m.id,
        recordId: m.record_id,
        massEmailId: m.mass_email_id,
        kind,
        human: true,
        at: it.at,
        data: { kind: it.kind, status: it.status, reason, source: it.source },
      });
      if (it.kind === 'complaint') {
        if (m.complained_at) {
          out.duplicates++;
          continue;
        }
        m.complained_at = it.at;
        complained.set(m.id, it.at);
        events.push(event('complained'));
        toSuppress.push({
          orgId: m.org_id,
          email: m.to_address,
          reason: 'complaint',
          messageId: m.id,
          detail: reason || 'Reported as spam',
          at: it.at,
        });
        out.recorded++;
        continue;
      }
      if (m.bounce_kind && RANK[m.bounce_kind] >= RANK[it.kind]) {
        out.duplicates++;
        continue;
      }
      m.bounce_kind = it.kind;
      bounced.set(m.id, { kind: it.kind, at: it.at, reason: reason || null });
      events.push(event('bounced'));
      out.recorded++;
      if (it.kind === 'hard') {
        if (m.mass_email_id) guardOrgs.add(m.org_id);
        toSuppress.push({
          orgId: m.org_id,
          email: m.to_address,
          reason: 'hard_bounce',
          messageId: m.id,
          detail: [it.status, reason].filter(Boolean).join(' ') || null,
          at: it.at,
        });
      } else if (it.kind === 'soft') softs.push(m);
      else policies.push({ m, it, reason });
    }
    if (bounced.size) {
      const b = [...bounced.entries()];
      await sql`
        UPDATE messages m SET bounced_at = u.at, bounce_kind = u.kind, bounce_reason = u.reason, updated_at = now()
        FROM unnest(${b.map(([id]) => id)}::uuid[], ${b.map(([, v]) => v.kind)}::text[],
          ${b.map(([, v]) => v.at.toISOString())}::timestamptz[], ${b.map(([, v]) => v.reason)}::text[]) AS u(id, kind, at, reason)
        WHERE m.id = u.id`.execute(trx);
    }
    if (complained.size) {
      const c = [...complained.entries()];
      await sql`
        UPDATE messages m SET complained_at = u.at, updated_at = now()
        FROM unnest(${c.map(([id]) => id)}::uuid[], ${c.map(([, at]) => at.toISOString())}::timestamptz[]) AS u(id, at)
        WHERE m.id = u.id`.execute(trx);
    }
    const changed = new Set(await suppressMany(trx, toSuppress));
    // Soft bounces graded once per address, after the batch's bounces are on the messages.
    const graded = new Set<string>();
    for (const m of softs) {
      const key = `${m.org_id} ${m.to_address.toLowerCase()}`;
      if (graded.has(key) || m.bounce_kind !== 'soft') continue;
      graded.add(key);
      const at = bounced.get(m.id)?.at ?? deps.clock.now();
      if (await gradeSoftBounce(trx, m.org_id, m.to_address, m.id, at)) changed.add(key);
    }
    for (const p of policies) {
      if (p.m.bounce_kind !== 'policy') continue; // moved on to hard in the same batch
      const alerted = await alertPolicyBounce(
        { ...deps, db: trx },
        {
          orgId: p.m.org_id,
          messageId: p.m.id,
          recipient: p.m.to_address,
          status: p.it.status,
          reason: p.reason,
          at: p.it.at,
        },
      );
      if (alerted) out.alerts++;
    }
    out.suppressed = [...changed].map((k) => k.slice(k.indexOf(' ') + 1));
    await recordEvents(trx, events);
  });
  for (const orgId of guardOrgs) out.paused.push(...(await guardBounces(deps, orgId)));
  if (out.recorded)
    deps.log.info(
      { recorded: out.recorded, suppressed: out.suppressed.length, alerts: out.alerts, paused: out.paused },
      'bounces recorded',
    );
  return out;
}
