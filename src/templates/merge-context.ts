// The merge context of a record: built by walking the module's merge schema, so every field the
// save-time check accepted is present (null when empty: `| default:` then applies), and nothing
// else is: plain data only, no ids of other orgs, no user secrets, no functions.
import { displayName, loadModules, type ModuleMeta } from '../crm/index.ts';
import type { FieldType } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { notFound } from '../errors.ts';
import type { MergeContext } from './engine.ts';
import { type MergeNode, type MergeSchema, mergeSchema } from './merge-schema.ts';

type Obj = Extract<MergeNode, { kind: 'object' }>;
type Data = Record<string, unknown>;
interface UserRow {
  id: string;
  name: string;
  email: string;
}
interface RecordRow {
  id: string;
  module_id: string;
  owner_id: string;
  data: Data;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A stored value as Liquid should see it: strings, numbers, booleans, arrays of strings, or null. */
function convert(
  v: unknown,
  type: FieldType,
  nameOf: (id: string, type: FieldType) => string | null,
): unknown {
  if (v === undefined || v === null || v === '') return null;
  switch (type) {
    case 'number':
    case 'currency': {
      const n = typeof v === 'number' ? v : Number(v);
      return Number.isFinite(n) ? n : null;
    }
    case 'boolean':
      return typeof v === 'boolean' ? v : null;
    case 'multi_picklist':
      return Array.isArray(v) && v.length ? v.map(String) : null;
    case 'lookup':
    case 'user':
      return typeof v === 'string' ? nameOf(v, type) : null;
    default:
      return typeof v === 'object' ? null : String(v);
  }
}

function personOf(u: UserRow | undefined): Data {
  if (!u) return { name: null, first_name: null, last_name: null, email: null };
  const [first, ...rest] = u.name.trim().split(/\s+/);
  return {
    name: u.name || null,
    first_name: first || null,
    last_name: rest.join(' ') || null,
    email: u.email,
  };
}

interface Loaded {
  modules: Map<string, ModuleMeta>;
  related: Map<string, RecordRow>;
  users: Map<string, UserRow>;
  org: { name: string };
  sender: UserRow | undefined;
  canRead: (module: string) => boolean;
}

function recordObject(node: Obj, module: string, row: RecordRow, l: Loaded): Data {
  const out: Data = {};
  // A lookup shows the related record's name (if the reader may see its module), a user field the
  // user's name.
  const nameOf = (id: string, type: FieldType) => {
    if (type === 'user') return l.users.get(id)?.name ?? null;
    const rel = l.related.get(id);
    const relModule = rel ? moduleOfId(l, rel.module_id) : '';
    return rel && l.canRead(relModule) ? displayName(relModule, rel.data) || null : null;
  };
  for (const [key, child] of node.fields) {
    if (child.kind === 'value') {
      out[key] =
        child.computed === 'display_name'
          ? displayName(module, row.data) || null
          : convert(row.data[key], child.type, nameOf);
      continue;
    }
    if (child.source.from !== 'related') continue;
    const id = row.data[child.source.field];
    const rel = typeof id === 'string' ? l.related.get(id) : undefined;
    const target = l.modules.get(child.source.module);
    const visible = rel && target && rel.module_id === target.id && l.canRead(target.apiName);
    out[key] = visible ? recordObject(child, target.apiName, rel, l) : null;
  }
  return out;
}

function moduleOfId(l: Loaded, moduleId: string): string {
  for (const m of l.modules.values()) if (m.id === moduleId) return m.apiName;
  return '';
}

function contextOf(schema: MergeSchema, row: RecordRow, l: Loaded): MergeContext {
  const ctx: MergeContext = {};
  for (const [key, node] of schema.roots) {
    const s = node.source;
    ctx[key] =
      s.from === 'record'
        ? recordObject(node, s.module, row, l)
        : s.from === 'user'
          ? personOf(s.which === 'owner' ? l.users.get(row.owner_id) : l.sender)
          : s.from === 'org'
            ? { name: l.org.name }
            : null;
  }
  return ctx;
}

export interface MergeTarget {
  moduleApiName: string;
  /** The user sending (sender.*); null for a system message (sender fields are then empty). */
  senderUserId: string | null;
  /** Related records of modules this returns false for are null (as if empty). Default: all. */
  canRead?: (module: string) => boolean;
}

/**
 * The merge contexts of many records of one module, in a fixed number of queries (modules, records,
 * their related records, users, org), all scoped to orgId. Records not found are absent from the map.
 */
export async function buildMergeContexts(
  deps: Deps,
  orgId: string,
  target: MergeTarget & { recordIds: readonly string[] },
): Promise<Map<string, MergeContext>> {
  const modules = await loadModules(deps, orgId);
  const mod = modules.get(target.moduleApiName);
  if (!mod) throw notFound(`Module "${target.moduleApiName}"`);
  // The full schema, whatever the reader may see: a template saved by someone who could read more
  // must still render (unreadable related records become null, as if empty; see recordObject).
  const schema = mergeSchema(modules, mod.apiName);
  const ids = [...new Set(target.recordIds)].filter((id) => UUID.test(id));
  const out = new Map<string, MergeContext>();
  if (ids.length === 0) return out;
  const records = (await deps.db
    .selectFrom('records')
    .select(['id', 'module_id', 'owner_id', 'data'])
    .where('org_id', '=', orgId)
    .where('module_id', '=', mod.id)
    .where('id', 'in', ids)
    .execute()) as RecordRow[];
  const root = schema.roots.get(schema.recordKey)!;
  const lookupFields = [...root.fields.values()].flatMap((n) =>
    n.kind === 'object' && n.source.from === 'related' ? [n.source.field] : [],
  );
  // Lookup values (names and related records) and user-field values (names), one query each.
  const refIds = new Set<string>();
  const userIds = new Set<string>(target.senderUserId ? [target.senderUserId] : []);
  const userFields = (m: ModuleMeta) => m.fields.filter((f) => f.type === 'user').map((f) => f.apiName);
  const lookups = mod.fields.filter((f) => f.type === 'lookup').map((f) => f.apiName);
  for (const r of records) {
    userIds.add(r.owner_id);
    for (const f of new Set([...lookups, ...lookupFields]))
      if (typeof r.data[f] === 'string' && UUID.test(r.data[f] as string)) refIds.add(r.data[f] as string);
    for (const f of userFields(mod)) if (typeof r.data[f] === 'string') userIds.add(r.data[f] as string);
  }
  const related = refIds.size
    ? ((await deps.db
        .selectFrom('records')
        .select(['id', 'module_id', 'owner_id', 'data'])
        .where('org_id', '=', orgId)
        .where('id', 'in', [...refIds])
        .execute()) as RecordRow[])
    : [];
  for (const r of related)
    for (const m of modules.values())
      if (m.id === r.module_id)
        for (const f of userFields(m)) if (typeof r.data[f] === 'string') userIds.add(r.data[f] as string);
  const validUserIds = [...userIds].filter((id) => UUID.test(id));
  const [users, org] = await Promise.all([
    validUserIds.length
      ? deps.db
          .selectFrom('users')
          .select(['id', 'name', 'email'])
          .where('org_id', '=', orgId)
          .where('id', 'in', validUserIds)
          .execute()
      : [],
    deps.db.selectFrom('orgs').select('name').where('id', '=', orgId).executeTakeFirstOrThrow(),
  ]);
  const userMap = new Map(users.map((u) => [u.id, u]));
  const loaded: Loaded = {
    modules,
    related: new Map(related.map((r) => [r.id, r])),
    users: userMap,
    org,
    sender: target.senderUserId ? userMap.get(target.senderUserId) : undefined,
    canRead: target.canRead ?? (() => true),
  };
  for (const r of records) out.set(r.id, contextOf(schema, r, loaded));
  return out;
}

/** The merge context of one record (not_found when it is not a record of that module in orgId). */
export async function buildMergeContext(
  deps: Deps,
  orgId: string,
  target: MergeTarget & { recordId: string },
): Promise<MergeContext> {
  const ctx = (await buildMergeContexts(deps, orgId, { ...target, recordIds: [target.recordId] })).get(
    target.recordId,
  );
  if (!ctx) throw notFound('Record');
  return ctx;
}

function sampleValue(label: string, type: FieldType): unknown {
  switch (type) {
    case 'number':
      return 42;
    case 'currency':
      return 1234.5;
    case 'boolean':
      return true;
    case 'date':
      return '2025-01-31';
    case 'datetime':
      return '2025-01-31T09:30:00.000Z';
    case 'email':
      return 'name@example.com';
    case 'multi_picklist':
      return [`[${label}]`];
    default:
      return `[${label}]`;
  }
}

/**
 * A context with every merge field of the schema: 'sample' fills them with placeholders like
 * "[First Name]" (previews without a record, trial renders); 'empty' leaves every value null and
 * every related record absent, as for a record with nothing filled in.
 */
export function sampleContext(schema: MergeSchema, mode: 'sample' | 'empty'): MergeContext {
  const fill = (node: Obj): Data => {
    const out: Data = {};
    for (const [key, child] of node.fields) {
      if (mode === 'empty') out[key] = null;
      else out[key] = child.kind === 'value' ? sampleValue(child.label, child.type) : fill(child);
    }
    return out;
  };
  const ctx: MergeContext = {};
  for (const [key, node] of schema.roots) ctx[key] = fill(node);
  return ctx;
}
