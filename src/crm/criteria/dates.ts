import { DateTime, IANAZone } from 'luxon';
import type { RelativeOp } from './types.ts';

// Relative dates are the user's local calendar days (IANA zone), computed from an injected `now`.
// A range is first a span of local days; `date` fields compare against those 'YYYY-MM-DD' bounds,
// `datetime` fields against the UTC instants [start of first day, start of the day after last).

/** Inclusive local days; a missing bound is open. */
export interface DayRange {
  from?: string;
  to?: string;
}

/** Half-open UTC instants, ISO-8601 with milliseconds (the canonical datetime form). */
export interface InstantRange {
  gte?: string;
  lt?: string;
}

export const RELATIVE_OPS: readonly RelativeOp[] = [
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
];

export const N_DAYS_OPS: readonly RelativeOp[] = ['in_last_n_days', 'in_next_n_days', 'older_than_n_days'];

export function isValidTimeZone(timeZone: string): boolean {
  return IANAZone.isValidZone(timeZone);
}

function zone(timeZone: string): IANAZone {
  if (!IANAZone.isValidZone(timeZone)) throw new Error(`Unknown time zone "${timeZone}"`);
  return IANAZone.create(timeZone);
}

const isoDate = (d: DateTime) => d.toFormat('yyyy-MM-dd');

/** Calendar arithmetic on 'YYYY-MM-DD' (no zone involved, so no DST surprises). */
export function addDays(date: string, days: number): string {
  return isoDate(DateTime.fromISO(date, { zone: 'utc' }).plus({ days }));
}

/** The user's local date at `now`. */
export function localToday(timeZone: string, now: Date): string {
  return isoDate(DateTime.fromJSDate(now, { zone: zone(timeZone) }));
}

/** The first instant of a local day (after a DST gap at midnight, the first time that exists). */
export function localDayStart(date: string, timeZone: string): string {
  const start = DateTime.fromISO(date, { zone: zone(timeZone) }).startOf('day');
  return new Date(start.toMillis()).toISOString();
}

/** The local days a relative operator covers (n only for the *_n_days ones). */
export function relativeDayRange(
  op: RelativeOp,
  n: number | undefined,
  timeZone: string,
  now: Date,
): DayRange {
  const today = DateTime.fromISO(localToday(timeZone, now), { zone: 'utc' });
  const span = (start: DateTime, unit: 'week' | 'month' | 'year'): DayRange => ({
    // luxon weeks are ISO weeks (Monday start) unless locale weeks are asked for.
    from: isoDate(start.startOf(unit)),
    to: isoDate(start.endOf(unit)),
  });
  const days = n ?? 0;
  switch (op) {
    case 'today':
      return { from: isoDate(today), to: isoDate(today) };
    case 'yesterday':
      return { from: isoDate(today.minus({ days: 1 })), to: isoDate(today.minus({ days: 1 })) };
    case 'tomorrow':
      return { from: isoDate(today.plus({ days: 1 })), to: isoDate(today.plus({ days: 1 })) };
    case 'this_week':
      return span(today, 'week');
    case 'last_week':
      return span(today.minus({ weeks: 1 }), 'week');
    case 'next_week':
      return span(today.plus({ weeks: 1 }), 'week');
    case 'this_month':
      return span(today, 'month');
    case 'last_month':
      return span(today.startOf('month').minus({ months: 1 }), 'month');
    case 'next_month':
      return span(today.startOf('month').plus({ months: 1 }), 'month');
    case 'this_year':
      return span(today, 'year');
    case 'last_year':
      return span(today.minus({ years: 1 }), 'year');
    case 'in_last_n_days':
      return { from: isoDate(today.minus({ days })), to: isoDate(today) };
    case 'in_next_n_days':
      return { from: isoDate(today), to: isoDate(today.plus({ days })) };
    case 'older_than_n_days':
      return { to: isoDate(today.minus({ days: days + 1 })) };
  }
}

/** Local days → the UTC instants they span. */
export function dayRangeToInstants(range: DayRange, timeZone: string): InstantRange {
  const out: InstantRange = {};
  if (range.from !== undefined) out.gte = localDayStart(range.from, timeZone);
  if (range.to !== undefined) out.lt = localDayStart(addDays(range.to, 1), timeZone);
  return out;
}
