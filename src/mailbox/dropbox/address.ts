import { createHash, randomBytes } from 'node:crypto';
import { type Actor, requireAdmin } from '../../crm/index.ts';
import type { Deps } from '../../deps.ts';
import { decryptSecret, encryptSecret } from '../../sending/secrets.ts';
import { base32 } from '../../sending/verp.ts';

// Each org's BCC dropbox address: dropbox-<token>@<PARLEY_INBOUND_DOMAIN>. The token is 160
// random bits (32 lower-case base32 characters), so the address cannot be guessed; the listener
// finds the org by the token's sha256, and the token is kept encrypted only so admins can read the
// address again (see migration 0011). Regenerating replaces it and the old address is refused.

const TOKEN_BYTES = 20;
const RCPT = /^dropbox-([a-z2-7]{32})@[^@\s]+$/i;
const LOCAL_PREFIX = /^dropbox-/i;

const hashToken = (token: string) => createHash('sha256').update(token.toLowerCase()).digest('hex');
const context = (orgId: string) => `dropbox_addresses.token:${orgId}`;

/** Whether a recipient is addressed to a dropbox at all (well-formed or not). */
export const looksLikeDropbox = (address: string) => LOCAL_PREFIX.test(address);

/** The token of a well-formed dropbox recipient, lower-cased; null otherwise. Any domain. */
export function dropboxToken(address: string): string | null {
  const m = RCPT.exec(address);
  return m ? m[1].toLowerCase() : null;
}

/** The org whose current dropbox token this is, or null. */
export async function orgOfToken(deps: Deps, token: string): Promise<string | null> {
  const row = await deps.db
    .selectFrom('dropbox_addresses')
    .select('org_id')
    .where('token_hash', '=', hashToken(token))
    .executeTakeFirst();
  return row?.org_id ?? null;
}

const addressOf = (deps: Deps, token: string) => `dropbox-${token}@${deps.config.inboundDomain}`;

async function storeNewToken(deps: Deps, actor: Actor, replace: boolean): Promise<string> {
  const token = base32(randomBytes(TOKEN_BYTES));
  const values = {
    org_id: actor.orgId,
    token_hash: hashToken(token),
    token_enc: encryptSecret(deps.config, token, context(actor.orgId)),
    created_by: actor.userId,
    created_at: deps.clock.now(),
  };
  const q = deps.db.insertInto('dropbox_addresses').values(values);
  await (replace
    ? q.onConflict((oc) =>
        oc.column('org_id').doUpdateSet({
          token_hash: values.token_hash,
          token_enc: values.token_enc,
          created_by: values.created_by,
          created_at: values.created_at,
        }),
      )
    : q.onConflict((oc) => oc.column('org_id').doNothing())
  ).execute();
  return token;
}

/** The org's dropbox address, created on first use. Admins only. */
export async function getDropboxAddress(
  deps: Deps,
  actor: Actor,
): Promise<{ address: string; createdAt: Date }> {
  requireAdmin(actor);
  const read = () =>
    deps.db
      .selectFrom('dropbox_addresses')
      .select(['token_enc', 'created_at'])
      .where('org_id', '=', actor.orgId)
      .executeTakeFirst();
  let row = await read();
  if (!row) {
    // Two first visits at once: one insert wins, both read the winner.
    await storeNewToken(deps, actor, false);
    row = await read();
  }
  if (!row) throw new Error('dropbox address was not stored');
  return {
    address: addressOf(deps, decryptSecret(deps.config, row.token_enc, context(actor.orgId))),
    createdAt: row.created_at,
  };
}

/** A new address; the previous one is refused from now on. Admins only. */
export async function regenerateDropboxAddress(deps: Deps, actor: Actor) {
  requireAdmin(actor);
  await storeNewToken(deps, actor, true);
  return getDropboxAddress(deps, actor);
}
