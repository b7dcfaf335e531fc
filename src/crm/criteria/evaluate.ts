import { conditionKind } from './registry.ts';
import { type Bounds, dateBounds, foldCase, NEGATIVE_OPS, resolveIds, withinBounds } from './semantics.ts';
import type {
  ConditionNode,
  CriteriaAst,
  CriteriaContext,
  EvalRecord,
  FieldNode,
  PatternNode,
} from './types.ts';

// The in-memory twin of compile.ts: the same meaning, checked against it by a property test on a
// real Postgres. Values are assumed canonical (values.ts), as the SQL assumes.

/**
 * Does the record match? `related` holds the records that lookup fields point to, by id; a lookup
 * whose record is missing (or of another module, when module_id is given) matches no related condition.
 */
export function evaluateCriteria(
  ast: CriteriaAst,
  ctx: CriteriaContext,
  record: EvalRecord,
  related: ReadonlyMap<string, EvalRecord> = new Map(),
): boolean {
  const results = new Map<number, boolean>();
  const result = (n: number) => {
    let r = results.get(n);
    if (r === undefined) {
      r = evaluateCondition(ast.conditions[n - 1], ctx, record, related);
      results.set(n, r);
    }
    return r;
  };
  const walk = (p: PatternNode): boolean =>
    p.type === 'ref' ? result(p.n) : p.type === 'and' ? p.children.every(walk) : p.children.some(walk);
  return walk(ast.pattern);
}

function evaluateCondition(
  c: ConditionNode,
  ctx: CriteriaContext,
  record: EvalRecord,
  related: ReadonlyMap<string, EvalRecord>,
): boolean {
  if (c.type === 'field') return evaluateField(c, ctx, record);
  if (c.type === 'related') {
    const id = record.data[c.lookup.apiName];
    const target = typeof id === 'string' ? related.get(id) : undefined;
    if (!target || (target.module_id !== undefined && target.module_id !== c.module.id)) return false;
    return evaluateField(c.condition, ctx, target);
  }
  const impl = conditionKind(c.kind);
  if (!impl) throw new Error(`Condition kind "${c.kind}" is not registered`);
  if (!impl.evaluate) throw new Error(`Condition kind "${c.kind}" cannot be evaluated in memory`);
  return impl.evaluate(c.node, ctx, record);
}

/** The field's value as SQL sees it: columns (timestamps as ISO strings) or data[apiName]. */
function fieldValue(node: FieldNode, record: EvalRecord): unknown {
  const col = node.field.column;
  if (!col)
    return Object.hasOwn(record.data, node.field.apiName) ? record.data[node.field.apiName] : undefined;
  const v = record[col];
  return v instanceof Date ? v.toISOString() : (v ?? undefined);
}

// Bounds depend only on the node and the context; computing them once per (node, ctx) rather than
// once per record keeps evaluating a long list cheap.
const boundsCache = new WeakMap<FieldNode, { ctx: CriteriaContext; bounds: Bounds }>();

function cachedBounds(node: FieldNode & { category: 'date' }, ctx: CriteriaContext): Bounds {
  const hit = boundsCache.get(node);
  if (hit && hit.ctx === ctx) return hit.bounds;
  const bounds = dateBounds(node.field, node.op, node.operand, ctx);
  boundsCache.set(node, { ctx, bounds });
  return bounds;
}

function evaluateField(node: FieldNode, ctx: CriteriaContext, record: EvalRecord): boolean {
  const v = fieldValue(node, record);
  const negate = NEGATIVE_OPS.has(node.op);
  switch (node.category) {
    case 'empty':
      return (v === undefined) === (node.op === 'is_empty');
    case 'text': {
      // An empty field never matches a positive operator, so always matches a negative one.
      if (typeof v !== 'string') return negate;
      const s = foldCase(v);
      const needles = node.values.map(foldCase);
      const match =
        node.op === 'is' || node.op === 'is_not'
          ? needles.includes(s)
          : node.op === 'starts_with'
            ? s.startsWith(needles[0])
            : node.op === 'ends_with'
              ? s.endsWith(needles[0])
              : s.includes(needles[0]);
      return match !== negate;
    }
    case 'number': {
      if (typeof v !== 'number') return negate;
      const [a, b] = node.values;
      switch (node.op) {
        case 'eq':
        case 'neq':
          return (v === a) !== negate;
        case 'lt':
          return v < a;
        case 'lte':
          return v <= a;
        case 'gt':
          return v > a;
        case 'gte':
          return v >= a;
        case 'between':
        case 'not_between':
          return (v >= a && v <= b) !== negate;
      }
      break;
    }
    case 'date': {
      if (typeof v !== 'string') return negate;
      return withinBounds(v, cachedBounds(node, ctx)) !== negate;
    }
    case 'choice': {
      const values = node.field.type === 'user' ? resolveIds(node.values, ctx) : node.values;
      const match = typeof v === 'string' && values.includes(v);
      return match !== (node.op === 'is_not');
    }
    case 'multi': {
      const items = Array.isArray(v) ? v : [];
      if (node.op === 'contains_all') return node.values.every((x) => items.includes(x));
      return node.values.some((x) => items.includes(x)) !== negate;
    }
    case 'boolean':
      return (v === true) === node.value;
  }
  throw new Error('unreachable');
}
