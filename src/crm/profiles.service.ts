import { z } from 'zod';
import type { Permissions } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { AppError, invalid, notFound } from '../errors.ts';
import { type Actor, requireAdmin } from './access.ts';

const modulePermission = z
  .object({
    read: z.boolean().default(false),
    create: z.boolean().default(false),
    edit: z.boolean().default(false),
    delete: z.boolean().default(false),
    mass_email: z.boolean().default(false),
  })
  .strict();

export const permissionsSchema = z
  .object({
    manage_templates: z.boolean().optional(),
    modules: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/), modulePermission).optional(),
  })
  .strict();

function parsePermissions(raw: unknown): Permissions {
  const r = permissionsSchema.safeParse(raw ?? {});
  if (!r.success)
    throw invalid(
      'Invalid permissions',
      r.error.issues.map((i) => ({ path: `permissions.${i.path.join('.')}`, message: i.message })),
    );
  // A profile that may change records must be able to read them.
  for (const p of Object.values(r.data.modules ?? {}))
    if (p.create || p.edit || p.delete || p.mass_email) p.read = true;
  return r.data;
}

export async function listProfiles(deps: Deps, actor: Actor) {
  return deps.db
    .selectFrom('profiles')
    .selectAll()
    .where('org_id', '=', actor.orgId)
    .orderBy('name')
    .execute();
}

export async function createProfile(
  deps: Deps,
  actor: Actor,
  input: { name: string; isAdmin?: boolean; permissions?: unknown },
) {
  requireAdmin(actor);
  const name = input.name?.trim();
  if (!name || name.length > 100) throw invalid('name must be 1 to 100 characters');
  try {
    return await deps.db
      .insertInto('profiles')
      .values({
        org_id: actor.orgId,
        name,
        is_admin: input.isAdmin ?? false,
        permissions: JSON.stringify(parsePermissions(input.permissions)),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  } catch (e) {
    if ((e as { code?: string }).code === '23505')
      throw new AppError('conflict', `A profile named "${name}" exists`);
    throw e;
  }
}

export async function updateProfile(
  deps: Deps,
  actor: Actor,
  id: string,
  input: { name?: string; isAdmin?: boolean; permissions?: unknown },
) {
  requireAdmin(actor);
  const current = await deps.db
    .selectFrom('profiles')
    .selectAll()
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!current) throw notFound('Profile');
  const patch: Record<string, unknown> = { updated_at: deps.clock.now() };
  if (input.name !== undefined) {
    const n = input.name.trim();
    if (!n || n.length > 100) throw invalid('name must be 1 to 100 characters');
    patch.name = n;
  }
  if (input.isAdmin === false && current.is_admin) await ensureAnotherAdmin(deps, actor.orgId, id);
  if (input.isAdmin !== undefined) patch.is_admin = input.isAdmin;
  if (input.permissions !== undefined)
    patch.permissions = JSON.stringify(parsePermissions(input.permissions));
  return deps.db
    .updateTable('profiles')
    .set(patch)
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** An org must always keep an active administrator. */
async function ensureAnotherAdmin(deps: Deps, orgId: string, profileId: string) {
  const other = await deps.db
    .selectFrom('users')
    .innerJoin('profiles', 'profiles.id', 'users.profile_id')
    .select('users.id')
    .where('users.org_id', '=', orgId)
    .where('profiles.is_admin', '=', true)
    .where('profiles.id', '!=', profileId)
    .where('users.status', '=', 'active')
    .executeTakeFirst();
  if (!other) throw new AppError('conflict', 'The org would have no administrator left');
}

export async function deleteProfile(deps: Deps, actor: Actor, id: string) {
  requireAdmin(actor);
  const used = await deps.db
    .selectFrom('users')
    .select('id')
    .where('org_id', '=', actor.orgId)
    .where('profile_id', '=', id)
    .executeTakeFirst();
  if (used)
    throw new AppError('conflict', 'Users still have this profile; move them to another profile first');
  const r = await deps.db
    .deleteFrom('profiles')
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (r.numDeletedRows === 0n) throw notFound('Profile');
}
