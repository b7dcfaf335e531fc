import { DateTime } from 'luxon';
import { z } from 'zod';
import { AppError, type ErrorDetail } from '../../errors.ts';
import { type FieldMeta, isValidDate, UUID_RE } from '../values.ts';
import { isValidTimeZone, N_DAYS_OPS, RELATIVE_OPS } from './dates.ts';
import { OPERATORS, systemField } from './operators.ts';
import { allOf, parsePattern } from './pattern.ts';
import { ConditionError, conditionKind } from './registry.ts';
import {
  type ConditionNode,
  type CriteriaAst,
  type CriteriaContext,
  type DateOp,
  type DateOperand,
  type FieldNode,
  type FieldPredicate,
  type FieldRef,
  fieldConditionSchema,
  kindConditionSchema,
  MAX_CONDITIONS,
  type ModuleInfo,
  type RelativeOp,
} from './types.ts';

const MAX_LIST = 100; // values in one "any of" list
const MAX_TEXT = 1000;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are the point
const CONTROL_CHARS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
const LONE_SURROGATE = /\p{Cs}/u;
const MAX_DAYS = 100_000;
// Date operands stay within years 1000–9998, so that every bound computed from them (± a day, ± the
// time-zone offset) is still a 4-digit-year ISO string that sorts as text and parses in Postgres.
const MIN_DAY = '1000-01-01';
const MAX_DAY = '9998-12-31';

const topSchema = z.object(
  {
    conditions: z
      .array(z.unknown(), { error: '"conditions" must be a list' })
      .min(1, { error: 'at least one condition is needed' })
      .max(MAX_CONDITIONS, { error: `at most ${MAX_CONDITIONS} conditions are allowed` }),
    pattern: z.string({ error: '"pattern" must be a string' }).max(2000).nullish(),
  },
  { error: 'criteria must be an object with "conditions"' },
);

const fail = (message: string): never => {
  throw new ConditionError(message);
};

const show = (v: unknown) => {
  const s = v === undefined ? 'nothing' : JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
};

const typeName = (f: FieldRef) => f.type.replace('_', ' ');

/**
 * Checks a criteria (JSON form) against the module's fields and returns the typed AST. Throws
 * AppError('invalid_criteria') with one detail per bad condition: { path: 'conditions[i]',
 * message: 'condition i+1: …' }, or { path: 'pattern' } for the pattern.
 */
export function validateCriteria(input: unknown, ctx: CriteriaContext): CriteriaAst {
  if (!isValidTimeZone(ctx.timeZone)) throw new Error(`Unknown time zone "${ctx.timeZone}"`);
  const top = topSchema.safeParse(input);
  if (!top.success) {
    const details: ErrorDetail[] = top.error.issues.map((i) => ({
      path: i.path.join('.') || 'criteria',
      message: i.message,
    }));
    throw new AppError('invalid_criteria', `Invalid criteria: ${details[0].message}`, details);
  }
  const conditions: ConditionNode[] = [];
  const details: ErrorDetail[] = [];
  top.data.conditions.forEach((raw, i) => {
    try {
      conditions.push(validateCondition(raw, ctx));
    } catch (e) {
      if (!(e instanceof ConditionError)) throw e;
      details.push({ path: `conditions[${i}]`, message: `condition ${i + 1}: ${e.message}` });
    }
  });
  if (details.length > 0)
    throw new AppError(
      'invalid_criteria',
      `Invalid criteria: ${details.map((d) => d.message).join('; ')}`,
      details,
    );
  const pattern = top.data.pattern;
  return {
    conditions,
    pattern:
      pattern === undefined || pattern === null
        ? allOf(conditions.length)
        : parsePattern(pattern, conditions.length),
  };
}

function validateCondition(raw: unknown, ctx: CriteriaContext): ConditionNode {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('must be an object');
  if ('kind' in raw) {
    const parsed = kindConditionSchema.safeParse(raw);
    if (!parsed.success) return fail('"kind" must be a name');
    const impl = conditionKind(parsed.data.kind);
    if (!impl) return fail(`unknown condition kind "${parsed.data.kind}"`);
    return { type: 'kind', kind: parsed.data.kind, node: impl.validate(parsed.data, ctx) };
  }
  const parsed = fieldConditionSchema.safeParse(raw);
  if (!parsed.success) {
    const bad = parsed.error.issues[0].path[0];
    return fail(bad === 'op' ? '"op" must be an operator name' : '"field" must be a field name');
  }
  const { field: name, op, value } = parsed.data;
  const dot = name.indexOf('.');
  if (dot < 0) {
    const field = resolveField(ctx.module, name);
    if (!field) return fail(`unknown field "${name}"`);
    return fieldNode(field, op, value, ctx);
  }
  // lookupField.relatedField: one level only.
  const lookupName = name.slice(0, dot);
  const relatedName = name.slice(dot + 1);
  const lookup = resolveField(ctx.module, lookupName);
  if (!lookup) return fail(`unknown field "${lookupName}"`);
  if (lookup.meta.type !== 'lookup' || !lookup.meta.options.module)
    return fail(`"${lookupName}" is not a lookup field, so "${name}" means nothing`);
  const target = ctx.relatedModule(lookup.meta.options.module);
  if (!target)
    return fail(`the module "${lookup.meta.options.module}" that "${lookupName}" looks up is unknown`);
  const related = relatedName.includes('.') ? undefined : resolveField(target, relatedName);
  if (!related) return fail(`unknown field "${relatedName}" in ${target.apiName}`);
  return {
    type: 'related',
    lookup: lookup.ref,
    module: { id: target.id, apiName: target.apiName },
    condition: fieldNode(related, op, value, ctx),
  };
}

interface Resolved {
  ref: FieldRef;
  meta: FieldMeta;
}

function resolveField(mod: ModuleInfo, name: string): Resolved | undefined {
  const sys = systemField(name);
  if (sys) return { ref: sys, meta: { ...sys, required: false, options: {} } };
  const meta = mod.fields.find((f) => f.apiName === name);
  if (!meta) return undefined;
  return { ref: { apiName: meta.apiName, label: meta.label, type: meta.type }, meta };
}

function fieldNode({ ref, meta }: Resolved, op: string, value: unknown, ctx: CriteriaContext): FieldNode {
  const allowed = OPERATORS[ref.type];
  if (!allowed.includes(op))
    return fail(
      `operator "${op}" is not allowed for a ${typeName(ref)} field (use one of: ${allowed.join(', ')})`,
    );
  return { type: 'field', field: ref, ...predicate(meta, ref, op, value, ctx) };
}

function predicate(
  meta: FieldMeta,
  ref: FieldRef,
  op: string,
  value: unknown,
  ctx: CriteriaContext,
): FieldPredicate {
  if (op === 'is_empty' || op === 'is_not_empty') {
    noValue(op, value);
    return { category: 'empty', op };
  }
  switch (ref.type) {
    case 'text':
    case 'long_text':
    case 'email':
    case 'phone':
      if (op === 'is' || op === 'is_not') return { category: 'text', op, values: stringList(op, value) };
      return { category: 'text', op: op as 'contains', values: [oneString(op, value)] };
    case 'number':
    case 'currency':
      if (op === 'between' || op === 'not_between') {
        const [min, max] = pair(op, value, 'number', (v) => typeof v === 'number' && Number.isFinite(v)) as [
          number,
          number,
        ];
        if (min > max) fail(`the minimum ${min} is greater than the maximum ${max}`);
        return { category: 'number', op, values: [min, max] };
      }
      if (typeof value !== 'number' || !Number.isFinite(value))
        return fail(`operator "${op}" needs a number, got ${show(value)}`);
      return { category: 'number', op: op as 'eq', values: [value] };
    case 'date':
    case 'datetime':
      return { category: 'date', op: op as DateOp, operand: dateOperand(ref, op as DateOp, value, ctx) };
    case 'picklist':
      return { category: 'choice', op: op as 'is', values: picklistValues(meta, op, value) };
    case 'multi_picklist':
      return { category: 'multi', op: op as 'contains_any', values: picklistValues(meta, op, value) };
    case 'boolean':
      if (typeof value !== 'boolean') return fail(`operator "is" needs true or false, got ${show(value)}`);
      return { category: 'boolean', op: 'is', value };
    case 'lookup':
    case 'user': {
      const me = ref.type === 'user';
      const values = list(op, value).map((v) => {
        if (typeof v === 'string' && me && v.toLowerCase() === 'me') return 'me';
        if (typeof v !== 'string' || !UUID_RE.test(v))
          return fail(`${show(v)} is not a ${me ? "user id (or 'me')" : 'record id'}`);
        return v.toLowerCase();
      });
      return { category: 'choice', op: op as 'is', values: [...new Set(values)] };
    }
  }
}

function noValue(op: string, value: unknown) {
  if (value !== undefined && value !== null) fail(`operator "${op}" takes no value, got ${show(value)}`);
}

/** A list operand; a single value is accepted as a list of one. */
function list(op: string, value: unknown): unknown[] {
  const items = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  if (items.length === 0) return fail(`operator "${op}" needs at least one value`);
  if (items.length > MAX_LIST) return fail(`operator "${op}" takes at most ${MAX_LIST} values`);
  return items;
}

function oneString(op: string, value: unknown): string {
  if (typeof value !== 'string') return fail(`operator "${op}" needs a text value, got ${show(value)}`);
  // Stored values are trimmed, so surrounding spaces in the criteria could only make it miss.
  const s = value.trim();
  if (s === '') return fail(`operator "${op}" needs a non-empty text value`);
  if (s.length > MAX_TEXT) return fail(`the value is longer than ${MAX_TEXT} characters`);
  // Stored values never hold them (values.ts), and a NUL fails the whole query in Postgres.
  if (CONTROL_CHARS.test(s)) return fail('the value contains control characters');
  // Postgres would read a lone surrogate as U+FFFD and match what the evaluator does not.
  if (LONE_SURROGATE.test(s)) return fail('the value is not valid Unicode text');
  return s;
}

function stringList(op: string, value: unknown): string[] {
  return [...new Set(list(op, value).map((v) => oneString(op, v)))];
}

function picklistValues(meta: FieldMeta, op: string, value: unknown): string[] {
  const options = meta.options.values ?? [];
  const chosen = list(op, value).map((v) => {
    const match =
      typeof v === 'string' ? options.find((o) => o.toLowerCase() === v.trim().toLowerCase()) : undefined;
    return match ?? fail(`${show(v)} is not in the list of ${meta.label} (${options.join(', ')})`);
  });
  return [...new Set(chosen)];
}

function pair(op: string, value: unknown, what: string, ok: (v: unknown) => boolean): [unknown, unknown] {
  if (!Array.isArray(value) || value.length !== 2 || !ok(value[0]) || !ok(value[1]))
    return fail(`operator "${op}" needs [from, to], two ${what}s, got ${show(value)}`);
  return [value[0], value[1]];
}

function day(value: unknown, what: string): string {
  if (typeof value !== 'string' || !isValidDate(value))
    return fail(`${what} must be a date (YYYY-MM-DD), got ${show(value)}`);
  if (value < MIN_DAY || value > MAX_DAY) return fail(`${what} must be between ${MIN_DAY} and ${MAX_DAY}`);
  return value;
}

function dateOperand(ref: FieldRef, op: DateOp, value: unknown, ctx: CriteriaContext): DateOperand {
  if ((RELATIVE_OPS as readonly string[]).includes(op)) {
    if (!N_DAYS_OPS.includes(op as RelativeOp)) {
      noValue(op, value);
      return {};
    }
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_DAYS)
      return fail(
        `operator "${op}" needs N, a whole number of days from 1 to ${MAX_DAYS}, got ${show(value)}`,
      );
    return { n: value };
  }
  if (op === 'between') {
    const [a, b] = pair(op, value, 'date', (v) => typeof v === 'string');
    const from = day(a, 'the first date');
    const to = day(b, 'the second date');
    if (from > to) fail(`the first date ${from} is after the second date ${to}`);
    return { from, to };
  }
  // is, is_not, before, after. Datetime fields also take an instant for before/after.
  if (
    ref.type === 'datetime' &&
    (op === 'before' || op === 'after') &&
    typeof value === 'string' &&
    value.includes('T')
  ) {
    // An instant without an offset is a wall-clock time in the user's zone.
    const dt = DateTime.fromISO(value, { zone: ctx.timeZone });
    if (!dt.isValid) return fail(`${show(value)} is not a valid ISO-8601 date-time`);
    const iso = new Date(dt.toMillis()).toISOString();
    if (iso < `${MIN_DAY}T` || iso > `${MAX_DAY}T`)
      return fail(`the date-time must be between ${MIN_DAY} and ${MAX_DAY}`);
    return { instant: iso };
  }
  if (typeof value !== 'string' || !isValidDate(value)) {
    const instantToo = ref.type === 'datetime' && (op === 'before' || op === 'after');
    return fail(
      `the value must be a date (YYYY-MM-DD)${instantToo ? ' or an ISO-8601 date-time' : ''}, got ${show(value)}`,
    );
  }
  return { day: day(value, 'the value') };
}
