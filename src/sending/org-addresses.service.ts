import { type Actor, requireAdmin } from '../crm/index.ts';
import type { Deps } from '../deps.ts';
import { AppError, invalid, notFound } from '../errors.ts';
import { assertHeaderSafe, parseAddress } from './address.ts';
import { confirmAddress, newConfirmationToken, VERIFY_DAYS } from './address-confirmation.ts';
import { deliveryExpiresAt, wakeDelivery } from './delivery.ts';
import { sendingSetup } from './queue-rows.ts';
import { newMessageIdHeader } from './verp.ts';

// Organization addresses (F6.1): shared From addresses (support@…) that admins add. Each is usable
// only after the confirmation link mailed to it is opened: proof that the org controls the mailbox.
// Only the link token's hash is stored; the link works once and for VERIFY_DAYS days.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function listOrgAddresses(deps: Deps, actor: Actor) {
  return deps.db
    .selectFrom('org_addresses')
    .select(['id', 'email', 'display_name', 'verified_at', 'verify_sent_at', 'created_at'])
    .where('org_id', '=', actor.orgId)
    .orderBy('email')
    .execute();
}

export async function addOrgAddress(
  deps: Deps,
  actor: Actor,
  input: { email: string; displayName?: string | null },
) {
  requireAdmin(actor);
  const { address } = parseAddress(String(input.email ?? ''), 'email');
  const displayName = input.displayName?.trim() || null;
  if (displayName) {
    assertHeaderSafe('displayName', displayName);
    if (displayName.length > 200)
      throw invalid('The display name is too long', [{ path: 'displayName', message: 'too long' }]);
  }
  const exists = await deps.db
    .selectFrom('org_addresses')
    .select('id')
    .where('org_id', '=', actor.orgId)
    .where((eb) => eb(eb.fn('lower', ['email']), '=', address.toLowerCase()))
    .executeTakeFirst();
  if (exists) throw new AppError('conflict', `${address} is already an organization address`);
  const row = await deps.db
    .insertInto('org_addresses')
    .values({ org_id: actor.orgId, email: address, display_name: displayName, created_by: actor.userId })
    .returning('id')
    .executeTakeFirstOrThrow();
  await sendConfirmation(deps, actor, row.id);
  return (await listOrgAddresses(deps, actor)).find((a) => a.id === row.id);
}

/** (Re)sends the confirmation link; a new link replaces the old one. */
export async function sendConfirmation(deps: Deps, actor: Actor, id: string) {
  requireAdmin(actor);
  const a = UUID.test(id)
    ? await deps.db
        .selectFrom('org_addresses')
        .selectAll()
        .where('org_id', '=', actor.orgId)
        .where('id', '=', id)
        .executeTakeFirst()
    : undefined;
  if (!a) throw notFound('Organization address');
  if (a.verified_at) throw new AppError('conflict', `${a.email} is already verified`);
  const { token, hash: tokenHash } = newConfirmationToken();
  const now = deps.clock.now();
  const link = `${deps.config.publicUrl}/org-addresses/verify?token=${token}`;
  const [org, admin] = await Promise.all([
    deps.db.selectFrom('orgs').select('name').where('id', '=', actor.orgId).executeTakeFirstOrThrow(),
    deps.db
      .selectFrom('users')
      .select(['email', 'name'])
      .where('id', '=', actor.userId)
      .executeTakeFirstOrThrow(),
  ]);
  const setup = await sendingSetup(deps, actor.orgId);
  await deps.db.transaction().execute(async (trx) => {
    await trx
      .updateTable('org_addresses')
      .set({ verify_token_hash: tokenHash, verify_sent_at: now, updated_at: now })
      .where('id', '=', a.id)
      .execute();
    // Sent from the address itself: it must reach its own mailbox to be confirmed.
    await trx
      .insertInto('messages')
      .values({
        org_id: actor.orgId,
        kind: 'system',
        sender_id: actor.userId,
        from_address: a.email,
        from_name: 'Parley',
        to_address: a.email,
        to_name: a.display_name,
        subject: `Confirm ${a.email} as a sending address of ${org.name}`,
        text:
          `${admin.name} (${admin.email}) added ${a.email} as an organization address of ${org.name} in Parley.\n\n` +
          `To let ${org.name} send email from this address, open this link within ${VERIFY_DAYS} days:\n\n${link}\n\n` +
          'If you did not expect this, ignore this message: nothing is sent from this address until it is confirmed.',
        message_id_header: newMessageIdHeader(setup.domain ?? a.email.split('@')[1]),
        transport: setup.transport,
        expires_at: deliveryExpiresAt(deps),
      })
      .execute();
    await wakeDelivery(deps, trx, actor.orgId);
  });
}

/** Opens a confirmation link (no sign-in needed: the token is the proof). */
export const verifyOrgAddress = (deps: Deps, token: string) => confirmAddress(deps, 'org_addresses', token);

export async function deleteOrgAddress(deps: Deps, actor: Actor, id: string) {
  requireAdmin(actor);
  const r = UUID.test(id)
    ? await deps.db
        .deleteFrom('org_addresses')
        .where('org_id', '=', actor.orgId)
        .where('id', '=', id)
        .executeTakeFirst()
    : undefined;
  if (!r?.numDeletedRows) throw notFound('Organization address');
}
