import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type CriteriaAst,
  type CriteriaContext,
  compileCriteria,
  type EvalRecord,
  evaluateCriteria,
  OPERATORS,
  validateCriteria,
} from '../../src/crm/criteria/index.ts';
import {
  contextFor,
  createOrg,
  field,
  insertRecords,
  loadRecords,
  type TestOrg,
} from '../../src/crm/criteria/test-fixtures.ts';
import { FIELD_TYPES } from '../../src/crm/metadata.service.ts';
import type { FieldMeta } from '../../src/crm/values.ts';
import { type Database, openDatabase } from '../../src/db/pool.ts';
import type { FieldType } from '../../src/db/schema.ts';
import { AppError } from '../../src/errors.ts';
import { cases, FUZZ_TIMEOUT, fuzzOptions, within } from './support.ts';

// Criteria arrive as JSON from any client (views, filters, audiences, the export query string).
// Random conditions, patterns and values against a module's fields: validation either accepts, and
// then the compiled SQL runs on the real Postgres (and, on a sample, selects exactly what the
// in-memory evaluator selects), or rejects with AppError('invalid_criteria') and a message per
// problem. Anything else (a TypeError, a Postgres error) is a bug.

const RUNS = cases(600);
const SAMPLE_EVERY = 2; // accepted cases also checked against the evaluator
const LIMIT_MS = 2_000;

// Every type but lookups, whose values are ids of real records.
const TYPES = FIELD_TYPES.filter((t) => t !== 'lookup');
const PICK = ['Alpha', 'Beta', 'Ünï', '50%_off'];
const MULTI = ['a', 'b', 'c'];
const ZONES = ['UTC', 'Pacific/Auckland', 'America/Los_Angeles', 'Asia/Kolkata', 'Pacific/Kiritimati'];
const ALL_OPS = [...new Set(Object.values(OPERATORS).flat())];

let database: Database;
let org: TestOrg;
let records: EvalRecord[];
let related: Map<string, EvalRecord>;
let lookupIds: string[];

const fieldsOfEveryType = (): FieldMeta[] =>
  TYPES.map((t) =>
    field(`f_${t}`, t, { values: t === 'picklist' ? PICK : t === 'multi_picklist' ? MULTI : undefined }),
  );

// Values that have broken text, number and date handling somewhere before.
const hostileString = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom(
    '',
    ' ',
    '%',
    '_',
    '\\',
    "'",
    '"',
    "'; DROP TABLE records; --",
    'a\u0000b',
    '\ud800',
    '\udfff x',
    'İ',
    'ß',
    'ǅ',
    'x'.repeat(1_000),
    'x'.repeat(1_001),
    'me',
    'ME',
    'Alpha',
    ' alpha ',
    '50%_off',
    'a',
    'true',
    '1e308',
    'NaN',
    '0000-01-01',
    '0999-12-31',
    '1000-01-01',
    '9998-12-31',
    '9999-12-31',
    '2026-02-29',
    '2024-02-29',
    '2026-13-01',
    '2026-03-29T02:30',
    '2026-03-29T02:30:00+14:00',
    '2026-01-01T00:00:00.123456789Z',
    '+275760-09-13T00:00:00Z',
    '-000001-01-01T00:00:00Z',
    'T',
    '2026-03-20T',
  ),
);
const hostileNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(0, -0, 1e308, -1e308, 5e-324, 1e15, 1e16, 2 ** 53 + 1, 0.1 + 0.2, 100_000, 100_001),
);
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  hostileNumber,
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.array(fc.oneof(hostileString, hostileNumber), { maxLength: 4 }),
  fc.tuple(hostileString, hostileString),
  fc.tuple(hostileNumber, hostileNumber),
  fc.constantFrom(
    Array.from({ length: 100 }, () => 'Alpha'),
    Array.from({ length: 101 }, () => 'Alpha'),
  ),
  fc.jsonValue({ maxDepth: 2 }),
);

const day = fc
  .date({ min: new Date('1000-01-01T00:00:00Z'), max: new Date('9998-12-31T00:00:00Z'), noInvalidDate: true })
  .map((d) => d.toISOString().slice(0, 10));
const sorted = <T>(a: fc.Arbitrary<T>) => fc.tuple(a, a).map(([x, y]) => (x <= y ? [x, y] : [y, x]));
const oneOrMany = <T>(a: fc.Arbitrary<T>) => fc.oneof(a, fc.array(a, { minLength: 1, maxLength: 4 }));
/** Text the validator must accept, however odd: wildcards, quotes, NUL, lone surrogates, 1,000 chars. */
const oddText = fc.oneof(
  fc.constantFrom(
    '%',
    '_',
    '\\',
    "'",
    'a\u0000b',
    '\ud800',
    'İ',
    'ß',
    'x'.repeat(1_000),
    'Alpha',
    '50%_off',
    "'; DROP TABLE records; --",
  ),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }).filter((t) => t.trim() !== ''),
);
const finite = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, 1e308, -1e308, 5e-324, 1e15, 2 ** 53 + 1, 0.1 + 0.2),
);

/** A value the operator accepts for the type (validation should pass). */
function validValue(type: FieldType, op: string): fc.Arbitrary<unknown> {
  const uuid = fc.oneof(
    fc.constantFrom(...lookupIds, ...org.users),
    fc.uuid().map((u) => u.toUpperCase()),
  );
  if (op === 'is_empty' || op === 'is_not_empty') return fc.constantFrom(undefined, null);
  if (op.endsWith('_n_days')) return fc.oneof(fc.integer({ min: 1, max: 30 }), fc.constantFrom(1, 100_000));
  switch (type) {
    case 'text':
    case 'long_text':
    case 'email':
    case 'phone':
      return op === 'is' || op === 'is_not' ? oneOrMany(oddText) : oddText;
    case 'number':
    case 'currency':
      return op.includes('between') ? sorted(finite) : finite;
    case 'date':
    case 'datetime':
      if (op === 'between') return sorted(day);
      if (op === 'is' || op === 'is_not') return day;
      if (op === 'before' || op === 'after')
        return type === 'date'
          ? day
          : fc.oneof(
              day,
              fc.constantFrom(
                '2026-03-29T02:30',
                '2026-03-29T02:30:00+14:00',
                '2026-01-01T00:00:00.123456789Z',
                '1000-01-01T00:00:00+01:00',
              ),
            );
      return fc.constant(undefined);
    case 'picklist':
      return oneOrMany(fc.constantFrom(...PICK, ' alpha ', 'ÜNÏ'));
    case 'multi_picklist':
      return fc.subarray(MULTI, { minLength: 1 });
    case 'boolean':
      return fc.boolean();
    case 'lookup':
      return oneOrMany(uuid);
    case 'user':
      return oneOrMany(fc.oneof(uuid, fc.constantFrom('me', 'Me')));
  }
}

function fieldCondition(fields: FieldMeta[]) {
  const own = [
    ...fields.map((f) => ({ name: f.apiName, type: f.type })),
    { name: 'owner', type: 'user' as const },
    { name: 'created_at', type: 'datetime' as const },
  ];
  const rel = fieldsOfEveryType().map((f) => ({ name: `f_lookup.${f.apiName}`, type: f.type }));
  const known = fc.constantFrom(...own, ...rel);
  // Mostly conditions the validator accepts (so the SQL runs), some with a wrong operator or value.
  const typed = known.chain((f) =>
    fc
      .oneof({ arbitrary: fc.constantFrom(...OPERATORS[f.type]), weight: 9 }, fc.constantFrom(...ALL_OPS))
      .chain((op) =>
        fc
          .oneof({ arbitrary: validValue(f.type, op), weight: 12 }, anyValue)
          .map((value) => ({ field: f.name, op, value })),
      ),
  );
  const junkName = fc.oneof(
    fc.string({ maxLength: 20 }),
    fc.constantFrom(
      '',
      'data',
      'f_text.f_text',
      'f_lookup.f_lookup.f_text',
      'f_lookup.',
      '.f_text',
      'owner.name',
      '__proto__',
      'constructor',
      "f_text'; --",
      'x'.repeat(131),
    ),
  );
  const junk = fc.record(
    {
      field: fc.oneof(junkName, fc.integer(), fc.constant(null)),
      op: fc.oneof(fc.constantFrom(...ALL_OPS), fc.string({ maxLength: 41 })),
      value: anyValue,
    },
    { requiredKeys: [] },
  );
  const kind = fc.oneof(
    fc.record(
      {
        kind: fc.constant('email_status'),
        status: fc.oneof(
          fc.constantFrom(
            'sent',
            'opened',
            'clicked',
            'bounced',
            'replied',
            'received',
            'not_opened',
            'not_clicked',
          ),
          hostileString,
        ),
        when: fc.oneof(
          fc.constantFrom(undefined, null, 'today', 'in_last_n_days', 'this_week'),
          hostileString,
        ),
        days: fc.oneof(fc.constantFrom(undefined, 1, 3650, 3651, 0), hostileNumber),
      },
      { requiredKeys: ['kind'] },
    ),
    fc.record({ kind: fc.oneof(fc.string({ maxLength: 41 }), fc.integer()), extra: anyValue }),
  );
  return fc.oneof(
    { arbitrary: typed, weight: 40 },
    { arbitrary: junk, weight: 1 },
    { arbitrary: kind, weight: 1 },
    { arbitrary: fc.oneof(fc.constant(null), fc.string(), fc.integer(), fc.array(fc.string())), weight: 1 },
  );
}

/** A pattern over n conditions: well-formed, slightly wrong, or any text. */
function patternFor(n: number): fc.Arbitrary<string | null | undefined> {
  const ref = fc.integer({ min: 0, max: n + 1 }).map(String);
  const { expr } = fc.letrec<{ expr: string }>((tie) => ({
    expr: fc.oneof(
      { depthSize: 'small' },
      ref,
      fc
        .tuple(
          tie('expr'),
          fc.constantFrom(' and ', ' or ', ' AND ', ' Or ', ' ', 'and', ' xor '),
          tie('expr'),
        )
        .map(([a, op, b]) => `${a}${op}${b}`),
      tie('expr').map((e) => `(${e})`),
    ),
  }));
  const valid = fc.constant(Array.from({ length: n }, (_, i) => i + 1).join(' or '));
  return fc.oneof(
    { arbitrary: fc.constantFrom(undefined, null), weight: 8 },
    { arbitrary: valid, weight: 6 },
    { arbitrary: expr, weight: 3 },
    fc.string({ maxLength: 30 }),
    fc.constantFrom(
      '',
      '   ',
      `${'('.repeat(1_000)}1${')'.repeat(1_000)}`,
      `${'1 or '.repeat(399)}1`,
      '99999999999999999999',
      '1'.repeat(2_001),
    ),
  );
}

const criteriaInput = (fields: FieldMeta[]) =>
  fc.oneof(
    {
      arbitrary: fc
        .array(fieldCondition(fields), { minLength: 1, maxLength: 4 })
        .chain((conditions) => patternFor(conditions.length).map((pattern) => ({ conditions, pattern }))),
      weight: 20,
    },
    fc.oneof(
      fc.constant(null),
      fc.string(),
      fc.constant({ conditions: [] }),
      fc.constant({ conditions: 'x' }),
      fc.constant({ conditions: Array.from({ length: 51 }, () => ({ field: 'f_text', op: 'is_empty' })) }),
      fc.constant({ conditions: [{ field: 'f_text', op: 'is_empty' }], pattern: 7 }),
      fc.constant({ conditions: [{ field: 'f_text', op: 'is_empty' }], pattern: 'x'.repeat(2_001) }),
      fc.array(anyValue),
    ),
  );

beforeAll(async () => {
  database = openDatabase(inject('dbUrl'), 3);
  const accountFields = fieldsOfEveryType();
  const thingFields = [...fieldsOfEveryType(), field('f_lookup', 'lookup', { module: 'accounts' })];
  org = await createOrg(database.pool, { things: thingFields, accounts: accountFields });
  const accountIds = Array.from({ length: 30 }, () => randomUUID());
  lookupIds = [...accountIds, randomUUID()];
  // Stored values in canonical form (values.ts), some of them the odd ones the criteria may ask for.
  const text = fc.constantFrom(
    'Alpha',
    'alpha',
    '50%_off',
    'x\\y',
    "o'brien",
    'İstanbul',
    'straße',
    'ab',
    '\ufffd',
  );
  const stored: Record<FieldType, fc.Arbitrary<unknown>> = {
    text,
    long_text: text,
    email: fc.constantFrom('a@b.test', 'A@B.test'),
    phone: fc.constantFrom('+1 555 0100', '555'),
    number: fc.constantFrom(0, -1, 1.5, 1e15, -1e15, 0.30000000000000004),
    currency: fc.constantFrom(0, 10.25, -3),
    date: fc.constantFrom('1000-01-01', '2026-03-20', '2024-02-29', '9998-12-31'),
    datetime: fc.constantFrom(
      '2026-03-20T00:00:00.000Z',
      '1000-01-01T00:00:00.000Z',
      '2026-03-29T01:30:00.000Z',
    ),
    picklist: fc.constantFrom(...PICK),
    multi_picklist: fc.subarray(MULTI, { minLength: 1 }),
    boolean: fc.boolean(),
    lookup: fc.constantFrom(...lookupIds),
    user: fc.constantFrom(...org.users),
  };
  const recordArb = (fields: FieldMeta[]) =>
    fc.record({
      owner_id: fc.constantFrom(...org.users),
      data: fc
        .tuple(...fields.map((f) => fc.option(stored[f.type], { nil: undefined })))
        .map((vals) =>
          Object.fromEntries(fields.flatMap((f, i) => (vals[i] === undefined ? [] : [[f.apiName, vals[i]]]))),
        ),
    });
  const accounts = fc.sample(recordArb(accountFields), { numRuns: accountIds.length, seed: 1 });
  await insertRecords(
    database.pool,
    org,
    'accounts',
    accounts.map((r, i) => ({ ...r, id: accountIds[i] })),
  );
  await insertRecords(
    database.pool,
    org,
    'things',
    fc.sample(recordArb(thingFields), { numRuns: 150, seed: 2 }),
  );
  records = await loadRecords(database.pool, org.orgId);
  related = new Map(records.map((r) => [r.id, r]));
});
afterAll(() => database?.close());

async function bySql(ast: CriteriaAst, ctx: CriteriaContext): Promise<string[]> {
  const rows = await database.db
    .selectFrom('records as r')
    .select('r.id')
    .where('r.org_id', '=', ctx.orgId)
    .where('r.module_id', '=', ctx.module.id)
    .where(compileCriteria(ast, ctx))
    .execute();
  return rows.map((r) => r.id).sort();
}

describe('fuzz: criteria compiler', () => {
  it(
    'accepts and runs on Postgres, or rejects with a clear error',
    async () => {
      const counts = { accepted: 0, rejected: 0, compared: 0 };
      const scenario = fc.record({
        module: fc.constantFrom('things', 'things', 'accounts'),
        timeZone: fc.constantFrom(...ZONES),
        now: fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }),
      });
      await fc.assert(
        fc.asyncProperty(
          scenario.chain((s) =>
            criteriaInput(org.modules.get(s.module)!.fields).map((input) => ({ ...s, input })),
          ),
          async (s) => {
            const ctx = contextFor(org, s.module, { timeZone: s.timeZone, now: s.now });
            await within(LIMIT_MS, 'validate, compile and query', async () => {
              let ast: CriteriaAst;
              try {
                ast = validateCriteria(s.input, ctx);
              } catch (e) {
                expect(e).toBeInstanceOf(AppError);
                const err = e as AppError;
                expect(err.code).toBe('invalid_criteria');
                expect(err.message).toMatch(/^Invalid (criteria|pattern): \S/);
                expect(err.details?.length).toBeGreaterThan(0);
                for (const d of err.details ?? [])
                  expect(d.path).toMatch(/^(criteria|conditions(\[\d+\])?|pattern)/);
                counts.rejected++;
                return;
              }
              counts.accepted++;
              const ids = await bySql(ast, ctx);
              const kinds = ast.conditions.some((c) => c.type === 'kind');
              if (!kinds && counts.accepted % SAMPLE_EVERY === 0) {
                const mine = records
                  .filter((r) => r.module_id === ctx.module.id && evaluateCriteria(ast, ctx, r, related))
                  .map((r) => r.id)
                  .sort();
                expect(ids).toEqual(mine);
                counts.compared++;
              }
            });
          },
        ),
        fuzzOptions('criteria', RUNS, 10_000),
      );
      console.log(
        `fuzz criteria: ${RUNS} cases: ${counts.accepted} accepted and run (${counts.compared} compared with the evaluator), ${counts.rejected} rejected`,
      );
      expect(counts.accepted).toBeGreaterThan(RUNS * 0.2);
      expect(counts.rejected).toBeGreaterThan(RUNS * 0.2);
    },
    FUZZ_TIMEOUT,
  );

  // Regressions the fuzzer found.
  it('rejects a NUL in a text value with a clear error (it failed the query in Postgres)', () => {
    const ctx = contextFor(org, 'things');
    const input = { conditions: [{ field: 'f_email', op: 'ends_with', value: 'a\u0000b' }] };
    expect(() => validateCriteria(input, ctx)).toThrow(/condition 1: the value contains control characters/);
  });
  it('rejects a lone surrogate in a text value (Postgres read it as U+FFFD, the evaluator did not)', () => {
    const ctx = contextFor(org, 'things');
    const input = { conditions: [{ field: 'f_long_text', op: 'contains', value: '\ud800' }] };
    expect(() => validateCriteria(input, ctx)).toThrow(/condition 1: the value is not valid Unicode text/);
  });
});
