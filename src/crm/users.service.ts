import { sql } from 'kysely';
import type { UserStatus } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { AppError, invalid, notFound } from '../errors.ts';
import { type Actor, requireAdmin } from './access.ts';
import { checkNewPassword, hashPassword, verifyPassword } from './passwords.ts';
import { hashToken, newToken } from './tokens.ts';
import { isValidEmail } from './values.ts';

export function checkEmail(v: unknown): string {
  const s = typeof v === 'string' ? v.trim().toLowerCase() : '';
  if (!isValidEmail(s))
    throw invalid(`"${String(v)}" is not a valid email address`, [{ path: 'email', message: 'invalid' }]);
  return s;
}

export function checkTimeZone(tz: unknown): string {
  if (typeof tz !== 'string') throw invalid('timeZone must be an IANA time zone name');
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return tz;
  } catch {
    throw invalid(`"${tz}" is not a known time zone`, [{ path: 'timeZone', message: 'unknown time zone' }]);
  }
}

export function checkLocale(locale: unknown): string {
  if (typeof locale !== 'string') throw invalid('locale must be a BCP 47 tag such as en-US');
  try {
    return Intl.getCanonicalLocales(locale)[0];
  } catch {
    throw invalid(`"${locale}" is not a valid locale`, [{ path: 'locale', message: 'invalid locale' }]);
  }
}

const publicColumns = [
  'id',
  'email',
  'name',
  'status',
  'profile_id',
  'time_zone',
  'locale',
  'created_at',
] as const;

/** A user's name becomes the display name of their mail's From: no line breaks or control characters. */
function checkOneLine(name: string) {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(name))
    throw invalid('name must be a single line of text', [
      { path: 'name', message: 'line break or control character' },
    ]);
}

export async function listUsers(deps: Deps, actor: Actor) {
  return deps.db
    .selectFrom('users')
    .select(publicColumns)
    .where('org_id', '=', actor.orgId)
    .orderBy('name')
    .execute();
}

export async function getUser(deps: Deps, actor: Actor, id: string) {
  const u = await deps.db
    .selectFrom('users')
    .select(publicColumns)
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!u) throw notFound('User');
  return u;
}

async function checkProfile(deps: Deps, orgId: string, profileId: unknown) {
  const p =
    typeof profileId === 'string'
      ? await deps.db
          .selectFrom('profiles')
          .select('id')
          .where('org_id', '=', orgId)
          .where(sql<boolean>`id::text = ${profileId}`)
          .executeTakeFirst()
      : undefined;
  if (!p) throw invalid('Unknown profile', [{ path: 'profileId', message: 'not a profile of this org' }]);
  return p.id;
}

/** Admin invites a user; the invite link (token) is returned once and only its hash is kept. */
export async function inviteUser(
  deps: Deps,
  actor: Actor,
  input: { email: string; name: string; profileId: string },
) {
  requireAdmin(actor);
  const email = checkEmail(input.email);
  const name = typeof input.name === 'string' ? input.name.trim() : '';
  if (!name || name.length > 200)
    throw invalid('name must be 1 to 200 characters', [{ path: 'name', message: 'required' }]);
  checkOneLine(name);
  const profileId = await checkProfile(deps, actor.orgId, input.profileId);
  const taken = await deps.db
    .selectFrom('users')
    .select('id')
    .where(sql`lower(email)`, '=', email)
    .executeTakeFirst();
  if (taken) throw new AppError('conflict', `A user with the email ${email} already exists`);
  const token = newToken();
  const user = await deps.db
    .insertInto('users')
    .values({
      org_id: actor.orgId,
      profile_id: profileId,
      email,
      name,
      status: 'invited',
      invite_token_hash: hashToken(token),
    })
    .returning(publicColumns)
    .executeTakeFirstOrThrow();
  return { user, inviteToken: token };
}

export async function acceptInvite(deps: Deps, input: { token: string; password: string; name?: string }) {
  const password = checkNewPassword(input.password);
  const user = await deps.db
    .selectFrom('users')
    .select(['id', 'org_id', 'status'])
    .where('invite_token_hash', '=', hashToken(String(input.token ?? '')))
    .executeTakeFirst();
  if (user?.status !== 'invited') throw new AppError('not_found', 'This invitation is not valid any more');
  const patch: Record<string, unknown> = {
    password_hash: await hashPassword(password),
    status: 'active' satisfies UserStatus,
    invite_token_hash: null,
    updated_at: deps.clock.now(),
  };
  if (typeof input.name === 'string' && input.name.trim()) {
    checkOneLine(input.name.trim());
    patch.name = input.name.trim().slice(0, 200);
  }
  await deps.db.updateTable('users').set(patch).where('id', '=', user.id).execute();
  return user.id;
}

export async function updateUser(
  deps: Deps,
  actor: Actor,
  id: string,
  input: { name?: string; profileId?: string; status?: string },
) {
  requireAdmin(actor);
  const user = await getUser(deps, actor, id);
  const patch: Record<string, unknown> = { updated_at: deps.clock.now() };
  if (input.name !== undefined) {
    const n = input.name.trim();
    if (!n || n.length > 200) throw invalid('name must be 1 to 200 characters');
    checkOneLine(n);
    patch.name = n;
  }
  if (input.profileId !== undefined) {
    if (id === actor.userId) throw new AppError('forbidden', 'You cannot change your own profile');
    patch.profile_id = await checkProfile(deps, actor.orgId, input.profileId);
  }
  if (input.status !== undefined) {
    if (input.status !== 'active' && input.status !== 'deactivated')
      throw invalid('status can be set to "active" or "deactivated"');
    if (id === actor.userId) throw new AppError('forbidden', 'You cannot deactivate yourself');
    if (input.status === 'active' && user.status === 'invited')
      throw new AppError('conflict', 'An invited user becomes active by accepting the invitation');
    patch.status = input.status;
  }
  const updated = await deps.db.transaction().execute(async (trx) => {
    const u = await trx
      .updateTable('users')
      .set(patch)
      .where('org_id', '=', actor.orgId)
      .where('id', '=', id)
      .returning(publicColumns)
      .executeTakeFirstOrThrow();
    // Deactivation revokes every session at once (API keys are checked against the status).
    if (patch.status === 'deactivated') await trx.deleteFrom('sessions').where('user_id', '=', id).execute();
    return u;
  });
  return updated;
}

export async function updateMe(
  deps: Deps,
  actor: Actor,
  input: {
    name?: string;
    timeZone?: string;
    locale?: string;
    currentPassword?: string;
    newPassword?: string;
  },
) {
  const patch: Record<string, unknown> = { updated_at: deps.clock.now() };
  if (input.name !== undefined) {
    const n = input.name.trim();
    if (!n || n.length > 200) throw invalid('name must be 1 to 200 characters');
    checkOneLine(n);
    patch.name = n;
  }
  if (input.timeZone !== undefined) patch.time_zone = checkTimeZone(input.timeZone);
  if (input.locale !== undefined) patch.locale = checkLocale(input.locale);
  if (input.newPassword !== undefined) {
    const row = await deps.db
      .selectFrom('users')
      .select('password_hash')
      .where('id', '=', actor.userId)
      .executeTakeFirstOrThrow();
    if (!(await verifyPassword(row.password_hash, input.currentPassword ?? '')))
      throw invalid('The current password is wrong', [
        { path: 'currentPassword', message: 'wrong password' },
      ]);
    patch.password_hash = await hashPassword(checkNewPassword(input.newPassword));
  }
  return deps.db
    .updateTable('users')
    .set(patch)
    .where('org_id', '=', actor.orgId)
    .where('id', '=', actor.userId)
    .returning(publicColumns)
    .executeTakeFirstOrThrow();
}
