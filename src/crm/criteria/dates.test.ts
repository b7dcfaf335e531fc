import { describe, expect, it } from 'vitest';
import { addDays, dayRangeToInstants, localDayStart, localToday, relativeDayRange } from './dates.ts';
import { dateBounds } from './semantics.ts';
import type { CriteriaContext, FieldRef, RelativeOp } from './types.ts';

const NZ = 'Pacific/Auckland';
const LA = 'America/Los_Angeles';
// Thursday 2026-01-01 12:00 UTC: already Friday 2 January in Auckland (UTC+13), still Thursday
// morning 1 January in Los Angeles (UTC-8).
const NOW = new Date('2026-01-01T12:00:00.000Z');

const days = (op: RelativeOp, tz: string, now = NOW, n?: number) => relativeDayRange(op, n, tz, now);

describe('relative day ranges', () => {
  it('use the local date of the user', () => {
    expect(localToday(NZ, NOW)).toBe('2026-01-02');
    expect(localToday(LA, NOW)).toBe('2026-01-01');
    expect(localToday('UTC', NOW)).toBe('2026-01-01');
    expect(days('today', NZ)).toEqual({ from: '2026-01-02', to: '2026-01-02' });
    expect(days('yesterday', NZ)).toEqual({ from: '2026-01-01', to: '2026-01-01' });
    expect(days('tomorrow', LA)).toEqual({ from: '2026-01-02', to: '2026-01-02' });
    expect(days('yesterday', LA)).toEqual({ from: '2025-12-31', to: '2025-12-31' });
  });

  it('weeks are ISO weeks starting on Monday', () => {
    expect(days('this_week', LA)).toEqual({ from: '2025-12-29', to: '2026-01-04' });
    expect(days('this_week', NZ)).toEqual({ from: '2025-12-29', to: '2026-01-04' });
    expect(days('last_week', LA)).toEqual({ from: '2025-12-22', to: '2025-12-28' });
    expect(days('next_week', LA)).toEqual({ from: '2026-01-05', to: '2026-01-11' });
    // Sunday night in Auckland is still the week that began on Monday; Monday starts a new one.
    const sundayNz = new Date('2026-01-04T10:59:00.000Z'); // 23:59 Sunday in Auckland
    expect(days('this_week', NZ, sundayNz)).toEqual({ from: '2025-12-29', to: '2026-01-04' });
    const mondayNz = new Date('2026-01-04T11:00:00.000Z'); // 00:00 Monday in Auckland
    expect(days('this_week', NZ, mondayNz)).toEqual({ from: '2026-01-05', to: '2026-01-11' });
  });

  it('months and years', () => {
    expect(days('this_month', LA)).toEqual({ from: '2026-01-01', to: '2026-01-31' });
    expect(days('last_month', LA)).toEqual({ from: '2025-12-01', to: '2025-12-31' });
    expect(days('next_month', LA)).toEqual({ from: '2026-02-01', to: '2026-02-28' });
    expect(days('this_year', LA)).toEqual({ from: '2026-01-01', to: '2026-12-31' });
    expect(days('last_year', LA)).toEqual({ from: '2025-01-01', to: '2025-12-31' });
    // New Year's Eve in Los Angeles is already next year in Auckland.
    const eve = new Date('2025-12-31T20:00:00.000Z');
    expect(days('this_year', LA, eve)).toEqual({ from: '2025-01-01', to: '2025-12-31' });
    expect(days('this_year', NZ, eve)).toEqual({ from: '2026-01-01', to: '2026-12-31' });
    // From the 31st, last month is still the whole previous month.
    const march31 = new Date('2024-03-31T12:00:00.000Z');
    expect(days('last_month', 'UTC', march31)).toEqual({ from: '2024-02-01', to: '2024-02-29' });
    expect(days('next_month', 'UTC', march31)).toEqual({ from: '2024-04-01', to: '2024-04-30' });
  });

  it('N days', () => {
    expect(days('in_last_n_days', LA, NOW, 7)).toEqual({ from: '2025-12-25', to: '2026-01-01' });
    expect(days('in_next_n_days', NZ, NOW, 3)).toEqual({ from: '2026-01-02', to: '2026-01-05' });
    // Older than 30 days: before today − 30 (2025-12-02), so up to 2025-12-01.
    expect(days('older_than_n_days', LA, NOW, 30)).toEqual({ to: '2025-12-01' });
  });

  it('datetime ranges are the UTC instants of the local days', () => {
    expect(dayRangeToInstants(days('today', NZ), NZ)).toEqual({
      gte: '2026-01-01T11:00:00.000Z',
      lt: '2026-01-02T11:00:00.000Z',
    });
    expect(dayRangeToInstants(days('today', LA), LA)).toEqual({
      gte: '2026-01-01T08:00:00.000Z',
      lt: '2026-01-02T08:00:00.000Z',
    });
    expect(dayRangeToInstants(days('older_than_n_days', LA, NOW, 30), LA)).toEqual({
      lt: '2025-12-02T08:00:00.000Z',
    });
  });
});

describe('daylight saving changes', () => {
  const hours = (r: { gte?: string; lt?: string }) => (Date.parse(r.lt!) - Date.parse(r.gte!)) / 3_600_000;

  it('a spring-forward day in Los Angeles has 23 hours', () => {
    const now = new Date('2026-03-08T20:00:00.000Z'); // 13:00 PDT, the day clocks went forward
    const today = dayRangeToInstants(days('today', LA, now), LA);
    expect(today).toEqual({ gte: '2026-03-08T08:00:00.000Z', lt: '2026-03-09T07:00:00.000Z' });
    expect(hours(today)).toBe(23);
    // The week that contains it starts at PST midnight and ends at PDT midnight.
    expect(dayRangeToInstants(days('this_week', LA, now), LA)).toEqual({
      gte: '2026-03-02T08:00:00.000Z',
      lt: '2026-03-09T07:00:00.000Z',
    });
  });

  it('a fall-back day in Auckland has 25 hours', () => {
    const now = new Date('2026-04-05T00:00:00.000Z'); // 12:00 NZST, the day clocks went back
    const today = dayRangeToInstants(days('today', NZ, now), NZ);
    expect(today).toEqual({ gte: '2026-04-04T11:00:00.000Z', lt: '2026-04-05T12:00:00.000Z' });
    expect(hours(today)).toBe(25);
    expect(dayRangeToInstants(days('yesterday', NZ, now), NZ)).toEqual({
      gte: '2026-04-03T11:00:00.000Z',
      lt: '2026-04-04T11:00:00.000Z',
    });
  });

  it('a local day whose midnight does not exist starts at the first time that does', () => {
    // Chile moves clocks from 00:00 to 01:00 on the first Sunday of September.
    expect(localDayStart('2026-09-06', 'America/Santiago')).toBe('2026-09-06T04:00:00.000Z');
    expect(localDayStart('2026-09-07', 'America/Santiago')).toBe('2026-09-07T03:00:00.000Z');
  });

  it('day arithmetic is calendar arithmetic', () => {
    expect(addDays('2026-03-08', 1)).toBe('2026-03-09');
    expect(addDays('2024-02-28', 1)).toBe('2024-02-29');
    expect(addDays('2026-01-01', -1)).toBe('2025-12-31');
  });
});

describe('dateBounds', () => {
  const ctx = { timeZone: LA, now: NOW, userId: 'u' } as CriteriaContext;
  const date: FieldRef = { apiName: 'd', label: 'D', type: 'date' };
  const datetime: FieldRef = { apiName: 't', label: 'T', type: 'datetime' };

  it('date fields compare local days', () => {
    expect(dateBounds(date, 'is', { day: '2026-02-01' }, ctx)).toEqual({
      gte: '2026-02-01',
      lte: '2026-02-01',
    });
    expect(dateBounds(date, 'before', { day: '2026-02-01' }, ctx)).toEqual({ lt: '2026-02-01' });
    expect(dateBounds(date, 'after', { day: '2026-02-01' }, ctx)).toEqual({ gt: '2026-02-01' });
    expect(dateBounds(date, 'today', {}, ctx)).toEqual({ gte: '2026-01-01', lte: '2026-01-01' });
  });

  it('datetime fields compare the instants of local days, or a given instant', () => {
    expect(dateBounds(datetime, 'is', { day: '2026-02-01' }, ctx)).toEqual({
      gte: '2026-02-01T08:00:00.000Z',
      lt: '2026-02-02T08:00:00.000Z',
    });
    expect(dateBounds(datetime, 'before', { day: '2026-02-01' }, ctx)).toEqual({
      lt: '2026-02-01T08:00:00.000Z',
    });
    expect(dateBounds(datetime, 'after', { day: '2026-02-01' }, ctx)).toEqual({
      gte: '2026-02-02T08:00:00.000Z',
    });
    expect(dateBounds(datetime, 'after', { instant: '2026-02-01T10:00:00.000Z' }, ctx)).toEqual({
      gt: '2026-02-01T10:00:00.000Z',
    });
    expect(dateBounds(datetime, 'between', { from: '2026-02-01', to: '2026-02-03' }, ctx)).toEqual({
      gte: '2026-02-01T08:00:00.000Z',
      lt: '2026-02-04T08:00:00.000Z',
    });
  });
});
