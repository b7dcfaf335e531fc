import { type RawBuilder, sql } from 'kysely';
import type { AddressChoice } from '../db/schema.ts';
import type { Deps } from '../deps.ts';

// Turning a classified audience (a CTE named `aud`, see audience.ts) into queued message rows, in
// one INSERT … SELECT: used by mass emails, follow-ups and autoresponders alike. Rows are written
// unrendered (subject '' and no body): the deliverer renders each from its template version when
// it claims it, so a million recipients cost a million small rows, not a million bodies.

/** Who a send comes from: fixed addresses, or "the record owner's" (different per recipient). */
export interface SenderSpec {
  from: { address: string; name: string | null } | 'owner';
  replyTo: string | null | 'owner';
}

export interface SendingSetup {
  transport: 'relay' | 'outbox';
  /** Domain of Message-IDs: the relay's sending domain, else the From address's domain. */
  domain: string | null;
}

export async function sendingSetup(deps: Deps, orgId: string): Promise<SendingSetup> {
  const relay = await deps.db
    .selectFrom('smtp_relays')
    .select(['sending_domain'])
    .where('org_id', '=', orgId)
    .executeTakeFirst();
  return { transport: relay ? 'relay' : 'outbox', domain: relay?.sending_domain ?? null };
}

export async function senderFor(
  deps: Deps,
  orgId: string,
  userId: string,
  from: AddressChoice,
  replyTo: AddressChoice | null,
  t: { from_address: string | null; from_name: string | null; reply_to: string | null },
): Promise<SenderSpec | null> {
  const f = from.kind === 'owner' ? 'owner' : await addressOf(deps, orgId, userId, from, t, 'from');
  if (!f) return null;
  const r = !replyTo
    ? null
    : replyTo.kind === 'owner'
      ? 'owner'
      : ((await addressOf(deps, orgId, userId, replyTo, t, 'replyTo'))?.address ?? null);
  return { from: f, replyTo: r };
}

export function insertMessagesSql(o: {
  orgId: string;
  kind: 'mass' | 'autoresponder' | 'workflow';
  moduleId: string;
  template: { id: string; current_version: number };
  senderId: string;
  sender: SenderSpec;
  setup: SendingSetup;
  link: { column: 'mass_email_id' | 'autoresponder_id' | 'workflow_rule_id'; id: string };
  /** 'parked' rows (mass emails) are queued later, within the daily limit; others go at `at`. */
  when: 'parked' | { at: Date; expiresAt: Date };
  limit?: number;
}): RawBuilder<unknown> {
  const owner = o.sender.from === 'owner' || o.sender.replyTo === 'owner';
  const fromAddress = o.sender.from === 'owner' ? sql`ow.email` : sql`${o.sender.from.address}`;
  const fromName = o.sender.from === 'owner' ? sql`ow.name` : sql`${o.sender.from.name}`;
  const replyTo = o.sender.replyTo === 'owner' ? sql`ow.email` : sql`${o.sender.replyTo}`;
  const when =
    o.when === 'parked'
      ? sql`'infinity'::timestamptz, 'infinity'::timestamptz`
      : sql`${o.when.at}::timestamptz, ${o.when.expiresAt}::timestamptz`;
  return sql`
    INSERT INTO messages (org_id, kind, module_id, record_id, template_id, template_version, sender_id,
      from_address, from_name, reply_to, to_address, to_name, subject, message_id_header, transport,
      status, next_attempt_at, expires_at, ${sql.ref(o.link.column)})
    SELECT ${o.orgId}, ${o.kind}, ${o.moduleId}, aud.record_id, ${o.template.id}, ${o.template.current_version}, ${o.senderId},
      ${fromAddress}, ${fromName}, ${replyTo}, aud.email, aud.name, '',
      '<' || replace(gen_random_uuid()::text, '-', '') || '@' || coalesce(${o.setup.domain}, split_part(${fromAddress}, '@', 2)) || '>',
      ${o.setup.transport}, 'queued', ${when}, ${o.link.id}
    FROM aud ${owner ? sql`JOIN records rr ON rr.id = aud.record_id JOIN users ow ON ow.id = rr.owner_id` : sql``}
    WHERE aud.reason IS NULL
    ${o.limit !== undefined ? sql`ORDER BY aud.record_id LIMIT ${o.limit}` : sql``}
    ON CONFLICT DO NOTHING`;
}

/** The address a choice stands for (F3.2); per-record owner addresses are joined in SQL instead. */
async function addressOf(
  deps: Deps,
  orgId: string,
  userId: string,
  choice: AddressChoice,
  t: { from_address: string | null; from_name: string | null; reply_to: string | null },
  which: 'from' | 'replyTo',
): Promise<{ address: string; name: string | null } | null> {
  switch (choice.kind) {
    case 'user':
    case 'owner': {
      const u = await deps.db
        .selectFrom('users')
        .select(['email', 'name'])
        .where('id', '=', userId)
        .executeTakeFirst();
      return u ? { address: u.email, name: u.name } : null;
    }
    case 'template':
      if (which === 'replyTo') return t.reply_to ? { address: t.reply_to, name: null } : null;
      return t.from_address ? { address: t.from_address, name: t.from_name } : null;
    case 'org_address': {
      const a = await deps.db
        .selectFrom('org_addresses')
        .select(['email', 'display_name', 'verified_at'])
        .where('org_id', '=', orgId)
        .where('id', '=', choice.orgAddressId ?? '00000000-0000-0000-0000-000000000000')
        .executeTakeFirst();
      return a?.verified_at ? { address: a.email, name: a.display_name } : null;
    }
    default:
      return null;
  }
}
