// Which merge fields a template of a module may use: the one description that both the save-time
// check (unknownMergeFields) and the merge context (merge-context.ts) are built from, so a field
// that passes the check is always present when the template is rendered.
//
//   {{ lead.first_name }}           a field of the record, by api_name (leads → lead, deals → deal…)
//   {{ contact.account_id }}        a lookup field: the related record's name
//   {{ contact.account.website }}   the related record itself (the lookup's api_name without _id)
//   {{ lead.name }}                 the record's display name (when the module has no `name` field)
//   {{ owner.name }} {{ sender.email }} {{ org.name }}
import type { Template } from 'liquidjs';
import type { ModuleMeta } from '../crm/index.ts';
import type { FieldType } from '../db/schema.ts';
import type { CompiledTemplate, TemplatePart } from './engine.ts';
import { htmlEngine } from './engine.ts';

/** A value (rendered as text) or an object of named merge fields. */
export type MergeNode =
  | { kind: 'value'; label: string; type: FieldType; computed?: 'display_name' }
  | { kind: 'object'; label: string; fields: Map<string, MergeNode>; source: ObjectSource };

/** Where an object's values come from (merge-context.ts reads it). */
export type ObjectSource =
  | { from: 'record'; module: string }
  | { from: 'related'; module: string; field: string }
  | { from: 'user'; which: 'owner' | 'sender' }
  | { from: 'org' };

export interface MergeSchema {
  module: string;
  /** The root name of the record: lead, contact, account, deal, task, call, or a custom api_name. */
  recordKey: string;
  roots: Map<string, Extract<MergeNode, { kind: 'object' }>>;
}

const BUILTIN_SINGULAR: Record<string, string> = {
  leads: 'lead',
  contacts: 'contact',
  accounts: 'account',
  deals: 'deal',
  tasks: 'task',
  calls: 'call',
};
const RESERVED = new Set(['owner', 'sender', 'org']);

/** The merge name of a module's record: leads → lead …; a custom module keeps its api_name. */
export function mergeKey(moduleApiName: string): string {
  const key = BUILTIN_SINGULAR[moduleApiName] ?? moduleApiName;
  return RESERVED.has(key) ? 'record' : key;
}

/** The key of a lookup's related record: account_id → account; a lookup without _id keeps its name. */
export function relatedKey(fieldApiName: string, taken: Set<string>): string {
  const base = fieldApiName.endsWith('_id') ? fieldApiName.slice(0, -3) : fieldApiName;
  if (base === fieldApiName || !taken.has(base)) return base;
  return `${fieldApiName}_record`;
}

function value(label: string, type: FieldType): MergeNode {
  return { kind: 'value', label, type };
}

/** The fields of one record: data fields by api_name, plus `name` (its display name). */
function recordFields(mod: ModuleMeta, withLookups: boolean): Map<string, MergeNode> {
  const fields = new Map<string, MergeNode>();
  for (const f of mod.fields) {
    // A related record's own lookups would need another level of loading: not offered.
    if (f.type === 'lookup' && !withLookups) continue;
    fields.set(f.apiName, value(f.label, f.type));
  }
  if (!fields.has('name'))
    fields.set('name', {
      kind: 'value',
      label: `${mod.singularLabel} name`,
      type: 'text',
      computed: 'display_name',
    });
  return fields;
}

function person(label: string, which: 'owner' | 'sender'): Extract<MergeNode, { kind: 'object' }> {
  return {
    kind: 'object',
    label,
    source: { from: 'user', which },
    fields: new Map<string, MergeNode>([
      ['name', value('Name', 'text')],
      ['first_name', value('First name', 'text')],
      ['last_name', value('Last name', 'text')],
      ['email', value('Email', 'email')],
    ]),
  };
}

/**
 * The merge fields of a template of `moduleApiName`. `canRead` limits related records to modules
 * the caller may read (an author cannot put fields of a module they cannot see into a template).
 */
export function mergeSchema(
  modules: Map<string, ModuleMeta>,
  moduleApiName: string,
  canRead: (module: string) => boolean = () => true,
): MergeSchema {
  const mod = modules.get(moduleApiName);
  if (!mod) throw new Error(`unknown module ${moduleApiName}`);
  const fields = recordFields(mod, true);
  const taken = new Set(fields.keys());
  for (const f of mod.fields) {
    if (f.type !== 'lookup') continue;
    const target = f.options.module ? modules.get(f.options.module) : undefined;
    if (!target || !canRead(target.apiName)) continue;
    const key = relatedKey(f.apiName, taken);
    taken.add(key);
    fields.set(key, {
      kind: 'object',
      label: f.label.replace(/\s+name$/i, '') || target.singularLabel,
      fields: recordFields(target, false),
      source: { from: 'related', module: target.apiName, field: f.apiName },
    });
  }
  const recordKey = mergeKey(moduleApiName);
  const roots = new Map<string, Extract<MergeNode, { kind: 'object' }>>([
    [
      recordKey,
      { kind: 'object', label: mod.singularLabel, fields, source: { from: 'record', module: mod.apiName } },
    ],
    ['owner', person('Record owner', 'owner')],
    ['sender', person('Sender', 'sender')],
    [
      'org',
      {
        kind: 'object',
        label: 'Organization',
        fields: new Map([['name', value('Name', 'text')]]),
        source: { from: 'org' },
      },
    ],
  ]);
  return { module: moduleApiName, recordKey, roots };
}

/** One merge field a template uses that the module does not have. */
export interface UnknownMergeField {
  part: TemplatePart;
  /** As written, e.g. `lead.frist_name`. */
  path: string;
  line: number;
  column: number;
  reason: string;
}

// Properties Liquid computes on any value (`{{ lead.tags.size }}`, `{{ lead.tags.first }}`).
const COMPUTED = new Set(['size', 'first', 'last']);

type Segment = string | number | { segments: unknown[] };

function explain(schema: MergeSchema, segs: Segment[]): string | null {
  const [root, ...rest] = segs;
  if (typeof root !== 'string' || !schema.roots.has(root))
    return `"${String(root)}" is not a merge field: use ${[...schema.roots.keys()].join(', ')}`;
  let node: MergeNode = schema.roots.get(root)!;
  let path = root;
  for (let i = 0; i < rest.length; i++) {
    const seg = rest[i];
    if (typeof seg === 'object') return `${path}[…]: only fixed field names can be used, like ${path}.name`;
    if (node.kind === 'object') {
      const next: MergeNode | undefined = typeof seg === 'string' ? node.fields.get(seg) : undefined;
      if (!next) return `${node.label} has no field "${seg}"`;
      node = next;
      path = `${path}.${seg}`;
      continue;
    }
    // A value: only what Liquid computes from it, at the end of the path.
    const last = i === rest.length - 1;
    if (last && typeof seg === 'string' && COMPUTED.has(seg)) return null;
    if (last && typeof seg === 'number' && node.type === 'multi_picklist') return null;
    return `${path} is a value, not a record: "${seg}" cannot be read from it`;
  }
  return null;
}

/** The variables a parsed part reads from the merge context (not those the template assigns). */
function globalsOf(templates: Template[]) {
  return Object.values(htmlEngine.analyzeSync(templates, { partials: false }).globals).flat();
}

/**
 * Every variable the compiled template reads that the schema does not offer, with where it is and
 * why. Empty when the template only uses known merge fields.
 */
export function unknownMergeFields(schema: MergeSchema, compiled: CompiledTemplate): UnknownMergeField[] {
  const out: UnknownMergeField[] = [];
  const parts: [TemplatePart, Template[] | null][] = [
    ['subject', compiled.subject],
    ['html', compiled.html],
    ['text', compiled.text],
  ];
  for (const [part, templates] of parts) {
    if (!templates) continue;
    const seen = new Set<string>();
    for (const v of globalsOf(templates)) {
      const path = String(v);
      const reason = explain(schema, v.segments as Segment[]);
      const key = `${path}@${v.location.row}:${v.location.col}`;
      if (reason && !seen.has(key)) {
        seen.add(key);
        out.push({ part, path, line: v.location.row, column: v.location.col, reason });
      }
    }
  }
  return out;
}

/** The merge fields of a schema as a flat list (for the editor's "insert field" menu). */
export function listMergeFields(schema: MergeSchema): { path: string; label: string; group: string }[] {
  const out: { path: string; label: string; group: string }[] = [];
  for (const [rootKey, root] of schema.roots)
    for (const [k, node] of root.fields) {
      if (node.kind === 'value') out.push({ path: `${rootKey}.${k}`, label: node.label, group: root.label });
      else
        for (const [k2, sub] of node.fields)
          out.push({
            path: `${rootKey}.${k}.${k2}`,
            label: sub.label,
            group: `${root.label} › ${node.label}`,
          });
    }
  return out;
}
