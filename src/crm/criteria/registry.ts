import type { Expression, SqlBool } from 'kysely';
import type { CriteriaContext, EvalRecord, KindConditionInput } from './types.ts';

/**
 * Extension point for conditions that are not field conditions, e.g. email status (F4.8):
 *
 *   registerConditionKind('email_status', {
 *     validate(cond, ctx) { ...check cond's own keys, throw new ConditionError('…') if bad; return node },
 *     compile(node, ctx) { return sql<SqlBool>`EXISTS (SELECT 1 FROM messages m WHERE m.record_id = r.id …)` },
 *     evaluate(node, ctx, record) { ... }, // optional; needed only where criteria run in memory
 *   });
 *
 * Afterwards `{ kind: 'email_status', … }` is accepted as a condition in any criteria and pattern.
 * compile() works over the records table aliased `r` and must bind every value (kysely `sql`).
 * A ConditionError thrown by validate() is reported as "condition i: <message>".
 */
export interface ConditionKind<N = unknown> {
  validate(cond: KindConditionInput, ctx: CriteriaContext): N;
  compile(node: N, ctx: CriteriaContext): Expression<SqlBool>;
  evaluate?(node: N, ctx: CriteriaContext, record: EvalRecord): boolean;
}

/** A user error in one condition; validateCriteria adds which condition it is. */
export class ConditionError extends Error {
  override name = 'ConditionError';
}

const kinds = new Map<string, ConditionKind>();

export function registerConditionKind<N>(kind: string, impl: ConditionKind<N>): void {
  if (!/^[a-z][a-z0-9_]{0,39}$/.test(kind)) throw new Error(`Invalid condition kind name "${kind}"`);
  if (kinds.has(kind)) throw new Error(`Condition kind "${kind}" is already registered`);
  kinds.set(kind, impl as ConditionKind);
}

export function conditionKind(kind: string): ConditionKind | undefined {
  return kinds.get(kind);
}
