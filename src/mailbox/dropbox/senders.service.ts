import { sql } from 'kysely';
import { type Actor, requireAdmin } from '../../crm/index.ts';
import type { Deps } from '../../deps.ts';
import { AppError, notFound } from '../../errors.ts';
import { parseAddress } from '../../sending/address.ts';
import { confirmAddress, newConfirmationToken, VERIFY_DAYS } from '../../sending/address-confirmation.ts';
import { deliveryExpiresAt, wakeDelivery } from '../../sending/delivery.ts';
import { sendingSetup } from '../../sending/queue-rows.ts';
import { newMessageIdHeader } from '../../sending/verp.ts';

// Verified dropbox senders: only their mail is attached to records automatically. Like
// organization addresses (src/sending/org-addresses.service.ts) an address counts once its owner
// proves it: an active user's own login email counts at once (the user proved it at sign-up);
// any other gets a confirmation link mailed to it (hash stored, works once, for VERIFY_DAYS days).

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ACTIVE_USER = ['active', 'confirmed'] as const;

export interface DropboxSender {
  id: string;
  email: string;
  verified: boolean;
  /** Verified as this user's login email. */
  userName: string | null;
  verifySentAt: Date | null;
  createdAt: Date;
}

export async function listSenders(deps: Deps, actor: Actor): Promise<DropboxSender[]> {
  requireAdmin(actor);
  const rows = await deps.db
    .selectFrom('dropbox_senders as s')
    .leftJoin('users as u', 'u.id', 's.user_id')
    .select([
      's.id',
      's.email',
      's.user_id',
      's.verified_at',
      's.verify_sent_at',
      's.created_at',
      'u.name as user_name',
      'u.email as user_email',
      'u.status as user_status',
    ])
    .where('s.org_id', '=', actor.orgId)
    .orderBy('s.email')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    email: r.email,
    verified: r.user_id
      ? r.user_email?.toLowerCase() === r.email && ACTIVE_USER.includes(r.user_status as 'active')
      : r.verified_at !== null,
    userName: r.user_id ? r.user_name : null,
    verifySentAt: r.verify_sent_at,
    createdAt: r.created_at,
  }));
}

/** Whether mail From this address is from a verified sender of the org (see listSenders). */
export async function isVerifiedSender(deps: Deps, orgId: string, email: string): Promise<boolean> {
  const row = await deps.db
    .selectFrom('dropbox_senders as s')
    .leftJoin('users as u', 'u.id', 's.user_id')
    .select('s.id')
    .where('s.org_id', '=', orgId)
    .where('s.email', '=', email.toLowerCase())
    .where('s.verified_at', 'is not', null)
    .where((eb) =>
      eb.or([
        eb('s.user_id', 'is', null),
        eb.and([
          eb(eb.fn('lower', ['u.email']), '=', sql<string>`s.email`),
          eb('u.status', 'in', [...ACTIVE_USER]),
        ]),
      ]),
    )
    .executeTakeFirst();
  return !!row;
}

export async function addSender(deps: Deps, actor: Actor, input: { email: string }): Promise<DropboxSender> {
  requireAdmin(actor);
  const email = parseAddress(String(input.email ?? ''), 'email').address.toLowerCase();
  const now = deps.clock.now();
  const user = await deps.db
    .selectFrom('users')
    .select('id')
    .where('org_id', '=', actor.orgId)
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email))
    .where('status', 'in', [...ACTIVE_USER])
    .executeTakeFirst();
  const row = await deps.db
    .insertInto('dropbox_senders')
    .values({
      org_id: actor.orgId,
      email,
      user_id: user?.id ?? null,
      verified_at: user ? now : null,
      created_by: actor.userId,
      created_at: now,
    })
    .onConflict((oc) => oc.columns(['org_id', 'email']).doNothing())
    .returning('id')
    .executeTakeFirst();
  if (!row) throw new AppError('conflict', `${email} is already a dropbox sender`);
  if (!user) await sendConfirmation(deps, actor, row.id);
  const added = (await listSenders(deps, actor)).find((s) => s.id === row.id);
  if (!added) throw notFound('Dropbox sender');
  return added;
}

/** (Re)sends the confirmation link; a new link replaces the old one. */
export async function sendConfirmation(deps: Deps, actor: Actor, id: string) {
  requireAdmin(actor);
  const s = UUID.test(id)
    ? await deps.db
        .selectFrom('dropbox_senders')
        .selectAll()
        .where('org_id', '=', actor.orgId)
        .where('id', '=', id)
        .executeTakeFirst()
    : undefined;
  if (!s) throw notFound('Dropbox sender');
  if (s.verified_at) throw new AppError('conflict', `${s.email} is already verified`);
  const { token, hash: tokenHash } = newConfirmationToken();
  const now = deps.clock.now();
  const link = `${deps.config.publicUrl}/dropbox/verify?token=${token}`;
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
      .updateTable('dropbox_senders')
      .set({ verify_token_hash: tokenHash, verify_sent_at: now })
      .where('id', '=', s.id)
      .execute();
    await trx
      .insertInto('messages')
      .values({
        org_id: actor.orgId,
        kind: 'system',
        sender_id: actor.userId,
        from_address: admin.email,
        from_name: 'Parley',
        to_address: s.email,
        subject: `Confirm ${s.email} for the BCC dropbox of ${org.name}`,
        text:
          `${admin.name} (${admin.email}) added ${s.email} as a sender for the BCC dropbox of ${org.name} in Parley: ` +
          `email from this address that is copied to the dropbox will be attached to the CRM records it was sent to.\n\n` +
          `To confirm that this is your address, open this link within ${VERIFY_DAYS} days:\n\n${link}\n\n` +
          'If you did not expect this, ignore this message: nothing is attached until the address is confirmed.',
        message_id_header: newMessageIdHeader(setup.domain ?? admin.email.split('@')[1]),
        transport: setup.transport,
        expires_at: deliveryExpiresAt(deps),
      })
      .execute();
    await wakeDelivery(deps, trx, actor.orgId);
  });
}

/** Opens a confirmation link (no sign-in needed: the token is the proof). */
export const verifySender = (deps: Deps, token: string) => confirmAddress(deps, 'dropbox_senders', token);

export async function removeSender(deps: Deps, actor: Actor, id: string) {
  requireAdmin(actor);
  const r = UUID.test(id)
    ? await deps.db
        .deleteFrom('dropbox_senders')
        .where('org_id', '=', actor.orgId)
        .where('id', '=', id)
        .executeTakeFirst()
    : undefined;
  if (!r?.numDeletedRows) throw notFound('Dropbox sender');
}
