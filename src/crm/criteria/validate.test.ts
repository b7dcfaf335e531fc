import { describe, expect, it } from 'vitest';
import { AppError } from '../../errors.ts';
import type { FieldMeta } from '../values.ts';
import { ConditionError, registerConditionKind } from './registry.ts';
import type { CriteriaContext, ModuleInfo } from './types.ts';
import { validateCriteria } from './validate.ts';

const field = (apiName: string, type: FieldMeta['type'], options: FieldMeta['options'] = {}): FieldMeta => ({
  apiName,
  label: apiName.replace('_', ' '),
  type,
  required: false,
  options,
});

const accounts: ModuleInfo = {
  id: '00000000-0000-4000-8000-00000000000a',
  apiName: 'accounts',
  fields: [field('account_name', 'text'), field('industry', 'picklist', { values: ['Banking', 'Retail'] })],
};
const contacts: ModuleInfo = {
  id: '00000000-0000-4000-8000-00000000000c',
  apiName: 'contacts',
  fields: [
    field('last_name', 'text'),
    field('email', 'email'),
    field('amount', 'currency'),
    field('close_date', 'date'),
    field('last_call', 'datetime'),
    field('stage', 'picklist', { values: ['New', 'Won', 'Lost'] }),
    field('tags', 'multi_picklist', { values: ['a', 'b'] }),
    field('vip', 'boolean'),
    field('account_id', 'lookup', { module: 'accounts' }),
    field('orphan_id', 'lookup', { module: 'gone' }),
    field('manager', 'user'),
  ],
};
const ctx: CriteriaContext = {
  orgId: '00000000-0000-4000-8000-000000000001',
  userId: '00000000-0000-4000-8000-000000000002',
  timeZone: 'Europe/Berlin',
  now: new Date('2026-01-01T12:00:00Z'),
  module: contacts,
  relatedModule: (name) => (name === 'accounts' ? accounts : undefined),
};

const UUID = '3f0c8a52-7e3b-4c1d-9a6e-2b5d8c9e0f11';

function details(criteria: unknown) {
  try {
    validateCriteria(criteria, ctx);
  } catch (e) {
    expect(e).toBeInstanceOf(AppError);
    expect((e as AppError).code).toBe('invalid_criteria');
    return (e as AppError).details;
  }
  throw new Error('criteria was accepted');
}
const one = (cond: unknown) => details({ conditions: [cond] });

describe('validateCriteria accepts', () => {
  it('field, system and related conditions, and returns a typed AST', () => {
    const ast = validateCriteria(
      {
        conditions: [
          { field: 'last_name', op: 'is', value: ' Smith ' },
          { field: 'owner', op: 'is', value: ['me', UUID.toUpperCase()] },
          { field: 'account_id.industry', op: 'is', value: ['banking'] },
          { field: 'created_at', op: 'in_last_n_days', value: 7 },
        ],
        pattern: '(1 or 2) and 3 and 4',
      },
      ctx,
    );
    expect(ast.conditions[0]).toMatchObject({ type: 'field', category: 'text', op: 'is', values: ['Smith'] });
    expect(ast.conditions[1]).toMatchObject({
      type: 'field',
      field: { apiName: 'owner', column: 'owner_id' },
      category: 'choice',
      values: ['me', UUID],
    });
    expect(ast.conditions[2]).toMatchObject({
      type: 'related',
      lookup: { apiName: 'account_id' },
      module: { id: accounts.id, apiName: 'accounts' },
      condition: { field: { apiName: 'industry' }, category: 'choice', values: ['Banking'] },
    });
    expect(ast.conditions[3]).toMatchObject({ category: 'date', op: 'in_last_n_days', operand: { n: 7 } });
    expect(ast.pattern.type).toBe('and');
  });

  it('datetime before/after an instant, read in the user zone when it has no offset', () => {
    const ast = validateCriteria(
      {
        conditions: [
          { field: 'last_call', op: 'before', value: '2026-03-01T10:00:00+02:00' },
          { field: 'last_call', op: 'after', value: '2026-03-01T10:00' },
          { field: 'last_call', op: 'after', value: '2026-03-01' },
        ],
      },
      ctx,
    );
    expect(
      ast.conditions.map((c) => (c.type === 'field' && c.category === 'date' ? c.operand : null)),
    ).toEqual([
      { instant: '2026-03-01T08:00:00.000Z' },
      { instant: '2026-03-01T09:00:00.000Z' },
      { day: '2026-03-01' },
    ]);
  });
});

describe('validateCriteria refuses, naming the condition', () => {
  it.each([
    [{ field: 'nope', op: 'is', value: 'x' }, 'unknown field "nope"'],
    [
      { field: 'amount', op: 'contains', value: 'x' },
      'operator "contains" is not allowed for a currency field',
    ],
    [{ field: 'vip', op: 'is_empty' }, 'operator "is_empty" is not allowed for a boolean field'],
    [{ field: 'last_name', op: 'is' }, 'operator "is" needs at least one value'],
    [{ field: 'last_name', op: 'contains', value: 3 }, 'operator "contains" needs a text value, got 3'],
    [{ field: 'last_name', op: 'contains', value: '   ' }, 'needs a non-empty text value'],
    [{ field: 'amount', op: 'gt', value: '10' }, 'operator "gt" needs a number, got "10"'],
    [{ field: 'amount', op: 'between', value: [5] }, 'operator "between" needs [from, to], two numbers'],
    [{ field: 'amount', op: 'between', value: [9, 5] }, 'the minimum 9 is greater than the maximum 5'],
    [{ field: 'stage', op: 'is', value: ['Open'] }, '"Open" is not in the list of stage (New, Won, Lost)'],
    [{ field: 'tags', op: 'contains_all', value: ['a', 'z'] }, '"z" is not in the list of tags'],
    [
      { field: 'close_date', op: 'is', value: '2026-02-30' },
      'the value must be a date (YYYY-MM-DD), got "2026-02-30"',
    ],
    [
      { field: 'close_date', op: 'before', value: '2026-02-01T10:00:00Z' },
      'must be a date (YYYY-MM-DD), got',
    ],
    [
      { field: 'last_call', op: 'before', value: 'soon' },
      'must be a date (YYYY-MM-DD) or an ISO-8601 date-time',
    ],
    [{ field: 'last_call', op: 'after', value: '2026-13-01T10:00' }, 'is not a valid ISO-8601 date-time'],
    [{ field: 'close_date', op: 'between', value: ['2026-02-03', '2026-02-01'] }, 'is after the second date'],
    [{ field: 'close_date', op: 'is', value: '0999-01-01' }, 'between 1000-01-01 and 9998-12-31'],
    [{ field: 'close_date', op: 'in_last_n_days', value: 0 }, 'needs N, a whole number of days from 1'],
    [{ field: 'close_date', op: 'in_next_n_days', value: 1.5 }, 'needs N, a whole number of days from 1'],
    [{ field: 'close_date', op: 'older_than_n_days' }, 'needs N, a whole number of days from 1'],
    [{ field: 'close_date', op: 'today', value: 3 }, 'operator "today" takes no value, got 3'],
    [{ field: 'vip', op: 'is', value: 'yes' }, 'operator "is" needs true or false, got "yes"'],
    [{ field: 'account_id', op: 'is', value: ['not-a-uuid'] }, '"not-a-uuid" is not a record id'],
    [{ field: 'manager', op: 'is', value: ['boss'] }, '"boss" is not a user id (or \'me\')'],
    [{ field: 'owner', op: 'contains', value: 'x' }, 'operator "contains" is not allowed for a user field'],
    [{ field: 'last_name.x', op: 'is', value: 'x' }, '"last_name" is not a lookup field'],
    [{ field: 'account_id.nope', op: 'is', value: 'x' }, 'unknown field "nope" in accounts'],
    [{ field: 'account_id.industry.x', op: 'is', value: 'x' }, 'unknown field "industry.x" in accounts'],
    [
      { field: 'orphan_id.x', op: 'is', value: 'x' },
      'the module "gone" that "orphan_id" looks up is unknown',
    ],
    [
      { field: 'account_id.industry', op: 'is', value: ['Mining'] },
      '"Mining" is not in the list of industry',
    ],
    [{ op: 'is', value: 'x' }, '"field" must be a field name'],
    [{ field: 'last_name' }, '"op" must be an operator name'],
    ['last_name is x', 'must be an object'],
    [{ kind: 'nope' }, 'unknown condition kind "nope"'],
  ])('%j', (cond, message) => {
    const d = one(cond);
    expect(d).toHaveLength(1);
    expect(d[0].path).toBe('conditions[0]');
    expect(d[0].message).toMatch(/^condition 1: /);
    expect(d[0].message).toContain(message);
  });

  it('reports every bad condition with its own number', () => {
    const d = details({
      conditions: [
        { field: 'last_name', op: 'is', value: 'ok' },
        { field: 'nope', op: 'is', value: 'x' },
        { field: 'amount', op: 'gt', value: null },
      ],
    });
    expect(d.map((x) => x.path)).toEqual(['conditions[1]', 'conditions[2]']);
    expect(d[0].message).toBe('condition 2: unknown field "nope"');
    expect(d[1].message).toBe('condition 3: operator "gt" needs a number, got null');
  });

  it('refuses a malformed criteria as a whole', () => {
    expect(details(null)[0].message).toBe('criteria must be an object with "conditions"');
    expect(details({ conditions: [] })[0]).toEqual({
      path: 'conditions',
      message: 'at least one condition is needed',
    });
    const many = Array.from({ length: 51 }, () => ({ field: 'vip', op: 'is', value: true }));
    expect(details({ conditions: many })[0].message).toBe('at most 50 conditions are allowed');
    expect(details({ conditions: [{ field: 'vip', op: 'is', value: true }], pattern: 1 })[0].path).toBe(
      'pattern',
    );
  });

  it('checks the pattern against the conditions', () => {
    const d = details({
      conditions: [
        { field: 'vip', op: 'is', value: true },
        { field: 'vip', op: 'is', value: false },
      ],
      pattern: '1 or 3',
    });
    expect(d[0]).toEqual({
      path: 'pattern',
      message: 'condition 3 at position 6 does not exist (there are 2 conditions)',
    });
    expect(
      details({
        conditions: [
          { field: 'vip', op: 'is', value: true },
          { field: 'vip', op: 'is', value: true },
        ],
        pattern: '',
      })[0].message,
    ).toBe('the pattern is empty');
  });
});

describe('condition kinds', () => {
  registerConditionKind<{ minutes: number }>('test_kind_validate', {
    validate(cond) {
      if (typeof cond.minutes !== 'number') throw new ConditionError('"minutes" must be a number');
      return { minutes: cond.minutes };
    },
    compile: () => {
      throw new Error('not used here');
    },
  });

  it('are accepted anywhere in a criteria and pattern', () => {
    const ast = validateCriteria(
      {
        conditions: [
          { field: 'vip', op: 'is', value: true },
          { kind: 'test_kind_validate', minutes: 5 },
        ],
        pattern: '1 or 2',
      },
      ctx,
    );
    expect(ast.conditions[1]).toEqual({ type: 'kind', kind: 'test_kind_validate', node: { minutes: 5 } });
  });

  it('report their own validation errors with the condition number', () => {
    const d = details({
      conditions: [{ field: 'vip', op: 'is', value: true }, { kind: 'test_kind_validate' }],
    });
    expect(d).toEqual([{ path: 'conditions[1]', message: 'condition 2: "minutes" must be a number' }]);
  });

  it('refuses a second registration of the same kind', () => {
    expect(() =>
      registerConditionKind('test_kind_validate', { validate: () => 1, compile: () => null as never }),
    ).toThrow(/already registered/);
  });
});
