// Field-type knowledge the UI needs: how to read a value off a record, how values travel between
// the API and form inputs, and which criteria operators each type offers.
import { isoToLocalInput, localInputToIso } from './format.ts';
import type { Condition, Criteria, CrmRecord, Field, FieldType, LookupRef } from './types.ts';

/** A record's value for a field, system fields included. */
export function recordValue(record: CrmRecord, field: Pick<Field, 'apiName' | 'system'>): unknown {
  if (field.system) {
    switch (field.apiName) {
      case 'owner':
        return record.ownerId;
      case 'created_by':
        return record.createdBy ?? null;
      case 'created_at':
        return record.createdAt;
      case 'updated_at':
        return record.updatedAt;
    }
  }
  return record.data[field.apiName];
}

export function isEmptyValue(v: unknown): boolean {
  return v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);
}

/** The value a form input holds for a field, from what the API stored. */
export function toFormValue(field: Field, raw: unknown, record: CrmRecord | undefined, timeZone: string) {
  switch (field.type) {
    case 'boolean':
      return raw === true;
    case 'multi_picklist':
      return Array.isArray(raw) ? raw.map(String) : [];
    case 'datetime':
      return typeof raw === 'string' ? isoToLocalInput(raw, timeZone) : '';
    case 'lookup': {
      if (typeof raw !== 'string') return null;
      const ref = record?.lookups?.[field.apiName];
      return { id: raw, displayName: ref?.displayName ?? raw } satisfies LookupRef;
    }
    case 'number':
    case 'currency':
      return typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw : '';
    default:
      return raw === undefined || raw === null ? '' : String(raw);
  }
}

/** What to send to the API for a form input's value (null clears the field). */
export function fromFormValue(field: Field, v: unknown, timeZone: string): unknown {
  switch (field.type) {
    case 'boolean':
      return v === true;
    case 'multi_picklist':
      return Array.isArray(v) && v.length ? v : null;
    case 'datetime':
      return typeof v === 'string' && v ? (localInputToIso(v, timeZone) ?? v) : null;
    case 'lookup':
      return v && typeof v === 'object' ? (v as LookupRef).id : null;
    case 'number':
    case 'currency': {
      if (typeof v !== 'string' || v.trim() === '') return null;
      const n = Number(v);
      return Number.isFinite(n) ? n : v;
    }
    default:
      return typeof v === 'string' && v.trim() !== '' ? v : null;
  }
}

export const editableFields = (fields: Field[]) => fields.filter((f) => !f.system);

export const sortable = (f: Field) => f.type !== 'multi_picklist' && f.type !== 'long_text';

// --- criteria operators (F1.3)

const TEXT_OPS = [
  'is',
  'is_not',
  'contains',
  'not_contains',
  'starts_with',
  'ends_with',
  'is_empty',
  'is_not_empty',
];
const NUMBER_OPS = [
  'eq',
  'neq',
  'lt',
  'lte',
  'gt',
  'gte',
  'between',
  'not_between',
  'is_empty',
  'is_not_empty',
];
const DATE_OPS = [
  'is',
  'is_not',
  'before',
  'after',
  'between',
  'today',
  'yesterday',
  'tomorrow',
  'this_week',
  'last_week',
  'next_week',
  'this_month',
  'last_month',
  'next_month',
  'this_year',
  'last_year',
  'in_last_n_days',
  'in_next_n_days',
  'older_than_n_days',
  'is_empty',
  'is_not_empty',
];
const LIST_OPS = ['is', 'is_not', 'is_empty', 'is_not_empty'];
const MULTI_OPS = ['contains_any', 'contains_all', 'not_contains_any', 'is_empty', 'is_not_empty'];

export function operatorsFor(type: FieldType): string[] {
  switch (type) {
    case 'text':
    case 'long_text':
    case 'email':
    case 'phone':
      return TEXT_OPS;
    case 'number':
    case 'currency':
      return NUMBER_OPS;
    case 'date':
    case 'datetime':
      return DATE_OPS;
    case 'picklist':
    case 'lookup':
    case 'user':
      return LIST_OPS;
    case 'multi_picklist':
      return MULTI_OPS;
    case 'boolean':
      return ['is'];
  }
}

/** What kind of value an operator takes. */
export type Arity = 'none' | 'one' | 'two' | 'list' | 'days' | 'bool';

export function arityOf(type: FieldType, op: string): Arity {
  if (op === 'is_empty' || op === 'is_not_empty') return 'none';
  if (type === 'boolean') return 'bool';
  if (op === 'between' || op === 'not_between') return 'two';
  if (op === 'in_last_n_days' || op === 'in_next_n_days' || op === 'older_than_n_days') return 'days';
  if (type === 'date' || type === 'datetime') {
    return ['is', 'is_not', 'before', 'after'].includes(op) ? 'one' : 'none';
  }
  if (['picklist', 'multi_picklist', 'lookup', 'user'].includes(type)) return 'list';
  return 'one';
}

/** A fresh value for a condition after its field or operator changed. */
export function defaultValue(type: FieldType, op: string): unknown {
  switch (arityOf(type, op)) {
    case 'none':
      return undefined;
    case 'bool':
      return true;
    case 'two':
      return ['', ''];
    case 'list':
      return [];
    case 'days':
      return 7;
    default:
      return '';
  }
}

/** The value as the API wants it (numbers as numbers). */
export function conditionForApi(type: FieldType, c: Condition): Condition {
  const arity = arityOf(type, c.op);
  if (arity === 'none') return { field: c.field, op: c.op };
  const num = (v: unknown) =>
    typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
  if (type === 'number' || type === 'currency') {
    return { ...c, value: Array.isArray(c.value) ? c.value.map(num) : num(c.value) };
  }
  if (arity === 'days') return { ...c, value: num(c.value) };
  return c;
}

/** The pattern that ANDs n conditions: "1 and 2 and 3". */
export const defaultPattern = (n: number) => Array.from({ length: n }, (_, i) => String(i + 1)).join(' and ');

/** Both criteria at once: a view's own and an ad-hoc filter, so that a saved view keeps both. */
export function combineCriteria(
  a: Criteria | null | undefined,
  b: Criteria | null | undefined,
): Criteria | null {
  const has = (c: Criteria | null | undefined): c is Criteria => !!c && c.conditions.length > 0;
  if (!has(a)) return has(b) ? b : null;
  if (!has(b)) return a;
  const pa = a.pattern?.trim() || defaultPattern(a.conditions.length);
  const shift = a.conditions.length;
  const pb = (b.pattern?.trim() || defaultPattern(b.conditions.length)).replace(/\d+/g, (d) =>
    String(Number(d) + shift),
  );
  return { conditions: [...a.conditions, ...b.conditions], pattern: `(${pa}) and (${pb})` };
}
