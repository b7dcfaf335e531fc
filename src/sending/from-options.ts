import type { AddressChoice } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { invalid } from '../errors.ts';

// From and Reply-To (F3.2): the user's own address (the default), a verified organization address,
// the record owner's address, or the template's own address (offered only when it has one). One
// place decides both what is offered and what is accepted.

export interface AddressOption {
  kind: AddressChoice['kind'];
  orgAddressId?: string;
  address: string;
  name: string | null;
  label: string;
}

export interface OptionContext {
  orgId: string;
  userId: string;
  /** The record's owner, for 'owner'. */
  ownerId?: string | null;
  /** The template's own addresses, for 'template'. */
  template?: { from_address: string | null; from_name: string | null; reply_to: string | null } | null;
}

export async function addressOptions(
  deps: Deps,
  c: OptionContext,
  which: 'from' | 'replyTo',
): Promise<AddressOption[]> {
  const ids = [c.userId, ...(c.ownerId ? [c.ownerId] : [])];
  const users = await deps.db
    .selectFrom('users')
    .select(['id', 'email', 'name', 'status'])
    .where('org_id', '=', c.orgId)
    .where('id', 'in', ids)
    .execute();
  const me = users.find((u) => u.id === c.userId);
  const owner = users.find((u) => u.id === c.ownerId);
  const out: AddressOption[] = [];
  if (me) out.push({ kind: 'user', address: me.email, name: me.name, label: `${me.name} <${me.email}>` });
  const orgAddresses = await deps.db
    .selectFrom('org_addresses')
    .select(['id', 'email', 'display_name'])
    .where('org_id', '=', c.orgId)
    .where('verified_at', 'is not', null)
    .orderBy('email')
    .execute();
  for (const a of orgAddresses)
    out.push({
      kind: 'org_address',
      orgAddressId: a.id,
      address: a.email,
      name: a.display_name,
      label: a.display_name ? `${a.display_name} <${a.email}>` : a.email,
    });
  if (owner && owner.id !== c.userId && owner.status !== 'deactivated')
    out.push({
      kind: 'owner',
      address: owner.email,
      name: owner.name,
      label: `${owner.name} <${owner.email}> (record owner)`,
    });
  const t = c.template;
  const own = which === 'from' ? t?.from_address : t?.reply_to;
  if (own)
    out.push({
      kind: 'template',
      address: own,
      name: which === 'from' ? (t?.from_name ?? null) : null,
      label: `${own} (the template's address)`,
    });
  return out;
}

/** The address a choice stands for, if it is one of the offered options; a clear error otherwise. */
export async function resolveChoice(
  deps: Deps,
  c: OptionContext,
  choice: AddressChoice | undefined,
  which: 'from' | 'replyTo',
): Promise<AddressOption> {
  const options = await addressOptions(deps, c, which);
  const wanted = choice ?? { kind: 'user' as const };
  const found = options.find(
    (o) => o.kind === wanted.kind && (o.kind !== 'org_address' || o.orgAddressId === wanted.orgAddressId),
  );
  if (found) return found;
  // The owner may be the sender: "the owner's address" is then the user's own.
  if (wanted.kind === 'owner' && c.ownerId === c.userId) {
    const mine = options.find((o) => o.kind === 'user');
    if (mine) return mine;
  }
  const why =
    wanted.kind === 'org_address'
      ? 'that organization address does not exist or is not verified yet'
      : wanted.kind === 'template'
        ? 'the template has no address of its own'
        : wanted.kind === 'owner'
          ? 'the record owner has no usable address'
          : 'this choice is not available';
  throw invalid(`${which === 'from' ? 'From' : 'Reply-To'}: ${why}`, [{ path: which, message: why }]);
}
