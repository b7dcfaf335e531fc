import { sql } from 'kysely';
import type { Deps } from '../deps.ts';
import { suppress } from './bounces/suppression.ts';
import { recordEvents } from './events.ts';
import { verifyTrackingToken } from './tokens.ts';

// Unsubscribe (RFC 8058 one-click, and the confirmation page behind a visible link). The token
// names the message; nothing else is trusted from the request. Unsubscribing sets Email Opt Out on
// the message's record (when its module has the field) and puts the address on the org's
// suppression list, so no bulk mail reaches it again.

export interface UnsubscribeTarget {
  messageId: string;
  orgId: string;
  orgName: string;
  address: string;
  recordId: string | null;
}

export async function unsubscribeTarget(deps: Deps, token: string): Promise<UnsubscribeTarget | null> {
  const t = verifyTrackingToken(deps.config.secret as string, token);
  if (t?.kind !== 'unsubscribe') return null;
  const m = await deps.db
    .selectFrom('messages as m')
    .innerJoin('orgs as o', 'o.id', 'm.org_id')
    .select(['m.id', 'm.org_id', 'o.name', 'm.to_address', 'm.record_id'])
    .where('m.id', '=', t.messageId)
    .executeTakeFirst();
  if (!m) return null;
  return { messageId: m.id, orgId: m.org_id, orgName: m.name, address: m.to_address, recordId: m.record_id };
}

/** Idempotent: a second unsubscribe of the same address changes nothing. */
export async function unsubscribe(deps: Deps, t: UnsubscribeTarget): Promise<void> {
  await deps.db.transaction().execute(async (trx) => {
    // An unsubscribe outranks a bounce already on the list (which a later reply could lift).
    const changed = await suppress(trx, {
      orgId: t.orgId,
      email: t.address,
      reason: 'unsubscribe',
      messageId: t.messageId,
    });
    if (changed) {
      const m = await trx
        .selectFrom('messages')
        .select('mass_email_id')
        .where('id', '=', t.messageId)
        .where('org_id', '=', t.orgId)
        .executeTakeFirst();
      await recordEvents(trx, [
        {
          orgId: t.orgId,
          messageId: t.messageId,
          recordId: t.recordId,
          massEmailId: m?.mass_email_id ?? null,
          kind: 'unsubscribed',
          human: true,
          at: new Date(),
        },
      ]);
    }
    if (t.recordId)
      await sql`UPDATE records r SET data = r.data || '{"email_opt_out": true}'::jsonb, updated_at = now()
        WHERE r.id = ${t.recordId} AND r.org_id = ${t.orgId}
          AND coalesce((r.data ->> 'email_opt_out')::boolean, false) = false
          AND EXISTS (SELECT 1 FROM fields f WHERE f.module_id = r.module_id AND f.api_name = 'email_opt_out')`.execute(
        trx,
      );
  });
  deps.log.info({ messageId: t.messageId, orgId: t.orgId }, 'unsubscribed');
}

/** a•••@example.com: enough for the person to recognise their address, not enough to harvest it. */
export function maskAddress(address: string): string {
  const [local, domain] = address.split('@');
  return `${local.slice(0, 1)}•••@${domain ?? ''}`;
}
