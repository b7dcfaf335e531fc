import { sql } from 'kysely';
import type { Deps } from '../deps.ts';
import { AppError, invalid, notFound } from '../errors.ts';
import type { Actor } from './access.ts';
import { hashPassword, verifyPassword } from './passwords.ts';
import { hashToken, newToken } from './tokens.ts';

const badLogin = () => new AppError('unauthenticated', 'Wrong email or password');
let dummyHash: Promise<string> | undefined;

/** Users joined to their profiles, with what an Actor is made of. */
function actors(deps: Deps) {
  return deps.db
    .selectFrom('users')
    .innerJoin('profiles', 'profiles.id', 'users.profile_id')
    .select([
      'users.id as actor_user_id',
      'users.org_id as actor_org_id',
      'users.status as actor_status',
      'users.time_zone as actor_time_zone',
      'users.locale as actor_locale',
      'profiles.is_admin as actor_is_admin',
      'profiles.permissions as actor_permissions',
    ]);
}

type ActorRow = Awaited<ReturnType<ReturnType<typeof actors>['executeTakeFirstOrThrow']>>;

/** The Actor of an active user; a user who was deactivated has none. */
function toActor(row: ActorRow | undefined): Actor | undefined {
  if (row?.actor_status !== 'active') return undefined;
  return {
    orgId: row.actor_org_id,
    userId: row.actor_user_id,
    isAdmin: row.actor_is_admin,
    permissions: row.actor_permissions,
    timeZone: row.actor_time_zone,
    locale: row.actor_locale,
  };
}

export async function actorForUser(deps: Deps, where: { userId: string }): Promise<Actor | undefined> {
  return toActor(await actors(deps).where('users.id', '=', where.userId).executeTakeFirst());
}

export async function login(deps: Deps, email: string, password: string) {
  const user = await deps.db
    .selectFrom('users')
    .select(['id', 'org_id', 'password_hash', 'status'])
    .where(
      sql`lower(email)`,
      '=',
      String(email ?? '')
        .trim()
        .toLowerCase(),
    )
    .executeTakeFirst();
  if (!user) {
    // Same work for an unknown email as for a wrong password, so timing does not reveal accounts.
    dummyHash ??= hashPassword('not a real password');
    await verifyPassword(await dummyHash, String(password ?? ''));
    throw badLogin();
  }
  if (!(await verifyPassword(user.password_hash, String(password ?? '')))) throw badLogin();
  if (user.status !== 'active') throw new AppError('forbidden', 'This user is not active');
  return createSession(deps, user.id, user.org_id);
}

export async function createSession(deps: Deps, userId: string, orgId: string) {
  const token = newToken();
  const csrfToken = newToken(24);
  const expires = new Date(deps.clock.now().getTime() + deps.config.sessionDays * 86_400_000);
  await deps.db
    .insertInto('sessions')
    .values({
      id: hashToken(token),
      org_id: orgId,
      user_id: userId,
      csrf_token: csrfToken,
      expires_at: expires,
    })
    .execute();
  return { token, csrfToken, expires, userId, orgId };
}

export async function resolveSession(deps: Deps, token: string) {
  // One query per request: the session and its user.
  const s = await actors(deps)
    .innerJoin('sessions', 'sessions.user_id', 'users.id')
    .select(['sessions.csrf_token', 'sessions.expires_at'])
    .where('sessions.id', '=', hashToken(token))
    .executeTakeFirst();
  if (!s || s.expires_at.getTime() <= deps.clock.now().getTime()) return undefined;
  const actor = toActor(s);
  return actor ? { actor, csrfToken: s.csrf_token } : undefined;
}

export async function deleteSession(deps: Deps, token: string) {
  await deps.db.deleteFrom('sessions').where('id', '=', hashToken(token)).execute();
}

/** Signs the user out everywhere but the session given (a password change ends a thief's session). */
export async function deleteOtherSessions(deps: Deps, userId: string, keepToken: string | undefined) {
  let q = deps.db.deleteFrom('sessions').where('user_id', '=', userId);
  if (keepToken) q = q.where('id', '!=', hashToken(keepToken));
  await q.execute();
}

export async function purgeExpiredSessions(deps: Deps) {
  const r = await deps.db
    .deleteFrom('sessions')
    .where('expires_at', '<=', deps.clock.now())
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}

// API keys: "pk_" + 8-char public prefix (to recognise a key in lists) + "_" + secret.
export async function createApiKey(deps: Deps, actor: Actor, name: string) {
  const n = typeof name === 'string' ? name.trim() : '';
  if (!n || n.length > 100)
    throw invalid('name must be 1 to 100 characters', [{ path: 'name', message: 'required' }]);
  const prefix = newToken(6).replace(/[-_]/g, 'x').slice(0, 8);
  const key = `pk_${prefix}_${newToken(32)}`;
  const row = await deps.db
    .insertInto('api_keys')
    .values({ org_id: actor.orgId, user_id: actor.userId, name: n, prefix, key_hash: hashToken(key) })
    .returning(['id', 'name', 'prefix', 'created_at', 'last_used_at', 'revoked_at'])
    .executeTakeFirstOrThrow();
  return { ...row, key };
}

export async function listApiKeys(deps: Deps, actor: Actor) {
  let q = deps.db
    .selectFrom('api_keys')
    .select(['id', 'name', 'prefix', 'user_id', 'created_at', 'last_used_at', 'revoked_at'])
    .where('org_id', '=', actor.orgId);
  if (!actor.isAdmin) q = q.where('user_id', '=', actor.userId);
  return q.orderBy('created_at', 'desc').execute();
}

export async function revokeApiKey(deps: Deps, actor: Actor, id: string) {
  let q = deps.db
    .updateTable('api_keys')
    .set({ revoked_at: deps.clock.now() })
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .where('revoked_at', 'is', null);
  if (!actor.isAdmin) q = q.where('user_id', '=', actor.userId);
  const r = await q.executeTakeFirst();
  if (r.numUpdatedRows === 0n) throw notFound('API key');
}

export async function resolveApiKey(deps: Deps, key: string): Promise<Actor | undefined> {
  if (!/^pk_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{43}$/.test(key)) return undefined;
  // One query per request: the key and its user.
  const row = await actors(deps)
    .innerJoin('api_keys', 'api_keys.user_id', 'users.id')
    .select(['api_keys.id', 'api_keys.last_used_at'])
    .where('api_keys.key_hash', '=', hashToken(key))
    .where('api_keys.revoked_at', 'is', null)
    .executeTakeFirst();
  if (!row) return undefined;
  // "Last used" is shown to the minute; writing it on every call cost a commit per API request.
  const now = deps.clock.now();
  if (!row.last_used_at || now.getTime() - row.last_used_at.getTime() >= LAST_USED_PRECISION_MS)
    await deps.db.updateTable('api_keys').set({ last_used_at: now }).where('id', '=', row.id).execute();
  return toActor(row);
}
const LAST_USED_PRECISION_MS = 60_000;
