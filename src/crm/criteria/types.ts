import { z } from 'zod';
import type { FieldType } from '../../db/schema.ts';
import type { FieldMeta } from '../values.ts';

// The JSON form of a criteria, as stored in views and sent by clients (F1.3).

/** `{ field, op, value? }`; field is an api_name, a system field or `lookupField.relatedField`. */
export const fieldConditionSchema = z.object({
  field: z.string().min(1).max(130),
  op: z.string().min(1).max(40),
  value: z.unknown().optional(),
});

/** A condition of a registered kind (e.g. email status, F4.8): `{ kind, ...its own keys }`. */
export const kindConditionSchema = z.looseObject({ kind: z.string().min(1).max(40) });

export const conditionSchema = z.union([kindConditionSchema, fieldConditionSchema]);

export const MAX_CONDITIONS = 50;

export const criteriaSchema = z.object({
  conditions: z.array(conditionSchema).min(1).max(MAX_CONDITIONS),
  pattern: z.string().max(2000).nullish(),
});

export type CriteriaInput = z.infer<typeof criteriaSchema>;
export type FieldConditionInput = z.infer<typeof fieldConditionSchema>;
export type KindConditionInput = z.infer<typeof kindConditionSchema>;

// ---- Context -------------------------------------------------------------------------------------

export interface ModuleInfo {
  id: string;
  apiName: string;
  fields: FieldMeta[];
}

export interface CriteriaContext {
  orgId: string;
  userId: string;
  /** IANA name; relative dates and "that day" are the user's local days. */
  timeZone: string;
  now: Date;
  module: ModuleInfo;
  relatedModule(apiName: string): ModuleInfo | undefined;
}

// ---- Typed AST (what validateCriteria returns) -----------------------------------------------------

export type SystemColumn = 'owner_id' | 'created_by' | 'created_at' | 'updated_at';

/** A resolved field: stored in `data` under apiName, or (system fields) a real column. */
export interface FieldRef {
  apiName: string;
  label: string;
  type: FieldType;
  column?: SystemColumn;
}

export type TextOp = 'is' | 'is_not' | 'contains' | 'not_contains' | 'starts_with' | 'ends_with';
export type NumberOp = 'eq' | 'neq' | 'lt' | 'lte' | 'gt' | 'gte' | 'between' | 'not_between';
export type RelativeOp =
  | 'today'
  | 'yesterday'
  | 'tomorrow'
  | 'this_week'
  | 'last_week'
  | 'next_week'
  | 'this_month'
  | 'last_month'
  | 'next_month'
  | 'this_year'
  | 'last_year'
  | 'in_last_n_days'
  | 'in_next_n_days'
  | 'older_than_n_days';
export type DateOp = 'is' | 'is_not' | 'before' | 'after' | 'between' | RelativeOp;
export type ChoiceOp = 'is' | 'is_not';
export type MultiOp = 'contains_any' | 'contains_all' | 'not_contains_any';

/** Date operand: a local day 'YYYY-MM-DD', or (before/after on datetime) an instant. */
export type DateOperand =
  | { day: string }
  | { instant: string } // ISO-8601 UTC with milliseconds
  | { from: string; to: string } // between, inclusive days
  | { n: number } // *_n_days
  | Record<string, never>; // today, this_week …

export type FieldPredicate =
  | { category: 'empty'; op: 'is_empty' | 'is_not_empty' }
  /** text values are trimmed, not yet lower-cased (SQL and the evaluator each fold case). */
  | { category: 'text'; op: TextOp; values: string[] }
  | { category: 'number'; op: NumberOp; values: number[] } // between: [min, max]
  | { category: 'date'; op: DateOp; operand: DateOperand }
  /** picklist, lookup and user: exact canonical values; 'me' stays symbolic until compile/evaluate. */
  | { category: 'choice'; op: ChoiceOp; values: string[] }
  | { category: 'multi'; op: MultiOp; values: string[] }
  | { category: 'boolean'; op: 'is'; value: boolean };

export type FieldNode = { type: 'field'; field: FieldRef } & FieldPredicate;

/** `lookupField.relatedField`: true when the looked-up record exists and its field matches. */
export interface RelatedNode {
  type: 'related';
  lookup: FieldRef;
  module: { id: string; apiName: string };
  condition: FieldNode;
}

export interface KindNode {
  type: 'kind';
  kind: string;
  node: unknown;
}

export type ConditionNode = FieldNode | RelatedNode | KindNode;

export type PatternNode = { type: 'ref'; n: number } | { type: 'and' | 'or'; children: PatternNode[] };

export interface CriteriaAst {
  conditions: ConditionNode[];
  /** Refers to conditions by 1-based number. */
  pattern: PatternNode;
}

/** A record as the in-memory evaluator sees it (the shape of a `records` row). */
export interface EvalRecord {
  id: string;
  owner_id: string;
  created_by: string | null;
  created_at: Date;
  updated_at: Date;
  data: Record<string, unknown>;
  /** When given, a related record of another module does not match (as the SQL checks module_id). */
  module_id?: string;
}
