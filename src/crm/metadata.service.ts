import { sql } from 'kysely';
import type { FieldOptions, FieldType } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { AppError, invalid, notFound } from '../errors.ts';
import { type Actor, requireAdmin } from './access.ts';
import { type FieldDef, systemFields } from './catalog.ts';
import type { FieldMeta } from './values.ts';

export interface FieldInfo extends FieldMeta {
  id: string | null; // null for system fields
  isCustom: boolean;
  position: number;
  system: boolean;
}

export interface ModuleMeta {
  id: string;
  apiName: string;
  singularLabel: string;
  pluralLabel: string;
  isCustom: boolean;
  /** Fields stored in records.data (custom and built-in), in display order. */
  fields: FieldInfo[];
}

export const FIELD_TYPES: FieldType[] = [
  'text',
  'long_text',
  'email',
  'phone',
  'number',
  'currency',
  'date',
  'datetime',
  'picklist',
  'multi_picklist',
  'boolean',
  'lookup',
  'user',
];

export const systemFieldInfos: FieldInfo[] = systemFields.map((f, i) => ({
  id: null,
  apiName: f.apiName,
  label: f.label,
  type: f.type,
  required: false,
  options: {},
  isCustom: false,
  position: 10_000 + i,
  system: true,
}));

export async function listModules(deps: Deps, orgId: string) {
  return deps.db
    .selectFrom('modules')
    .select(['id', 'api_name', 'singular_label', 'plural_label', 'is_custom'])
    .where('org_id', '=', orgId)
    .orderBy('is_custom')
    .orderBy('created_at')
    .orderBy('api_name')
    .execute();
}

export async function loadModules(deps: Deps, orgId: string): Promise<Map<string, ModuleMeta>> {
  const [mods, fields] = await Promise.all([
    listModules(deps, orgId),
    deps.db
      .selectFrom('fields')
      // what ModuleMeta holds, no more: read on every record request
      .select([
        'id',
        'module_id',
        'api_name',
        'label',
        'type',
        'required',
        'options',
        'is_custom',
        'position',
      ])
      .where('org_id', '=', orgId)
      .orderBy('position')
      .orderBy('created_at')
      .execute(),
  ]);
  const byId = new Map<string, ModuleMeta>();
  for (const m of mods)
    byId.set(m.id, {
      id: m.id,
      apiName: m.api_name,
      singularLabel: m.singular_label,
      pluralLabel: m.plural_label,
      isCustom: m.is_custom,
      fields: [],
    });
  for (const f of fields)
    byId.get(f.module_id)?.fields.push({
      id: f.id,
      apiName: f.api_name,
      label: f.label,
      type: f.type,
      required: f.required,
      options: f.options,
      isCustom: f.is_custom,
      position: f.position,
      system: false,
    });
  return new Map([...byId.values()].map((m) => [m.apiName, m]));
}

export async function loadModule(deps: Deps, orgId: string, apiName: string): Promise<ModuleMeta> {
  const all = await loadModules(deps, orgId);
  const m = all.get(apiName);
  if (!m) throw notFound(`Module "${apiName}"`);
  return m;
}

/** Turns a label into an api_name: lowercase ASCII words joined by underscores. */
export function slugify(label: string, max = 50): string {
  const s = label
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, max);
  return /^[a-z]/.test(s) ? s : `x_${s}`.slice(0, max);
}

function uniqueName(base: string, taken: Set<string>): string {
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) if (!taken.has(`${base}_${i}`)) return `${base}_${i}`;
}

const label = (v: unknown, what: string) => {
  if (typeof v !== 'string' || v.trim().length === 0 || v.trim().length > 100)
    throw invalid(`${what} must be 1 to 100 characters`, [
      { path: what, message: 'required, at most 100 characters' },
    ]);
  return v.trim();
};

function checkOptions(
  type: FieldType,
  options: FieldOptions,
  modules: Map<string, ModuleMeta>,
): FieldOptions {
  if (type === 'picklist' || type === 'multi_picklist') {
    const values = (options.values ?? []).map((v) => String(v).trim()).filter(Boolean);
    const unique = new Set(values.map((v) => v.toLowerCase()));
    if (values.length === 0)
      throw invalid('A picklist needs at least one value', [{ path: 'options.values', message: 'required' }]);
    if (values.length > 500) throw invalid('A picklist has at most 500 values');
    if (unique.size !== values.length)
      throw invalid('Picklist values must be unique', [
        { path: 'options.values', message: 'duplicate value' },
      ]);
    if (values.some((v) => v.length > 100 || /[;\r\n]/.test(v)))
      throw invalid('Picklist values are at most 100 characters, without ";" or line breaks');
    return { values };
  }
  if (type === 'lookup') {
    if (!options.module || !modules.has(options.module))
      throw invalid('A lookup field needs the module it points to', [
        { path: 'options.module', message: 'unknown module' },
      ]);
    return { module: options.module };
  }
  if (type === 'number' || type === 'currency') {
    const d = options.decimals;
    if (d !== undefined && (!Number.isInteger(d) || d < 0 || d > 6)) throw invalid('decimals must be 0 to 6');
    return d === undefined ? {} : { decimals: d };
  }
  if (type === 'text') {
    const m = options.max_length;
    if (m !== undefined && (!Number.isInteger(m) || m < 1 || m > 255))
      throw invalid('max_length must be 1 to 255');
    return m === undefined ? {} : { max_length: m };
  }
  return {};
}

export async function insertFields(
  deps: Deps,
  orgId: string,
  moduleId: string,
  defs: FieldDef[],
  custom: boolean,
  firstPosition = 0,
) {
  if (defs.length === 0) return;
  await deps.db
    .insertInto('fields')
    .values(
      defs.map((f, i) => ({
        org_id: orgId,
        module_id: moduleId,
        api_name: f.apiName,
        label: f.label,
        type: f.type,
        required: f.required ?? false,
        options: JSON.stringify(f.options ?? {}),
        is_custom: custom,
        position: firstPosition + i,
      })),
    )
    .execute();
}

export async function createModule(
  deps: Deps,
  actor: Actor,
  input: { singularLabel: string; pluralLabel: string },
): Promise<ModuleMeta> {
  requireAdmin(actor);
  const singular = label(input.singularLabel, 'singularLabel');
  const plural = label(input.pluralLabel, 'pluralLabel');
  const modules = await loadModules(deps, actor.orgId);
  if (modules.size >= 200) throw new AppError('limit_exceeded', 'An org has at most 200 modules');
  const apiName = uniqueName(slugify(plural), new Set(modules.keys()));
  const row = await deps.db
    .insertInto('modules')
    .values({
      org_id: actor.orgId,
      api_name: apiName,
      singular_label: singular,
      plural_label: plural,
      is_custom: true,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  await insertFields(
    deps,
    actor.orgId,
    row.id,
    [{ apiName: 'name', label: `${singular} Name`, type: 'text', required: true }],
    false,
  );
  await createSystemViews(deps, actor.orgId, row.id, plural);
  return loadModule(deps, actor.orgId, apiName);
}

export async function createSystemViews(deps: Deps, orgId: string, moduleId: string, plural: string) {
  await deps.db
    .insertInto('views')
    .values([
      {
        org_id: orgId,
        module_id: moduleId,
        name: `All ${plural}`,
        system_key: 'all',
        shared: true,
        columns: '[]',
      },
      {
        org_id: orgId,
        module_id: moduleId,
        name: `My ${plural}`,
        system_key: 'mine',
        shared: true,
        columns: '[]',
        criteria: JSON.stringify({ conditions: [{ field: 'owner', op: 'is', value: ['me'] }] }),
      },
      {
        org_id: orgId,
        module_id: moduleId,
        name: `Recently Created ${plural}`,
        system_key: 'recent',
        shared: true,
        columns: '[]',
        criteria: JSON.stringify({ conditions: [{ field: 'created_at', op: 'in_last_n_days', value: 7 }] }),
      },
    ])
    .execute();
}

export async function addField(
  deps: Deps,
  actor: Actor,
  moduleName: string,
  input: { label: string; type: string; required?: boolean; options?: FieldOptions },
): Promise<FieldInfo> {
  requireAdmin(actor);
  const modules = await loadModules(deps, actor.orgId);
  const mod = modules.get(moduleName);
  if (!mod) throw notFound(`Module "${moduleName}"`);
  const fieldLabel = label(input.label, 'label');
  if (!FIELD_TYPES.includes(input.type as FieldType))
    throw invalid(`Unknown field type "${input.type}"`, [
      { path: 'type', message: `one of ${FIELD_TYPES.join(', ')}` },
    ]);
  const type = input.type as FieldType;
  const options = checkOptions(type, input.options ?? {}, modules);
  if (mod.fields.length >= 500) throw new AppError('limit_exceeded', 'A module has at most 500 fields');
  const taken = new Set([
    ...mod.fields.map((f) => f.apiName),
    ...systemFieldInfos.map((f) => f.apiName),
    'id',
  ]);
  const apiName = uniqueName(slugify(fieldLabel, 55), taken);
  const position = Math.max(0, ...mod.fields.map((f) => f.position)) + 1;
  const defs: FieldDef[] = [{ apiName, label: fieldLabel, type, required: input.required ?? false, options }];
  // Any module with an email field carries Email Opt Out (F1.1).
  if (type === 'email' && !taken.has('email_opt_out'))
    defs.push({ apiName: 'email_opt_out', label: 'Email Opt Out', type: 'boolean' });
  await insertFields(deps, actor.orgId, mod.id, defs, true, position);
  const fresh = await loadModule(deps, actor.orgId, moduleName);
  return fresh.fields.find((f) => f.apiName === apiName)!;
}

function findField(mod: ModuleMeta, fieldId: string): FieldInfo {
  const f = mod.fields.find((x) => x.id === fieldId);
  if (!f) throw notFound('Field');
  return f;
}

export async function updateField(
  deps: Deps,
  actor: Actor,
  moduleName: string,
  fieldId: string,
  input: { label?: string; required?: boolean; options?: FieldOptions },
): Promise<FieldInfo> {
  requireAdmin(actor);
  const modules = await loadModules(deps, actor.orgId);
  const mod = modules.get(moduleName);
  if (!mod) throw notFound(`Module "${moduleName}"`);
  const field = findField(mod, fieldId);
  const patch: { label?: string; required?: boolean; options?: string; updated_at: Date } = {
    updated_at: deps.clock.now(),
  };
  if (input.label !== undefined) patch.label = label(input.label, 'label');
  if (input.required !== undefined) patch.required = input.required;
  if (input.options !== undefined) {
    const options = checkOptions(field.type, { ...field.options, ...input.options }, modules);
    if (field.type === 'lookup' && options.module !== field.options.module)
      throw invalid('The module a lookup points to cannot be changed');
    const removed = (field.options.values ?? []).filter((v) => !(options.values ?? []).includes(v));
    if (removed.length > 0) {
      const inUse = await deps.db
        .selectFrom('records')
        .select(sql<number>`count(*)`.as('n'))
        .where('org_id', '=', actor.orgId)
        .where('module_id', '=', mod.id)
        .where(
          field.type === 'picklist'
            ? sql<boolean>`data ->> ${field.apiName} = ANY(${removed})`
            : sql<boolean>`data -> ${field.apiName} ?| ${removed}`,
        )
        .executeTakeFirstOrThrow();
      if (inUse.n > 0)
        throw new AppError(
          'conflict',
          `${inUse.n} records still use the values you removed: ${removed.join(', ')}`,
        );
    }
    patch.options = JSON.stringify(options);
  }
  await deps.db
    .updateTable('fields')
    .set(patch)
    .where('org_id', '=', actor.orgId)
    .where('id', '=', fieldId)
    .execute();
  const fresh = await loadModule(deps, actor.orgId, moduleName);
  return findField(fresh, fieldId);
}

export async function deleteField(
  deps: Deps,
  actor: Actor,
  moduleName: string,
  fieldId: string,
): Promise<void> {
  requireAdmin(actor);
  const mod = await loadModule(deps, actor.orgId, moduleName);
  const field = findField(mod, fieldId);
  if (!field.isCustom) throw new AppError('forbidden', 'Built-in fields cannot be deleted');
  await deps.db.transaction().execute(async (trx) => {
    await trx.deleteFrom('fields').where('org_id', '=', actor.orgId).where('id', '=', fieldId).execute();
    await trx
      .updateTable('records')
      .set({ data: sql`data - ${field.apiName}` })
      .where('org_id', '=', actor.orgId)
      .where('module_id', '=', mod.id)
      .where(sql<boolean>`data ? ${field.apiName}`)
      .execute();
  });
}
