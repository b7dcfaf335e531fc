import { addDays, type DayRange, dayRangeToInstants, localDayStart, relativeDayRange } from './dates.ts';
import type { CriteriaContext, DateOp, DateOperand, FieldRef, RelativeOp } from './types.ts';

// What compile.ts and evaluate.ts share, so that SQL and the in-memory evaluator cannot drift apart
// on the parts that need the context (dates, 'me') or need care (case folding, LIKE escapes).

/** String bounds; all present bounds must hold. Dates compare as 'YYYY-MM-DD', datetimes as ISO UTC. */
export interface Bounds {
  gt?: string;
  gte?: string;
  lt?: string;
  lte?: string;
}

/** The bounds a date condition means ('is_not' gets those of 'is'; the caller negates). */
export function dateBounds(field: FieldRef, op: DateOp, operand: DateOperand, ctx: CriteriaContext): Bounds {
  const tz = ctx.timeZone;
  const days = (r: DayRange): Bounds => {
    if (field.type === 'date') return { gte: r.from, lte: r.to };
    const { gte, lt } = dayRangeToInstants(r, tz);
    return { gte, lt };
  };
  if ('n' in operand) return days(relativeDayRange(op as RelativeOp, operand.n, tz, ctx.now));
  if ('from' in operand) return days({ from: operand.from, to: operand.to });
  if ('instant' in operand) return op === 'before' ? { lt: operand.instant } : { gt: operand.instant };
  if ('day' in operand) {
    const d = operand.day;
    if (op === 'is' || op === 'is_not') return days({ from: d, to: d });
    if (field.type === 'date') return op === 'before' ? { lt: d } : { gt: d };
    // A datetime is before a day when it is before that local day starts, after it when at or after
    // the next local day starts.
    return op === 'before' ? { lt: localDayStart(d, tz) } : { gte: localDayStart(addDays(d, 1), tz) };
  }
  return days(relativeDayRange(op as RelativeOp, undefined, tz, ctx.now));
}

export function withinBounds(v: string, b: Bounds): boolean {
  return (
    (b.gt === undefined || v > b.gt) &&
    (b.gte === undefined || v >= b.gte) &&
    (b.lt === undefined || v < b.lt) &&
    (b.lte === undefined || v <= b.lte)
  );
}

/** 'me' in a user condition is the current user. */
export function resolveIds(values: string[], ctx: CriteriaContext): string[] {
  return [...new Set(values.map((v) => (v === 'me' ? ctx.userId.toLowerCase() : v)))];
}

/**
 * Case folding as Postgres lower() does it under a Unicode-aware locale (the embedded database uses
 * C.UTF-8): one character at a time (JS toLowerCase on a whole string is context-sensitive for
 * final sigma), with the single full-mapping exception İ → i (simple case mapping).
 */
export function foldCase(s: string): string {
  let out = '';
  for (const ch of s) out += ch === '\u0130' ? 'i' : ch.toLowerCase();
  return out;
}

/** Escapes LIKE wildcards (and the escape character itself) in a user's value. */
export function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export const NEGATIVE_OPS = new Set(['is_not', 'not_contains', 'neq', 'not_between', 'not_contains_any']);
