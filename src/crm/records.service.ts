import { type Expression, type SqlBool, sql } from 'kysely';
import type { Deps } from '../deps.ts';
import { invalid, notFound } from '../errors.ts';
import { linkRecordsToMail } from '../mailbox/links.ts';
import { type Actor, requireModule } from './access.ts';
import { displayName, nameFields } from './catalog.ts';
import {
  type CriteriaContext,
  compileCriteria,
  fieldSortExpression,
  validateCriteria,
} from './criteria/index.ts';
import { type FieldInfo, loadModules, type ModuleMeta, systemFieldInfos } from './metadata.service.ts';
import { normaliseData, normaliseValue, UUID_RE } from './values.ts';
import { loadView } from './views.service.ts';

export interface RecordOut {
  id: string;
  displayName: string;
  ownerId: string;
  ownerName: string | null;
  createdBy: string | null;
  createdAt: Date;
  updatedAt: Date;
  data: Record<string, unknown>;
  lookups: Record<string, { id: string; displayName: string } | null>;
}

export interface RecordQuery {
  viewId?: string;
  criteria?: unknown;
  sort?: { field: string; dir: 'asc' | 'desc' };
  limit?: number;
  cursor?: string | null;
}

export interface Scope {
  mod: ModuleMeta;
  modules: Map<string, ModuleMeta>;
  ctx: CriteriaContext;
}

/** Loads what a request on one module needs: its metadata and the criteria context. */
export async function scope(
  deps: Deps,
  actor: Actor,
  moduleName: string,
  /** The org's modules when already loaded in this request. */
  loaded?: Scope['modules'],
): Promise<Scope> {
  const modules = loaded ?? (await loadModules(deps, actor.orgId));
  const mod = modules.get(moduleName);
  if (!mod) throw notFound(`Module "${moduleName}"`);
  const meta = (m: ModuleMeta) => ({
    id: m.id,
    apiName: m.apiName,
    fields: [...m.fields, ...systemFieldInfos],
  });
  const ctx: CriteriaContext = {
    orgId: actor.orgId,
    userId: actor.userId,
    timeZone: actor.timeZone,
    now: deps.clock.now(),
    module: meta(mod),
    relatedModule: (name: string) => {
      const m = modules.get(name);
      return m ? meta(m) : undefined;
    },
  };
  return { mod, modules, ctx };
}

/** The WHERE for a module's records: org, module, the view's criteria and any ad-hoc criteria. */
export async function recordFilter(
  deps: Deps,
  actor: Actor,
  s: Scope,
  q: { viewId?: string; criteria?: unknown; ids?: string[] },
): Promise<{ where: Expression<SqlBool>[]; viewSort?: { field: string; dir: 'asc' | 'desc' } }> {
  const where: Expression<SqlBool>[] = [
    sql<SqlBool>`r.org_id = ${actor.orgId}`,
    sql<SqlBool>`r.module_id = ${s.mod.id}`,
  ];
  let viewSort: { field: string; dir: 'asc' | 'desc' } | undefined;
  if (q.viewId) {
    const view = await loadView(deps, actor, q.viewId);
    if (view.module_id !== s.mod.id) throw invalid('That view belongs to another module');
    if (view.criteria) where.push(compileCriteria(validateCriteria(view.criteria, s.ctx), s.ctx));
    viewSort = view.sort ?? undefined;
  }
  if (q.criteria !== undefined && q.criteria !== null)
    where.push(compileCriteria(validateCriteria(q.criteria, s.ctx), s.ctx));
  if (q.ids) {
    const ids = q.ids.filter((id) => UUID_RE.test(id));
    if (ids.length !== q.ids.length) throw invalid('ids must be record ids');
    where.push(sql<SqlBool>`r.id = ANY(${ids}::uuid[])`);
  }
  return { where, viewSort };
}

const and = (parts: Expression<SqlBool>[]) => sql<SqlBool>`(${sql.join(parts, sql` AND `)})`;

function sortField(s: Scope, field: string): FieldInfo {
  const f = [...s.mod.fields, ...systemFieldInfos].find((x) => x.apiName === field);
  if (!f)
    throw invalid(`Cannot sort by unknown field "${field}"`, [
      { path: 'sort.field', message: 'unknown field' },
    ]);
  if (f.type === 'multi_picklist' || f.type === 'long_text') throw invalid(`Cannot sort by ${f.label}`);
  return f;
}

const sortType = (f: FieldInfo) =>
  f.type === 'number' || f.type === 'currency'
    ? 'numeric'
    : f.system && f.type === 'datetime'
      ? 'timestamptz'
      : 'text';

function encodeCursor(v: unknown, id: string) {
  return Buffer.from(JSON.stringify([v, id])).toString('base64url');
}

function decodeCursor(c: string): [string | number | null, string] {
  try {
    const [v, id] = JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
    if (
      typeof id === 'string' &&
      UUID_RE.test(id) &&
      (v === null || typeof v === 'string' || typeof v === 'number')
    )
      return [v, id];
  } catch {}
  throw invalid('Invalid cursor', [{ path: 'cursor', message: 'not a cursor returned by this list' }]);
}

/** Keyset paging (never OFFSET): rows strictly after the cursor in (sort value, id) order, nulls last. */
function afterCursor(
  expr: Expression<unknown>,
  type: string,
  dir: 'asc' | 'desc',
  cursor: string,
  notNull: boolean,
) {
  const [v, id] = decodeCursor(cursor);
  const cmp = dir === 'asc' ? sql.raw('>') : sql.raw('<');
  const typed = sql`CAST(${v === null ? null : String(v)} AS ${sql.raw(type)})`;
  if (notNull) return sql<SqlBool>`(${expr}, r.id) ${cmp} (${typed}, ${id}::uuid)`;
  if (v === null) return sql<SqlBool>`(${expr} IS NULL AND r.id ${cmp} ${id}::uuid)`;
  return sql<SqlBool>`(${expr} ${cmp} ${typed} OR (${expr} = ${typed} AND r.id ${cmp} ${id}::uuid) OR ${expr} IS NULL)`;
}

export async function queryRecords(deps: Deps, actor: Actor, moduleName: string, q: RecordQuery) {
  requireModule(actor, moduleName, 'read');
  const s = await scope(deps, actor, moduleName);
  const { where, viewSort } = await recordFilter(deps, actor, s, q);
  const sort = q.sort ?? viewSort ?? { field: 'created_at', dir: 'desc' as const };
  if (sort.dir !== 'asc' && sort.dir !== 'desc') throw invalid('sort.dir must be asc or desc');
  const f = sortField(s, sort.field);
  const expr = fieldSortExpression(f, 'r');
  const type = sortType(f);
  const notNull = f.apiName === 'created_at' || f.apiName === 'updated_at' || f.apiName === 'owner';
  const limit = Math.min(Math.max(Math.trunc(q.limit ?? 50), 1), 500);
  if (q.cursor) where.push(afterCursor(expr, type, sort.dir, q.cursor, notNull));
  const dir = sql.raw(sort.dir === 'asc' ? 'ASC' : 'DESC');
  const rows = await deps.db
    .selectFrom('records as r')
    .leftJoin('users as u', 'u.id', 'r.owner_id')
    .select([
      'r.id',
      'r.owner_id',
      'r.created_by',
      'r.data',
      'r.created_at',
      'r.updated_at',
      'u.name as owner_name',
      // Timestamps travel in the cursor as text with microseconds: a JS Date would round them to
      // milliseconds and skip rows created in the same millisecond (imports, bulk inserts).
      (type === 'timestamptz'
        ? sql<string>`to_char(${expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
        : sql<string | number | null>`${expr}`
      ).as('sort_key'),
    ])
    .where(and(where))
    // A NOT NULL key gets no NULLS clause so that its order matches records_list_idx (an index
    // declared DESC is NULLS FIRST); with one, Postgres sorts the whole match set instead.
    .orderBy(notNull ? sql`${expr} ${dir}` : sql`${expr} ${dir} NULLS LAST`)
    .orderBy(sql`r.id ${dir}`)
    .limit(limit + 1)
    .execute();
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  const records = await present(deps, actor, s, page);
  return {
    records,
    nextCursor: rows.length > limit && last ? encodeCursor(last.sort_key, last.id) : null,
  };
}

export async function countRecords(
  deps: Deps,
  actor: Actor,
  moduleName: string,
  q: { viewId?: string; criteria?: unknown },
) {
  requireModule(actor, moduleName, 'read');
  const s = await scope(deps, actor, moduleName);
  const { where } = await recordFilter(deps, actor, s, q);
  const r = await deps.db
    .selectFrom('records as r')
    .select(sql<number>`count(*)`.as('n'))
    .where(and(where))
    .executeTakeFirstOrThrow();
  return r.n;
}

type Row = {
  id: string;
  owner_id: string;
  created_by: string | null;
  data: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
  owner_name?: string | null;
};

/** Shapes rows for the API, resolving lookup ids to display names with one query per page. */
async function present(deps: Deps, actor: Actor, s: Scope, rows: Row[]): Promise<RecordOut[]> {
  const lookupFields = s.mod.fields.filter((f) => f.type === 'lookup');
  const ids = new Set<string>();
  for (const r of rows)
    for (const f of lookupFields)
      if (typeof r.data[f.apiName] === 'string') ids.add(r.data[f.apiName] as string);
  const names = new Map<string, string>();
  if (ids.size > 0) {
    const moduleById = new Map([...s.modules.values()].map((m) => [m.id, m.apiName]));
    const found = await deps.db
      .selectFrom('records')
      .select(['id', 'module_id', 'data'])
      .where('org_id', '=', actor.orgId)
      .where('id', 'in', [...ids])
      .execute();
    for (const f of found) names.set(f.id, displayName(moduleById.get(f.module_id) ?? '', f.data));
  }
  return rows.map((r) => ({
    id: r.id,
    displayName: displayName(s.mod.apiName, r.data),
    ownerId: r.owner_id,
    ownerName: r.owner_name ?? null,
    createdBy: r.created_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    data: r.data,
    lookups: Object.fromEntries(
      lookupFields
        .filter((f) => typeof r.data[f.apiName] === 'string')
        .map((f) => {
          const id = r.data[f.apiName] as string;
          return [f.apiName, names.has(id) ? { id, displayName: names.get(id)! } : null];
        }),
    ),
  }));
}

/** Lookups must point at a record of the target module, and user fields at a user, of this org. */
async function checkReferences(
  deps: Deps,
  actor: Actor,
  s: Scope,
  data: Record<string, unknown>,
  changed: string[],
) {
  const errors: { path: string; message: string }[] = [];
  for (const f of s.mod.fields) {
    if (!changed.includes(f.apiName) || typeof data[f.apiName] !== 'string') continue;
    const id = data[f.apiName] as string;
    if (f.type === 'lookup') {
      const target = s.modules.get(f.options.module ?? '');
      const hit = target
        ? await deps.db
            .selectFrom('records')
            .select('id')
            .where('org_id', '=', actor.orgId)
            .where('module_id', '=', target.id)
            .where('id', '=', id)
            .executeTakeFirst()
        : undefined;
      if (!hit)
        errors.push({ path: f.apiName, message: `${f.label}: no such ${target?.singularLabel ?? 'record'}` });
    } else if (f.type === 'user') {
      if (!(await isOrgUser(deps, actor.orgId, id)))
        errors.push({ path: f.apiName, message: `${f.label}: no such user` });
    }
  }
  if (errors.length) throw invalid('Some values refer to records that do not exist', errors);
}

async function isOrgUser(deps: Deps, orgId: string, id: string) {
  if (!UUID_RE.test(id)) return false;
  return !!(await deps.db
    .selectFrom('users')
    .select('id')
    .where('org_id', '=', orgId)
    .where('id', '=', id)
    .executeTakeFirst());
}

async function checkOwner(deps: Deps, actor: Actor, ownerId: unknown): Promise<string> {
  if (ownerId === undefined || ownerId === null) return actor.userId;
  if (typeof ownerId !== 'string' || !(await isOrgUser(deps, actor.orgId, ownerId)))
    throw invalid('The owner must be a user of this organization', [
      { path: 'ownerId', message: 'no such user' },
    ]);
  return ownerId;
}

function dataInput(v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw invalid('data must be an object of field values');
  return v as Record<string, unknown>;
}

async function fetchRow(deps: Deps, actor: Actor, s: Scope, id: string) {
  if (!UUID_RE.test(id)) throw notFound('Record');
  const row = await deps.db
    .selectFrom('records as r')
    .leftJoin('users as u', 'u.id', 'r.owner_id')
    .select([
      'r.id',
      'r.owner_id',
      'r.created_by',
      'r.data',
      'r.created_at',
      'r.updated_at',
      'u.name as owner_name',
    ])
    .where('r.org_id', '=', actor.orgId)
    .where('r.module_id', '=', s.mod.id)
    .where('r.id', '=', id)
    .executeTakeFirst();
  if (!row) throw notFound(s.mod.singularLabel);
  return row;
}

export async function createRecord(
  deps: Deps,
  actor: Actor,
  moduleName: string,
  input: { data: unknown; ownerId?: unknown },
) {
  requireModule(actor, moduleName, 'create');
  const s = await scope(deps, actor, moduleName);
  const given = dataInput(input.data);
  const { data, errors } = normaliseData(s.mod.fields, given, { partial: false });
  if (errors.length) throw invalid(`The ${s.mod.singularLabel.toLowerCase()} has invalid values`, errors);
  await checkReferences(deps, actor, s, data, Object.keys(data));
  const ownerId = await checkOwner(deps, actor, input.ownerId);
  const row = await deps.db
    .insertInto('records')
    .values({
      org_id: actor.orgId,
      module_id: s.mod.id,
      owner_id: ownerId,
      created_by: actor.userId,
      data: JSON.stringify(data),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  await linkRecordsToMail(deps, actor.orgId, s.mod.apiName, [row.id]);
  return (await present(deps, actor, s, [await fetchRow(deps, actor, s, row.id)]))[0];
}

export async function updateRecord(
  deps: Deps,
  actor: Actor,
  moduleName: string,
  id: string,
  input: { data?: unknown; ownerId?: unknown },
) {
  requireModule(actor, moduleName, 'edit');
  const s = await scope(deps, actor, moduleName);
  const given = input.data === undefined ? {} : dataInput(input.data);
  return deps.db.transaction().execute(async (trx) => {
    const tdeps = { ...deps, db: trx };
    // Lock the row so that concurrent edits of different fields do not overwrite each other.
    const current = await trx
      .selectFrom('records')
      .select(['data', 'owner_id'])
      .where('org_id', '=', actor.orgId)
      .where('module_id', '=', s.mod.id)
      .where('id', '=', UUID_RE.test(id) ? id : '00000000-0000-0000-0000-000000000000')
      .forUpdate()
      .executeTakeFirst();
    if (!current) throw notFound(s.mod.singularLabel);
    const { data, errors } = normaliseData(s.mod.fields, given, { partial: true, existing: current.data });
    if (errors.length) throw invalid(`The ${s.mod.singularLabel.toLowerCase()} has invalid values`, errors);
    await checkReferences(tdeps, actor, s, data, Object.keys(given));
    const ownerId =
      input.ownerId === undefined ? current.owner_id : await checkOwner(tdeps, actor, input.ownerId);
    await trx
      .updateTable('records')
      .set({ data: JSON.stringify(data), owner_id: ownerId, updated_at: deps.clock.now() })
      .where('org_id', '=', actor.orgId)
      .where('id', '=', id)
      .execute();
    // A new address brings the mail already stored for it.
    if (s.mod.fields.some((f) => f.type === 'email' && f.apiName in given))
      await linkRecordsToMail(tdeps, actor.orgId, s.mod.apiName, [id]);
    return (await present(tdeps, actor, s, [await fetchRow(tdeps, actor, s, id)]))[0];
  });
}

export async function deleteRecord(deps: Deps, actor: Actor, moduleName: string, id: string) {
  requireModule(actor, moduleName, 'delete');
  const s = await scope(deps, actor, moduleName);
  if (!UUID_RE.test(id)) throw notFound(s.mod.singularLabel);
  const r = await deps.db
    .deleteFrom('records')
    .where('org_id', '=', actor.orgId)
    .where('module_id', '=', s.mod.id)
    .where('id', '=', id)
    .executeTakeFirst();
  if (r.numDeletedRows === 0n) throw notFound(s.mod.singularLabel);
}

export async function getRecord(deps: Deps, actor: Actor, moduleName: string, id: string) {
  requireModule(actor, moduleName, 'read');
  const s = await scope(deps, actor, moduleName);
  const [record] = await present(deps, actor, s, [await fetchRow(deps, actor, s, id)]);
  // Related lists: records of readable modules whose lookups point at this one.
  const related: {
    module: string;
    moduleLabel: string;
    field: string;
    fieldLabel: string;
    records: RecordOut[];
  }[] = [];
  for (const m of s.modules.values()) {
    if (!(actor.isAdmin || actor.permissions.modules?.[m.apiName]?.read)) continue;
    for (const f of m.fields) {
      if (f.type !== 'lookup' || f.options.module !== moduleName) continue;
      const rows = await deps.db
        .selectFrom('records as r')
        .leftJoin('users as u', 'u.id', 'r.owner_id')
        .select([
          'r.id',
          'r.owner_id',
          'r.created_by',
          'r.data',
          'r.created_at',
          'r.updated_at',
          'u.name as owner_name',
        ])
        .where('r.org_id', '=', actor.orgId)
        .where('r.module_id', '=', m.id)
        .where(sql<SqlBool>`r.data @> ${JSON.stringify({ [f.apiName]: id })}::jsonb`)
        .orderBy('r.created_at', 'desc')
        .limit(50)
        .execute();
      const rs = await scope(deps, actor, m.apiName, s.modules);
      related.push({
        module: m.apiName,
        moduleLabel: m.pluralLabel,
        field: f.apiName,
        fieldLabel: f.label,
        records: await present(deps, actor, rs, rows),
      });
    }
  }
  return { record, related };
}

export async function searchRecords(deps: Deps, actor: Actor, moduleName: string, q: string, limit = 20) {
  requireModule(actor, moduleName, 'read');
  const s = await scope(deps, actor, moduleName);
  const term = String(q ?? '')
    .trim()
    .slice(0, 100);
  const like = `%${term.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  const names = nameFields(moduleName).filter((n) => s.mod.fields.some((f) => f.apiName === n));
  const nameExpr = sql`concat_ws(' ', ${sql.join(names.map((n) => sql`r.data ->> ${n}`))})`;
  const rows = await deps.db
    .selectFrom('records as r')
    .select(['r.id', 'r.data'])
    .where('r.org_id', '=', actor.orgId)
    .where('r.module_id', '=', s.mod.id)
    .where(term ? sql<SqlBool>`${nameExpr} ILIKE ${like}` : sql<SqlBool>`true`)
    .orderBy('r.created_at', 'desc')
    .limit(Math.min(Math.max(limit, 1), 50))
    .execute();
  return rows.map((r) => ({ id: r.id, displayName: displayName(moduleName, r.data) }));
}

/** Sets one field on every record matched by a view, criteria or list of ids (F1.4). */
export async function massUpdate(
  deps: Deps,
  actor: Actor,
  moduleName: string,
  input: { viewId?: string; criteria?: unknown; ids?: string[]; field: string; value: unknown },
) {
  requireModule(actor, moduleName, 'edit');
  const s = await scope(deps, actor, moduleName);
  if (!input.viewId && input.criteria == null && !input.ids)
    throw invalid('Choose the records: a view, criteria or ids');
  const { where } = await recordFilter(deps, actor, s, input);
  const now = deps.clock.now();
  let set: Record<string, unknown>;
  if (input.field === 'owner') {
    set = { owner_id: await checkOwner(deps, actor, input.value), updated_at: now };
  } else {
    const f = s.mod.fields.find((x) => x.apiName === input.field);
    if (!f) throw invalid(`Unknown field "${input.field}"`, [{ path: 'field', message: 'unknown field' }]);
    const r = normaliseValue(f, input.value);
    if (!r.ok) throw invalid(`${f.label} ${r.message}`, [{ path: 'value', message: r.message }]);
    if (r.value === undefined && f.required) throw invalid(`${f.label} is required`);
    if (r.value !== undefined) await checkReferences(deps, actor, s, { [f.apiName]: r.value }, [f.apiName]);
    set = {
      data:
        r.value === undefined
          ? sql`r.data - ${f.apiName}`
          : sql`r.data || jsonb_build_object(${f.apiName}::text, ${JSON.stringify(r.value)}::jsonb)`,
      updated_at: now,
    };
  }
  const res = await deps.db.updateTable('records as r').set(set).where(and(where)).executeTakeFirst();
  return Number(res.numUpdatedRows);
}
