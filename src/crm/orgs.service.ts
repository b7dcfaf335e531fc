import type { Edition, Permissions } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { invalid } from '../errors.ts';
import { type Actor, fullAccess, requireAdmin } from './access.ts';
import { builtinModules } from './catalog.ts';
import { createSystemViews, insertFields } from './metadata.service.ts';
import { checkNewPassword, hashPassword } from './passwords.ts';
import { checkEmail, checkTimeZone } from './users.service.ts';

export const EDITIONS: Edition[] = ['free', 'standard', 'professional', 'enterprise', 'ultimate'];

export interface NewOrg {
  name: string;
  edition?: Edition;
  timeZone?: string;
  currency?: string;
  adminEmail: string;
  adminName: string;
  adminPassword: string;
}

export function standardPermissions(): Permissions {
  const modules: Permissions['modules'] = {};
  for (const m of builtinModules) modules[m.apiName] = { ...fullAccess };
  return { manage_templates: true, modules };
}

/** Creates an org with its built-in modules, fields, system views, profiles and first admin. */
export async function createOrg(deps: Deps, input: NewOrg) {
  const name = input.name?.trim();
  if (!name || name.length > 200) throw invalid('The organization name must be 1 to 200 characters');
  const email = checkEmail(input.adminEmail);
  const password = checkNewPassword(input.adminPassword);
  const timeZone = checkTimeZone(input.timeZone ?? 'UTC');
  const passwordHash = await hashPassword(password);
  return deps.db.transaction().execute(async (trx) => {
    const tdeps = { ...deps, db: trx };
    const org = await trx
      .insertInto('orgs')
      .values({
        name,
        edition: input.edition ?? 'professional',
        time_zone: timeZone,
        currency: input.currency ?? 'USD',
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const [admin, standard] = await trx
      .insertInto('profiles')
      .values([
        {
          org_id: org.id,
          name: 'Administrator',
          is_admin: true,
          permissions: JSON.stringify(standardPermissions()),
        },
        {
          org_id: org.id,
          name: 'Standard',
          is_admin: false,
          permissions: JSON.stringify(standardPermissions()),
        },
      ])
      .returning(['id', 'name'])
      .execute();
    const user = await trx
      .insertInto('users')
      .values({
        org_id: org.id,
        profile_id: admin.id,
        email,
        name: input.adminName?.trim() || 'Administrator',
        password_hash: passwordHash,
        status: 'active',
        time_zone: timeZone,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    for (const m of builtinModules) {
      const mod = await trx
        .insertInto('modules')
        .values({ org_id: org.id, api_name: m.apiName, singular_label: m.singular, plural_label: m.plural })
        .returning('id')
        .executeTakeFirstOrThrow();
      await insertFields(tdeps, org.id, mod.id, m.fields, false);
      await createSystemViews(tdeps, org.id, mod.id, m.plural);
    }
    return { org, admin: user, profiles: { adminId: admin.id, standardId: standard.id } };
  });
}

export async function getOrg(deps: Deps, actor: Actor) {
  return deps.db.selectFrom('orgs').selectAll().where('id', '=', actor.orgId).executeTakeFirstOrThrow();
}

export async function updateOrg(
  deps: Deps,
  actor: Actor,
  input: { name?: string; timeZone?: string; currency?: string; edition?: Edition },
) {
  requireAdmin(actor);
  const patch: Record<string, unknown> = { updated_at: deps.clock.now() };
  if (input.name !== undefined) {
    const n = input.name.trim();
    if (!n || n.length > 200) throw invalid('The organization name must be 1 to 200 characters');
    patch.name = n;
  }
  if (input.timeZone !== undefined) patch.time_zone = checkTimeZone(input.timeZone);
  if (input.currency !== undefined) {
    if (!/^[A-Z]{3}$/.test(input.currency)) throw invalid('currency must be an ISO 4217 code such as USD');
    patch.currency = input.currency;
  }
  if (input.edition !== undefined) {
    if (!EDITIONS.includes(input.edition)) throw invalid(`edition must be one of ${EDITIONS.join(', ')}`);
    patch.edition = input.edition;
  }
  return deps.db
    .updateTable('orgs')
    .set(patch)
    .where('id', '=', actor.orgId)
    .returningAll()
    .executeTakeFirstOrThrow();
}
