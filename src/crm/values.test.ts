import { describe, expect, it } from 'vitest';
import type { FieldMeta } from './values.ts';
import { isValidEmail, normaliseData, normaliseValue } from './values.ts';

const f = (type: FieldMeta['type'], options: FieldMeta['options'] = {}, required = false): FieldMeta => ({
  apiName: 'x',
  label: 'X',
  type,
  required,
  options,
});

const ok = (field: FieldMeta, raw: unknown) => {
  const r = normaliseValue(field, raw);
  if (!r.ok) throw new Error(r.message);
  return r.value;
};
const err = (field: FieldMeta, raw: unknown) => {
  const r = normaliseValue(field, raw);
  return r.ok ? undefined : r.message;
};

describe('normaliseValue', () => {
  it('stores each type in its canonical form', () => {
    expect(ok(f('text'), '  Acme  ')).toBe('Acme');
    expect(ok(f('number'), '1,250.5')).toBe(1250.5);
    expect(ok(f('currency'), 10.005)).toBe(10.01);
    expect(ok(f('date'), '2024-02-29')).toBe('2024-02-29');
    expect(ok(f('datetime'), '2024-03-01T10:00:00+02:00')).toBe('2024-03-01T08:00:00.000Z');
    expect(ok(f('boolean'), 'yes')).toBe(true);
    expect(ok(f('boolean'), undefined)).toBe(false);
    expect(ok(f('picklist', { values: ['Hot', 'Cold'] }), 'hot')).toBe('Hot');
    expect(ok(f('multi_picklist', { values: ['A', 'B', 'C'] }), 'c; a')).toEqual(['A', 'C']);
    expect(ok(f('lookup'), '3F2504E0-4F89-11D3-9A0C-0305E82C3301')).toBe(
      '3f2504e0-4f89-11d3-9a0c-0305e82c3301',
    );
    expect(ok(f('text'), '   ')).toBeUndefined();
  });

  it('rejects bad values with a reason', () => {
    expect(err(f('date'), '2023-02-29')).toMatch(/not a valid date/);
    expect(err(f('number'), 'ten')).toMatch(/not a number/);
    expect(err(f('email'), 'a@b')).toMatch(/not a valid email/);
    expect(err(f('text'), 'a\r\nBcc: x@y.z')).toMatch(/single line/);
    expect(err(f('text'), `a${String.fromCharCode(0)}b`)).toMatch(/control/);
    expect(err(f('text'), 'x'.repeat(256))).toMatch(/longer than 255/);
    expect(err(f('picklist', { values: ['Hot'] }), 'Warm')).toMatch(/not one of/);
    expect(err(f('boolean'), 'maybe')).toMatch(/true or false/);
    expect(err(f('lookup'), 'abc')).toMatch(/not a valid id/);
    expect(err(f('datetime'), 'yesterday')).toMatch(/date-time/);
  });
});

describe('isValidEmail', () => {
  it('accepts ordinary and international addresses and refuses malformed ones', () => {
    for (const e of ['a@b.co', 'first.last+tag@sub.example.org', 'josé@exämple.de'])
      expect(isValidEmail(e)).toBe(true);
    for (const e of [
      '',
      'a',
      'a@',
      '@b.co',
      'a..b@c.co',
      'a b@c.co',
      `${'x'.repeat(65)}@b.co`,
      'a@b',
      'a@-b.co',
    ])
      expect(isValidEmail(e)).toBe(false);
  });
});

describe('normaliseData', () => {
  const fields = [
    f('text', {}, true),
    { ...f('number'), apiName: 'n', label: 'N' },
    { ...f('boolean'), apiName: 'b', label: 'B' },
  ];
  it('needs required fields on create but not on a partial edit', () => {
    expect(normaliseData(fields, {}, { partial: false }).errors.map((e) => e.path)).toEqual(['x']);
    expect(normaliseData(fields, { n: 3 }, { partial: true, existing: { x: 'kept' } })).toEqual({
      data: { x: 'kept', n: 3 },
      errors: [],
    });
  });
  it('names unknown fields', () => {
    expect(normaliseData(fields, { x: 'a', nope: 1 }, { partial: false }).errors).toEqual([
      { path: 'nope', message: 'unknown field "nope"' },
    ]);
  });
  it('removes a cleared value', () => {
    expect(normaliseData(fields, { n: '' }, { partial: true, existing: { x: 'a', n: 5 } }).data).toEqual({
      x: 'a',
    });
  });
});
