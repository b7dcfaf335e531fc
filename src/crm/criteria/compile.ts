import { type Expression, type RawBuilder, type SqlBool, sql } from 'kysely';
import type { FieldMeta } from '../values.ts';
import { systemField } from './operators.ts';
import { conditionKind } from './registry.ts';
import { type Bounds, dateBounds, escapeLike, NEGATIVE_OPS, resolveIds } from './semantics.ts';
import type {
  ConditionNode,
  CriteriaAst,
  CriteriaContext,
  FieldNode,
  FieldRef,
  PatternNode,
} from './types.ts';

// Compiles a validated criteria to one boolean SQL expression over `records AS r`. Every user value
// is a bound parameter. Field names are inlined as string literals only after checking them against
// the api_name rule (they come from metadata, never from the request) so expression indexes such as
// lower(data ->> 'email') can match.

type Bool = RawBuilder<SqlBool>;

const API_NAME = /^[a-z][a-z0-9_]{0,59}$/;
const UUID_TEXT = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';

function key(apiName: string) {
  if (!API_NAME.test(apiName)) throw new Error(`Unsafe field name "${apiName}"`);
  return sql.lit(apiName);
}

const data = (alias: string) => sql.ref(`${alias}.data`);
const text = (f: FieldRef, alias: string) => sql<string | null>`(${data(alias)} ->> ${key(f.apiName)})`;
// Guarded cast: a stray non-number must read as empty, not fail the whole query.
const numeric = (f: FieldRef, alias: string) =>
  sql<
    number | null
  >`(CASE WHEN jsonb_typeof(${data(alias)} -> ${key(f.apiName)}) = 'number' THEN (${data(alias)} ->> ${key(f.apiName)})::numeric END)`;
/** `r.data @> {"field": value}`: the GIN (jsonb_path_ops) index answers it. */
const contains = (f: FieldRef, alias: string, value: unknown): Bool =>
  sql<SqlBool>`(${data(alias)} @> ${JSON.stringify({ [f.apiName]: value })}::jsonb)`;
const any = (parts: Bool[]): Bool =>
  parts.length === 1 ? parts[0] : sql<SqlBool>`(${sql.join(parts, sql` OR `)})`;
const all = (parts: Bool[]): Bool =>
  parts.length === 1 ? parts[0] : sql<SqlBool>`(${sql.join(parts, sql` AND `)})`;
/** The negative rule: NULL (empty field) counts as "not matching", so the negation includes it. */
const not = (b: Bool): Bool => sql<SqlBool>`((${b}) IS NOT TRUE)`;

export function compileCriteria(ast: CriteriaAst, ctx: CriteriaContext): Expression<SqlBool> {
  const parts = ast.conditions.map((c) => compileCondition(c, ctx));
  const walk = (p: PatternNode): Bool =>
    p.type === 'ref'
      ? parts[p.n - 1]
      : p.type === 'and'
        ? all(p.children.map(walk))
        : any(p.children.map(walk));
  return walk(ast.pattern);
}

function compileCondition(c: ConditionNode, ctx: CriteriaContext): Bool {
  if (c.type === 'field') return compileField(c, ctx, 'r');
  if (c.type === 'related') {
    const lookup = text(c.lookup, 'r');
    // A lookup points to one record of the target module in the same org; no such record, no match.
    return sql<SqlBool>`EXISTS (SELECT 1 FROM records AS rel WHERE rel.org_id = ${ctx.orgId} AND rel.module_id = ${c.module.id} AND rel.id = (CASE WHEN ${lookup} ~ ${UUID_TEXT} THEN ${lookup}::uuid END) AND ${compileField(c.condition, ctx, 'rel')})`;
  }
  const impl = conditionKind(c.kind);
  if (!impl) throw new Error(`Condition kind "${c.kind}" is not registered`);
  return sql<SqlBool>`(${impl.compile(c.node, ctx)})`;
}

function compileField(node: FieldNode, ctx: CriteriaContext, alias: string): Bool {
  const f = node.field;
  const column = f.column ? sql.ref(`${alias}.${f.column}`) : undefined;
  switch (node.category) {
    case 'empty': {
      const present = column
        ? sql<SqlBool>`(${column} IS NOT NULL)`
        : sql<SqlBool>`(${data(alias)} ? ${key(f.apiName)})`;
      return node.op === 'is_empty' ? sql<SqlBool>`(NOT ${present})` : present;
    }
    case 'text': {
      const v = sql`lower(${text(f, alias)})`;
      let match: Bool;
      if (node.op === 'is' || node.op === 'is_not')
        match = sql<SqlBool>`(${v} IN (${sql.join(node.values.map((s) => sql`lower(${s})`))}))`;
      else {
        const needle = escapeLike(node.values[0]);
        const like =
          node.op === 'starts_with' ? `${needle}%` : node.op === 'ends_with' ? `%${needle}` : `%${needle}%`;
        match = sql<SqlBool>`(${v} LIKE lower(${like}))`;
      }
      return NEGATIVE_OPS.has(node.op) ? not(match) : match;
    }
    case 'number': {
      const [a, b] = node.values;
      const n = numeric(f, alias);
      switch (node.op) {
        case 'eq':
          return contains(f, alias, a);
        case 'neq':
          return not(contains(f, alias, a));
        case 'lt':
          return sql<SqlBool>`(${n} < ${a}::numeric)`;
        case 'lte':
          return sql<SqlBool>`(${n} <= ${a}::numeric)`;
        case 'gt':
          return sql<SqlBool>`(${n} > ${a}::numeric)`;
        case 'gte':
          return sql<SqlBool>`(${n} >= ${a}::numeric)`;
        case 'between':
          return sql<SqlBool>`(${n} BETWEEN ${a}::numeric AND ${b}::numeric)`;
        case 'not_between':
          return not(sql<SqlBool>`(${n} BETWEEN ${a}::numeric AND ${b}::numeric)`);
      }
      break;
    }
    case 'date': {
      let match: Bool;
      if (!column && f.type === 'date' && 'day' in node.operand && (node.op === 'is' || node.op === 'is_not'))
        match = contains(f, alias, node.operand.day); // canonical dates: equality is containment
      else {
        const bounds = dateBounds(f, node.op, node.operand, ctx);
        // Canonical dates and datetimes sort as text; COLLATE "C" makes that byte order, like JS.
        match = column
          ? compareBounds(sql`${column}`, bounds, 'timestamptz')
          : compareBounds(sql`(${text(f, alias)} COLLATE "C")`, bounds, 'text');
      }
      return NEGATIVE_OPS.has(node.op) ? not(match) : match;
    }
    case 'choice': {
      const values = f.type === 'user' ? resolveIds(node.values, ctx) : node.values;
      const match = column
        ? sql<SqlBool>`(${column} = ANY(${values}::uuid[]))`
        : any(values.map((v) => contains(f, alias, v)));
      return node.op === 'is_not' ? not(match) : match;
    }
    case 'multi': {
      if (node.op === 'contains_all') return contains(f, alias, node.values);
      const match = any(node.values.map((v) => contains(f, alias, [v])));
      return node.op === 'not_contains_any' ? not(match) : match;
    }
    case 'boolean':
      // Absent counts as false, so "is false" is "is not true".
      return node.value ? contains(f, alias, true) : not(contains(f, alias, true));
  }
  throw new Error('unreachable');
}

function compareBounds(expr: RawBuilder<unknown>, b: Bounds, type: 'text' | 'timestamptz'): Bool {
  const t = sql.raw(type);
  const parts: Bool[] = [];
  if (b.gt !== undefined) parts.push(sql<SqlBool>`(${expr} > ${b.gt}::${t})`);
  if (b.gte !== undefined) parts.push(sql<SqlBool>`(${expr} >= ${b.gte}::${t})`);
  if (b.lt !== undefined) parts.push(sql<SqlBool>`(${expr} < ${b.lt}::${t})`);
  if (b.lte !== undefined) parts.push(sql<SqlBool>`(${expr} <= ${b.lte}::${t})`);
  // Validated input always has a bound; none would mean "any non-empty value".
  return parts.length ? all(parts) : sql<SqlBool>`(${expr} IS NOT NULL)`;
}

/**
 * The SQL expression to order a list by a field: numeric for number/currency, text for other data
 * fields, the column for system fields (user columns as text, so cursor values compare as text).
 */
export function fieldSortExpression(
  field: Pick<FieldMeta, 'apiName' | 'type'>,
  alias: string,
): RawBuilder<string | number | Date | null> {
  const sys = systemField(field.apiName);
  if (sys) {
    const col = sql.ref(`${alias}.${sys.column}`);
    return sys.type === 'user' ? sql`(${col}::text)` : sql`${col}`;
  }
  const ref: FieldRef = { apiName: field.apiName, label: field.apiName, type: field.type };
  if (field.type === 'number' || field.type === 'currency') return numeric(ref, alias);
  return text(ref, alias);
}
