import { type Expression, type SqlBool, sql } from 'kysely';
import { z } from 'zod';
import {
  type Actor,
  can,
  compileCriteria,
  type ModuleMeta,
  type Scope,
  scope,
  validateCriteria,
} from '../../crm/index.ts';
import type { Deps } from '../../deps.ts';
import { AppError, type ErrorDetail, invalid } from '../../errors.ts';

// Sales conditions of the SalesInbox: "the mail is linked (mail_record_links) to a record of this
// module that matches these criteria", optionally "…that a record of another module points at through
// a lookup and that matches its own criteria" (contacts of deals closing this month). The criteria are
// the one criteria language, compiled by its compiler; only the joins are written here.

export const salesConditionSchema = z
  .object({
    /** The linked record's module: leads, contacts (any module mail links to). */
    module: z.string().min(1).max(60),
    criteria: z.unknown().optional(),
    /** How the record takes part in the email: sender, recipient (to or cc), or either. */
    role: z.enum(['from', 'to', 'any']).optional(),
    /** Records of `module` that a record of `related.module` points at through its lookup `field`. */
    related: z
      .object({ module: z.string().min(1).max(60), field: z.string().min(1).max(60), criteria: z.unknown() })
      .strict()
      .optional(),
  })
  .strict();
export type SalesCondition = z.infer<typeof salesConditionSchema>;

/** Re-raises a criteria error with where it is: "Sales condition 1 (Leads): condition 2: …". */
function located(e: unknown, where: string, path: string): never {
  if (e instanceof AppError && (e.code === 'invalid_criteria' || e.code === 'not_found')) {
    const details: ErrorDetail[] = e.details.length
      ? e.details.map((d) => ({ path: `${path}.${d.path ?? ''}`, message: `${where}: ${d.message}` }))
      : [{ path, message: `${where}: ${e.message}` }];
    throw new AppError('invalid_criteria', details.map((d) => d.message).join('; '), details);
  }
  throw e;
}

async function moduleScope(deps: Deps, actor: Actor, name: string, where: string, path: string) {
  let s: Scope;
  try {
    s = await scope(deps, actor, name);
  } catch (e) {
    located(e, where, path);
  }
  if (!can(actor, name, 'read'))
    throw new AppError('forbidden', `${where}: your profile does not allow reading ${s.mod.pluralLabel}`);
  return s;
}

function compiled(criteria: unknown, s: Scope, where: string, path: string): Expression<SqlBool> | null {
  if (criteria === undefined || criteria === null) return null;
  try {
    return compileCriteria(validateCriteria(criteria, s.ctx), s.ctx);
  } catch (e) {
    located(e, where, path);
  }
}

const lookupTo = (m: ModuleMeta, field: string, target: string) =>
  m.fields.find((f) => f.apiName === field && f.type === 'lookup' && f.options.module === target);

/** One boolean SQL expression over `mail_messages AS m` per condition (all must hold). */
export async function compileSalesConditions(
  deps: Deps,
  actor: Actor,
  conditions: SalesCondition[],
): Promise<Expression<SqlBool>[]> {
  const out: Expression<SqlBool>[] = [];
  for (const [i, c] of conditions.entries()) {
    const path = `sales[${i}]`;
    const where = `Sales condition ${i + 1} (${c.module})`;
    const s = await moduleScope(deps, actor, c.module, where, `${path}.module`);
    const own = compiled(c.criteria, s, where, `${path}.criteria`);
    let rel: Expression<SqlBool> | null = null;
    if (c.related) {
      const rwhere = `Sales condition ${i + 1} (${c.related.module})`;
      const rs = await moduleScope(deps, actor, c.related.module, rwhere, `${path}.related.module`);
      const lookup = lookupTo(rs.mod, c.related.field, s.mod.apiName);
      if (!lookup)
        throw invalid(`${rwhere}: "${c.related.field}" is not a lookup to ${s.mod.pluralLabel}`, [
          {
            path: `${path}.related.field`,
            message: `not a lookup of ${rs.mod.pluralLabel} to ${s.mod.pluralLabel}`,
          },
        ]);
      const rc = compiled(c.related.criteria, rs, rwhere, `${path}.related.criteria`);
      // The inner `records AS r` is the related record (its criteria compile over `r`); it points at
      // the linked record through the lookup's stored id.
      rel = sql<SqlBool>`EXISTS (SELECT 1 FROM records AS r WHERE r.org_id = ${actor.orgId} AND r.module_id = ${rs.mod.id} AND (r.data ->> ${sql.lit(lookup.apiName)}) = lk.record_id::text${rc ? sql` AND ${rc}` : sql``})`;
    }
    const role =
      c.role === 'from'
        ? sql` AND lk.role = 'from'`
        : c.role === 'to'
          ? sql` AND lk.role IN ('to', 'cc')`
          : sql``;
    out.push(
      sql<SqlBool>`EXISTS (SELECT 1 FROM mail_record_links AS lk JOIN records AS r ON r.id = lk.record_id AND r.org_id = ${actor.orgId} AND r.module_id = ${s.mod.id} WHERE lk.mail_id = m.id AND lk.org_id = ${actor.orgId}${role}${own ? sql` AND ${own}` : sql``}${rel ? sql` AND ${rel}` : sql``})`,
    );
  }
  return out;
}
