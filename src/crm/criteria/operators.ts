import type { FieldType } from '../../db/schema.ts';
import { RELATIVE_OPS } from './dates.ts';
import type { FieldRef, SystemColumn } from './types.ts';

const EMPTY = ['is_empty', 'is_not_empty'] as const;
const TEXT = ['is', 'is_not', 'contains', 'not_contains', 'starts_with', 'ends_with', ...EMPTY];
const NUMBER = ['eq', 'neq', 'lt', 'lte', 'gt', 'gte', 'between', 'not_between', ...EMPTY];
const DATE = ['is', 'is_not', 'before', 'after', 'between', ...RELATIVE_OPS, ...EMPTY];
const CHOICE = ['is', 'is_not', ...EMPTY];

/** The operators each field type accepts, in the order a UI should offer them. */
export const OPERATORS: Record<FieldType, readonly string[]> = {
  text: TEXT,
  long_text: TEXT,
  email: TEXT,
  phone: TEXT,
  number: NUMBER,
  currency: NUMBER,
  date: DATE,
  datetime: DATE,
  picklist: CHOICE,
  multi_picklist: ['contains_any', 'contains_all', 'not_contains_any', ...EMPTY],
  boolean: ['is'],
  lookup: CHOICE,
  user: CHOICE,
};

export function operatorsFor(type: FieldType): readonly string[] {
  return OPERATORS[type];
}

/** System fields are real columns of `records`, whatever the module's field list says. */
export const SYSTEM_FIELDS: Record<string, FieldRef & { column: SystemColumn }> = {
  owner: { apiName: 'owner', label: 'Owner', type: 'user', column: 'owner_id' },
  created_by: { apiName: 'created_by', label: 'Created By', type: 'user', column: 'created_by' },
  created_at: { apiName: 'created_at', label: 'Created Time', type: 'datetime', column: 'created_at' },
  updated_at: { apiName: 'updated_at', label: 'Modified Time', type: 'datetime', column: 'updated_at' },
};

export function systemField(apiName: string): (FieldRef & { column: SystemColumn }) | undefined {
  return Object.hasOwn(SYSTEM_FIELDS, apiName) ? SYSTEM_FIELDS[apiName] : undefined;
}
