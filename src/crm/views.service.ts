import { sql } from 'kysely';
import type { Deps } from '../deps.ts';
import { AppError, invalid, notFound } from '../errors.ts';
import { type Actor, requireModule } from './access.ts';
import { validateCriteria } from './criteria/index.ts';
import { systemFieldInfos } from './metadata.service.ts';
import { scope } from './records.service.ts';
import { UUID_RE } from './values.ts';

export interface ViewInput {
  name?: string;
  criteria?: unknown;
  columns?: string[];
  sort?: { field: string; dir: 'asc' | 'desc' } | null;
  shared?: boolean;
}

/** A view the actor may use: system views, shared views and their own. */
export async function loadView(deps: Deps, actor: Actor, id: string) {
  const v = UUID_RE.test(id)
    ? await deps.db
        .selectFrom('views')
        .selectAll()
        .where('org_id', '=', actor.orgId)
        .where('id', '=', id)
        .where((eb) => eb.or([eb('shared', '=', true), eb('owner_id', '=', actor.userId)]))
        .executeTakeFirst()
    : undefined;
  if (!v) throw notFound('View');
  return v;
}

export async function listViews(deps: Deps, actor: Actor, moduleName: string) {
  requireModule(actor, moduleName, 'read');
  const s = await scope(deps, actor, moduleName);
  return deps.db
    .selectFrom('views')
    .selectAll()
    .where('org_id', '=', actor.orgId)
    .where('module_id', '=', s.mod.id)
    .where((eb) => eb.or([eb('shared', '=', true), eb('owner_id', '=', actor.userId)]))
    .orderBy(sql`system_key IS NULL`)
    .orderBy('name')
    .execute();
}

async function checkInput(deps: Deps, actor: Actor, moduleName: string, input: ViewInput, creating: boolean) {
  const s = await scope(deps, actor, moduleName);
  const out: Record<string, unknown> = {};
  if (creating || input.name !== undefined) {
    const name = typeof input.name === 'string' ? input.name.trim() : '';
    if (!name || name.length > 100)
      throw invalid('The view name must be 1 to 100 characters', [{ path: 'name', message: 'required' }]);
    out.name = name;
  }
  if (input.criteria !== undefined) {
    if (input.criteria !== null) validateCriteria(input.criteria, s.ctx); // refuse what could never run
    out.criteria = input.criteria === null ? null : JSON.stringify(input.criteria);
  }
  const known = new Set([...s.mod.fields, ...systemFieldInfos].map((f) => f.apiName));
  if (input.columns !== undefined) {
    if (!Array.isArray(input.columns) || input.columns.length > 50)
      throw invalid('columns must be a list of at most 50 fields');
    const unknown = input.columns.filter((c) => typeof c !== 'string' || !known.has(c));
    if (unknown.length)
      throw invalid(`Unknown columns: ${unknown.join(', ')}`, [
        { path: 'columns', message: 'unknown field' },
      ]);
    out.columns = JSON.stringify(input.columns);
  }
  if (input.sort !== undefined) {
    if (input.sort !== null && (!known.has(input.sort.field) || !['asc', 'desc'].includes(input.sort.dir)))
      throw invalid('sort must name a field and a direction (asc or desc)', [
        { path: 'sort', message: 'invalid' },
      ]);
    out.sort = input.sort === null ? null : JSON.stringify({ field: input.sort.field, dir: input.sort.dir });
  }
  if (input.shared !== undefined) out.shared = input.shared === true;
  return { s, out };
}

export async function createView(deps: Deps, actor: Actor, moduleName: string, input: ViewInput) {
  requireModule(actor, moduleName, 'read');
  const { s, out } = await checkInput(deps, actor, moduleName, input, true);
  return deps.db
    .insertInto('views')
    .values({
      org_id: actor.orgId,
      module_id: s.mod.id,
      owner_id: actor.userId,
      name: out.name as string,
      criteria: (out.criteria as string | undefined) ?? null,
      columns: (out.columns as string | undefined) ?? '[]',
      sort: (out.sort as string | undefined) ?? null,
      shared: (out.shared as boolean | undefined) ?? false,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Only the owner (or an admin, for shared views) changes a view; system views are fixed. */
async function editableView(deps: Deps, actor: Actor, id: string) {
  const v = await loadView(deps, actor, id);
  if (v.system_key) throw new AppError('forbidden', 'System views cannot be changed');
  if (v.owner_id !== actor.userId && !actor.isAdmin)
    throw new AppError('forbidden', 'Only the owner can change this view');
  const mod = await deps.db
    .selectFrom('modules')
    .select('api_name')
    .where('id', '=', v.module_id)
    .executeTakeFirstOrThrow();
  return { v, moduleName: mod.api_name };
}

export async function updateView(deps: Deps, actor: Actor, id: string, input: ViewInput) {
  const { moduleName } = await editableView(deps, actor, id);
  const { out } = await checkInput(deps, actor, moduleName, input, false);
  return deps.db
    .updateTable('views')
    .set({ ...out, updated_at: deps.clock.now() })
    .where('org_id', '=', actor.orgId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function deleteView(deps: Deps, actor: Actor, id: string) {
  await editableView(deps, actor, id);
  await deps.db.deleteFrom('views').where('org_id', '=', actor.orgId).where('id', '=', id).execute();
}
