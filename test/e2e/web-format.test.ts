// The web UI's pure helpers: time zone conversions for datetime inputs, Intl formatting in the
// user's locale, and combining a view's criteria with an ad-hoc filter.
import { describe, expect, it } from 'vitest';
import { combineCriteria, conditionForApi, fromFormValue, toFormValue } from '../../web/src/fields.ts';
import { isoToLocalInput, localInputToIso, makeFormatter, todayIn } from '../../web/src/format.ts';
import type { Field } from '../../web/src/types.ts';

describe('datetime inputs in the user time zone', () => {
  it('round-trips wall-clock times, across daylight saving changes', () => {
    for (const tz of ['Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'UTC', 'Pacific/Auckland']) {
      for (const iso of [
        '2025-01-15T09:30:00.000Z',
        '2025-07-01T23:45:00.000Z',
        '2025-03-30T01:30:00.000Z',
      ]) {
        expect(localInputToIso(isoToLocalInput(iso, tz), tz)).toBe(iso);
      }
    }
    expect(isoToLocalInput('2025-07-01T12:00:00.000Z', 'Europe/Berlin')).toBe('2025-07-01T14:00');
    expect(isoToLocalInput('2025-01-01T12:00:00.000Z', 'America/New_York')).toBe('2025-01-01T07:00');
    expect(localInputToIso('2025-01-01T07:00', 'America/New_York')).toBe('2025-01-01T12:00:00.000Z');
    expect(todayIn('Pacific/Auckland', new Date('2025-01-01T12:00:00Z'))).toBe('2025-01-02');
    expect(localInputToIso('garbage', 'UTC')).toBeNull();
  });
});

describe('formatting in the user locale', () => {
  it('formats numbers, money, dates and instants with Intl', () => {
    const us = makeFormatter({ locale: 'en-US', timeZone: 'America/Los_Angeles', currency: 'USD' });
    expect(us.currency(1234.5)).toBe('$1,234.50');
    expect(us.number(1234567.25)).toBe('1,234,567.25');
    // A calendar date never shifts with the time zone.
    expect(us.date('2025-03-01')).toBe('Mar 1, 2025');
    expect(us.dateTime('2025-03-01T02:00:00Z')).toMatch(/^Feb 28, 2025, 6:00\sPM$/);
    const de = makeFormatter({ locale: 'de-DE', timeZone: 'Europe/Berlin', currency: 'EUR' });
    expect(de.currency(1234.5)).toMatch(/^1\.234,50\s€$/);
    expect(de.dateTime('2025-03-01T02:00:00Z')).toBe('01.03.2025, 03:00');
    expect(us.currency('not a number')).toBe('');
    const bad = makeFormatter({ locale: 'xx-invalid-@@', timeZone: 'Nowhere/Land', currency: 'usd' });
    expect(bad.currency(1)).toBe('$1.00');
  });
});

describe('form values and criteria', () => {
  const field = (type: Field['type'], extra: Partial<Field> = {}): Field => ({
    id: 'f',
    apiName: 'x',
    label: 'X',
    type,
    required: false,
    options: {},
    isCustom: false,
    position: 0,
    ...extra,
  });

  it('converts between API values and inputs', () => {
    expect(fromFormValue(field('number'), '12.5', 'UTC')).toBe(12.5);
    expect(fromFormValue(field('text'), '  ', 'UTC')).toBeNull();
    expect(fromFormValue(field('multi_picklist'), [], 'UTC')).toBeNull();
    expect(fromFormValue(field('lookup'), { id: 'abc', displayName: 'A' }, 'UTC')).toBe('abc');
    expect(fromFormValue(field('datetime'), '2025-07-01T14:00', 'Europe/Berlin')).toBe(
      '2025-07-01T12:00:00.000Z',
    );
    expect(toFormValue(field('datetime'), '2025-07-01T12:00:00.000Z', undefined, 'Europe/Berlin')).toBe(
      '2025-07-01T14:00',
    );
    expect(conditionForApi('currency', { field: 'x', op: 'between', value: ['1', '2.5'] })).toEqual({
      field: 'x',
      op: 'between',
      value: [1, 2.5],
    });
    expect(conditionForApi('date', { field: 'x', op: 'today', value: 'ignored' })).toEqual({
      field: 'x',
      op: 'today',
    });
  });

  it("ANDs a view's criteria with an ad-hoc filter, renumbering the second pattern", () => {
    const a = {
      conditions: [
        { field: 'a', op: 'is_empty' },
        { field: 'b', op: 'is_empty' },
      ],
      pattern: '1 or 2',
    };
    const b = {
      conditions: [
        { field: 'c', op: 'is_empty' },
        { field: 'd', op: 'is_empty' },
      ],
    };
    expect(combineCriteria(a, b)).toEqual({
      conditions: [...a.conditions, ...b.conditions],
      pattern: '(1 or 2) and (3 and 4)',
    });
    expect(combineCriteria(null, b)).toBe(b);
    expect(combineCriteria(a, { conditions: [] })).toBe(a);
    expect(combineCriteria(null, undefined)).toBeNull();
  });
});
