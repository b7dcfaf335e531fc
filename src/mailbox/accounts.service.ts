// A user's own connected mailboxes (F6.3): connect, test, edit, pause/resume, remove, "sync now".
// Every user sees and acts on their own accounts only (admins included: a mailbox is personal).
// The password or token is encrypted at rest, bound to its account, and never answered.
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Actor } from '../crm/access.ts';
import type { Deps } from '../deps.ts';
import { notFound } from '../errors.ts';
import { decryptSecret, encryptSecret } from '../sending/secrets.ts';
import { type MailboxSettings, secretContext, type TestResult, testConnection } from './sync/connect.ts';

export interface AccountInput {
  protocol: 'imap' | 'pop3';
  host: string;
  port: number;
  security: 'tls' | 'starttls' | 'none';
  username: string;
  auth?: 'password' | 'oauth2';
  /** Password or OAuth2 bearer token. */
  secret: string;
  emailAddress: string;
  backfillDays?: number;
  shared?: boolean;
}

export type AccountPatch = Partial<AccountInput>;

const columns = [
  'id',
  'protocol',
  'host',
  'port',
  'security',
  'username',
  'auth',
  'email_address',
  'backfill_days',
  'shared',
  'state',
  'error_code',
  'error_message',
  'error_at',
  'backfill_done',
  'last_sync_at',
  'next_sync_at',
  'lease_owner',
  'created_at',
  'updated_at',
] as const;

export type AccountView = Awaited<ReturnType<typeof loadAccount>>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function loadAccount(deps: Deps, actor: Actor, id: string) {
  const a = UUID.test(id)
    ? await deps.db
        .selectFrom('mailbox_accounts')
        .select(columns)
        .where('org_id', '=', actor.orgId)
        .where('user_id', '=', actor.userId)
        .where('id', '=', id)
        .executeTakeFirst()
    : undefined;
  if (!a) throw notFound('Mailbox');
  return a;
}

export const getAccount = loadAccount;

export async function listAccounts(deps: Deps, actor: Actor) {
  return deps.db
    .selectFrom('mailbox_accounts')
    .select(columns)
    .where('org_id', '=', actor.orgId)
    .where('user_id', '=', actor.userId)
    .orderBy('created_at')
    .execute();
}

const settingsOfInput = (i: AccountInput): MailboxSettings => ({
  protocol: i.protocol,
  host: i.host.trim(),
  port: i.port,
  security: i.security,
  username: i.username,
  auth: i.auth ?? 'password',
  secret: i.secret,
});

/** "Test connection" before saving: connects and logs in with what the form holds. */
export function testSettings(input: AccountInput, opts: { timeoutMs?: number } = {}): Promise<TestResult> {
  return testConnection(settingsOfInput(input), opts);
}

/** "Test connection" of a saved account, with its stored secret. */
export async function testAccount(deps: Deps, actor: Actor, id: string, opts: { timeoutMs?: number } = {}) {
  await loadAccount(deps, actor, id);
  const row = await deps.db
    .selectFrom('mailbox_accounts')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return testConnection(
    {
      protocol: row.protocol,
      host: row.host,
      port: row.port,
      security: row.security,
      username: row.username,
      auth: row.auth,
      secret: decryptSecret(deps.config, row.secret_enc, secretContext(id)),
    },
    opts,
  );
}

export async function createAccount(deps: Deps, actor: Actor, input: AccountInput) {
  const id = randomUUID();
  await deps.db
    .insertInto('mailbox_accounts')
    .values({
      id,
      org_id: actor.orgId,
      user_id: actor.userId,
      protocol: input.protocol,
      host: input.host.trim(),
      port: input.port,
      security: input.security,
      username: input.username,
      auth: input.auth ?? 'password',
      secret_enc: encryptSecret(deps.config, input.secret, secretContext(id)),
      email_address: input.emailAddress.trim().toLowerCase(),
      backfill_days: input.backfillDays ?? 90,
      shared: input.shared ?? true,
    })
    .execute();
  return loadAccount(deps, actor, id);
}

/**
 * Edits an account. A new server, user or protocol is another mailbox: its folder cursors and the
 * copies stored from the old one are dropped, and it is synced afresh (the emails themselves stay).
 */
export async function updateAccount(deps: Deps, actor: Actor, id: string, patch: AccountPatch) {
  const before = await loadAccount(deps, actor, id);
  const moved =
    (patch.protocol !== undefined && patch.protocol !== before.protocol) ||
    (patch.host !== undefined && patch.host.trim() !== before.host) ||
    (patch.port !== undefined && patch.port !== before.port) ||
    (patch.username !== undefined && patch.username !== before.username);
  await deps.db.transaction().execute(async (trx) => {
    await trx
      .updateTable('mailbox_accounts')
      .set({
        ...(patch.protocol !== undefined ? { protocol: patch.protocol } : {}),
        ...(patch.host !== undefined ? { host: patch.host.trim() } : {}),
        ...(patch.port !== undefined ? { port: patch.port } : {}),
        ...(patch.security !== undefined ? { security: patch.security } : {}),
        ...(patch.username !== undefined ? { username: patch.username } : {}),
        ...(patch.auth !== undefined ? { auth: patch.auth } : {}),
        ...(patch.secret !== undefined
          ? { secret_enc: encryptSecret(deps.config, patch.secret, secretContext(id)) }
          : {}),
        ...(patch.emailAddress !== undefined
          ? { email_address: patch.emailAddress.trim().toLowerCase() }
          : {}),
        ...(patch.backfillDays !== undefined ? { backfill_days: patch.backfillDays } : {}),
        ...(patch.shared !== undefined ? { shared: patch.shared } : {}),
        // New settings deserve a new try: clear the last error and sync soon.
        error_code: null,
        error_message: null,
        error_at: null,
        failures: 0,
        next_sync_at: sql<Date>`now()`,
        ...(moved ? { backfill_done: false } : {}),
        updated_at: sql<Date>`now()`,
      })
      .where('id', '=', id)
      .execute();
    if (moved) {
      await trx.deleteFrom('mail_locations').where('account_id', '=', id).execute();
      await trx.deleteFrom('mailbox_folders').where('account_id', '=', id).execute();
    }
  });
  return loadAccount(deps, actor, id);
}

export async function setPaused(deps: Deps, actor: Actor, id: string, paused: boolean) {
  await loadAccount(deps, actor, id);
  await deps.db
    .updateTable('mailbox_accounts')
    .set(
      paused
        ? { state: 'paused', updated_at: sql<Date>`now()` }
        : {
            state: 'active',
            error_code: null,
            error_message: null,
            error_at: null,
            failures: 0,
            next_sync_at: sql<Date>`now()`,
            updated_at: sql<Date>`now()`,
          },
    )
    .where('id', '=', id)
    .execute();
  return loadAccount(deps, actor, id);
}

/** "Sync now": due at once (a worker holding it in IDLE notices within seconds). */
export async function syncNow(deps: Deps, actor: Actor, id: string) {
  const a = await loadAccount(deps, actor, id);
  await deps.db
    .updateTable('mailbox_accounts')
    .set({ next_sync_at: sql<Date>`now()` })
    .where('id', '=', id)
    .execute();
  return { ...a, next_sync_at: new Date() };
}

/** Removes the account, its copies, and the emails no other mailbox (or the BCC dropbox) holds. */
export async function deleteAccount(deps: Deps, actor: Actor, id: string) {
  await loadAccount(deps, actor, id);
  await deps.db.transaction().execute(async (trx) => {
    await sql`
      DELETE FROM mail_messages m
      WHERE m.org_id = ${actor.orgId} AND m.source <> 'dropbox'
        AND m.id IN (SELECT mail_id FROM mail_locations WHERE account_id = ${id})
        AND NOT EXISTS (SELECT 1 FROM mail_locations l WHERE l.mail_id = m.id AND l.account_id <> ${id})`.execute(
      trx,
    );
    await trx.deleteFrom('mailbox_accounts').where('id', '=', id).execute();
  });
}
