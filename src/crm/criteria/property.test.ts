import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { type SqlBool, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Database, openDatabase } from '../../db/pool.ts';
import type { FieldType } from '../../db/schema.ts';
import { FIELD_TYPES } from '../metadata.service.ts';
import type { FieldMeta } from '../values.ts';
import { addDays, localDayStart } from './dates.ts';
import {
  type CriteriaAst,
  type CriteriaContext,
  compileCriteria,
  type EvalRecord,
  evaluateCriteria,
  OPERATORS,
  registerConditionKind,
  validateCriteria,
} from './index.ts';
import { contextFor, createOrg, field, insertRecords, loadRecords, type TestOrg } from './test-fixtures.ts';

// Property: for any valid criteria, the ids SQL returns on a real Postgres are exactly the ids the
// in-memory evaluator accepts. Records and criteria values come from the same small domains, so
// conditions hit and miss; dates cluster around BASE (which has DST changes nearby) and `now`.

const RUNS = Number(process.env.CRITERIA_PROPERTY_RUNS ?? 300);
const BASE = '2026-03-20'; // US DST began 03-08, EU 03-29, NZ ends 04-05
const ZONES = [
  'UTC',
  'Pacific/Auckland',
  'America/Los_Angeles',
  'Europe/Berlin',
  'Asia/Kolkata',
  'America/Santiago',
  'Pacific/Kiritimati',
  'Pacific/Pago_Pago',
];
const PICK = ['Alpha', 'Beta', 'Gamma', 'Ünï'];
const MULTI = ['a', 'b', 'c', 'd'];
// Case pairs, LIKE wildcards, a backslash, quotes, and letters whose case mapping is special.
const WORDS = [
  'acme',
  'Acme Corp',
  'ACME',
  'beta_1',
  'beta%1',
  '100%',
  'a_b',
  'axb',
  'x\\y',
  'Émile',
  'émile',
  'straße',
  'ΣΑΣ',
  'σας',
  'İstanbul',
  'istanbul',
  'Zoë',
  "o'brien",
];
// Every type but lookups, whose values are ids of real records.
const TYPES = FIELD_TYPES.filter((t) => t !== 'lookup');
const fieldsOfEveryType = (): FieldMeta[] =>
  TYPES.map((t) =>
    field(`f_${t}`, t, { values: t === 'picklist' ? PICK : t === 'multi_picklist' ? MULTI : undefined }),
  );

let database: Database;
let org: TestOrg;
let records: EvalRecord[];
let related: Map<string, EvalRecord>;

// ---- value domains -------------------------------------------------------------------------------

const word = fc.constantFrom(...WORDS);
const textValue = fc.oneof(
  word,
  fc.tuple(word, word).map(([a, b]) => `${a} ${b}`),
);
const numberValue = fc.oneof(
  fc.integer({ min: -20, max: 20 }),
  fc.constantFrom(0.1, 0.2, 0.30000000000000004, 2.5, -2.5, 1e15, -1e-7, 99.99),
);
const dayValue = fc
  .oneof(fc.integer({ min: -25, max: 25 }), fc.integer({ min: -500, max: 500 }))
  .map((k) => addDays(BASE, k));
/** Instants near local midnights of the test zones (the boundaries), or anywhere in a day. */
const instantValue = fc
  .tuple(dayValue, fc.constantFrom(...ZONES), fc.oneof(fc.constantFrom(0, -1, 1), fc.nat(86_399_999)))
  .map(([d, z, ms]) => new Date(Date.parse(localDayStart(d, z)) + ms).toISOString());

function domains(users: string[], lookupIds: string[]) {
  const user = fc.constantFrom(...users);
  const value: Record<FieldType, fc.Arbitrary<unknown>> = {
    text: textValue,
    long_text: textValue,
    email: textValue,
    phone: textValue,
    number: numberValue,
    currency: numberValue,
    date: dayValue,
    datetime: instantValue,
    picklist: fc.constantFrom(...PICK),
    multi_picklist: fc.subarray(MULTI, { minLength: 1 }),
    boolean: fc.boolean(),
    lookup: fc.constantFrom(...lookupIds),
    user,
  };
  return { user, value };
}

function recordArb(fields: FieldMeta[], d: ReturnType<typeof domains>) {
  const data = fc
    .tuple(...fields.map((f) => fc.option(d.value[f.type], { nil: undefined, freq: 3 })))
    .map((vals) => {
      const out: Record<string, unknown> = {};
      fields.forEach((f, i) => {
        if (vals[i] !== undefined) out[f.apiName] = vals[i];
      });
      return out;
    });
  return fc.record({
    owner_id: d.user,
    created_by: fc.option(d.user, { nil: null }),
    created_at: instantValue,
    updated_at: instantValue,
    data,
  });
}

// ---- criteria ------------------------------------------------------------------------------------

interface Choice {
  name: string;
  meta: FieldMeta;
}

const SYSTEM: FieldMeta[] = [
  field('owner', 'user'),
  field('created_by', 'user'),
  field('created_at', 'datetime'),
  field('updated_at', 'datetime'),
];

const recase = (s: string) =>
  fc
    .constantFrom(
      (x: string) => x,
      (x: string) => x.toUpperCase(),
      (x: string) => x.toLowerCase(),
    )
    .map((f) => f(s));
const spaced = (a: fc.Arbitrary<string>) =>
  fc.tuple(a, fc.constantFrom('', ' ')).map(([s, pad]) => `${pad}${s}${pad}`);
const queryText = textValue.chain(recase);
const fragment = textValue
  .chain((s) =>
    fc
      .tuple(fc.nat(s.length - 1), fc.nat(s.length))
      .map(([a, b]) => s.slice(Math.min(a, b), Math.max(a, b) + 1).trim() || s),
  )
  .chain(recase);
const sorted = <T>(a: fc.Arbitrary<T>) => fc.tuple(a, a).map(([x, y]) => (x <= y ? [x, y] : [y, x]));
const oneOrMany = <T>(a: fc.Arbitrary<T>) => fc.oneof(a, fc.array(a, { minLength: 1, maxLength: 3 }));

function valueArb(meta: FieldMeta, op: string, users: string[], lookupIds: string[]): fc.Arbitrary<unknown> {
  if (op === 'is_empty' || op === 'is_not_empty') return fc.constant(undefined);
  if (op.endsWith('_n_days'))
    return fc.oneof(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 600 }));
  switch (meta.type) {
    case 'text':
    case 'long_text':
    case 'email':
    case 'phone':
      return op === 'is' || op === 'is_not' ? oneOrMany(spaced(queryText)) : spaced(fragment);
    case 'number':
    case 'currency':
      return op.includes('between') ? sorted(numberValue) : numberValue;
    case 'date':
    case 'datetime':
      if (op === 'between') return sorted(dayValue);
      if (op === 'is' || op === 'is_not') return dayValue;
      if (op === 'before' || op === 'after')
        return meta.type === 'datetime' ? fc.oneof(dayValue, instantValue) : dayValue;
      return fc.constant(undefined); // today, this_week …
    case 'picklist':
      return oneOrMany(fc.constantFrom(...PICK).chain(recase));
    case 'multi_picklist':
      return fc.subarray(MULTI, { minLength: 1 });
    case 'boolean':
      return fc.boolean();
    case 'lookup':
      return oneOrMany(fc.constantFrom(...lookupIds));
    case 'user':
      return oneOrMany(fc.constantFrom(...users, 'me'));
  }
}

function conditionArb(choices: Choice[], users: string[], lookupIds: string[]) {
  const fieldCondition = fc
    .constantFrom(...choices)
    .chain((c) =>
      fc
        .constantFrom(...OPERATORS[c.meta.type])
        .chain((op) => valueArb(c.meta, op, users, lookupIds).map((value) => ({ field: c.name, op, value }))),
    );
  const kindCondition = fc
    .constantFrom(...choices.filter((c) => !c.name.includes('.')))
    .map((c) => ({ kind: 'test_prop_has_key', key: c.name }));
  return fc.oneof({ arbitrary: fieldCondition, weight: 12 }, { arbitrary: kindCondition, weight: 1 });
}

/** A random pattern using every number 1..n (one maybe twice), with and without parentheses. */
function patternArb(n: number) {
  const nums = Array.from({ length: n }, (_, i) => i + 1);
  return fc
    .record({
      order: fc.shuffledSubarray(nums, { minLength: n, maxLength: n }),
      extra: fc.option(fc.constantFrom(...nums), { nil: undefined }),
      rolls: fc.array(fc.nat(), { minLength: 8 * n + 8, maxLength: 8 * n + 8 }),
    })
    .map(({ order, extra, rolls }) => {
      let k = 0;
      const roll = (m: number) => rolls[k++ % rolls.length] % m;
      const build = (list: number[]): string => {
        if (list.length === 1) return roll(6) === 0 ? `(${list[0]})` : String(list[0]);
        const cut = 1 + roll(list.length - 1);
        const op = ['and', 'or', 'AND', 'Or'][roll(4)];
        const side = (part: number[]) => {
          const s = build(part);
          // Parentheses only sometimes: without them the parser's precedence decides the tree.
          return part.length > 1 && roll(2) === 0 ? `(${s})` : s;
        };
        return `${side(list.slice(0, cut))} ${op} ${side(list.slice(cut))}`;
      };
      return build(extra === undefined ? order : [...order, extra]);
    });
}

// ---- the property --------------------------------------------------------------------------------

beforeAll(async () => {
  database = openDatabase(inject('dbUrl'), 3);
  const accountFields = fieldsOfEveryType();
  const thingFields = [...fieldsOfEveryType(), field('f_lookup', 'lookup', { module: 'accounts' })];
  org = await createOrg(database.pool, { things: thingFields, accounts: accountFields });

  const accountIds = Array.from({ length: 60 }, () => randomUUID());
  const thingIds = Array.from({ length: 300 }, () => randomUUID());
  // Lookups point to accounts, to nothing, or (wrongly) to a record of another module.
  const lookupIds = [...accountIds, randomUUID(), ...thingIds.slice(0, 3)];
  const d = domains(org.users, lookupIds);
  const accounts = fc.sample(recordArb(accountFields, d), { numRuns: accountIds.length, seed: 1 });
  const things = fc.sample(recordArb(thingFields, d), { numRuns: thingIds.length, seed: 2 });
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
    things.map((r, i) => ({ ...r, id: thingIds[i] })),
  );
  // Fresh statistics, as autovacuum would have them: without, the planner picks nested loops.
  await database.pool.query('ANALYZE records');
  records = await loadRecords(database.pool, org.orgId);
  related = new Map(records.map((r) => [r.id, r]));
  registerConditionKind<{ key: string }>('test_prop_has_key', {
    validate: (cond) => ({ key: String(cond.key) }),
    compile: (node) => sql<SqlBool>`(r.data ? ${node.key})`,
    evaluate: (node, _ctx, record) => Object.hasOwn(record.data, node.key),
  });
});
afterAll(() => database.close());

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

function inMemory(ast: CriteriaAst, ctx: CriteriaContext): string[] {
  return records
    .filter((r) => r.module_id === ctx.module.id && evaluateCriteria(ast, ctx, r, related))
    .map((r) => r.id)
    .sort();
}

describe('criteria: SQL and the evaluator agree', () => {
  it(`on ${RUNS} random criteria over every field type`, async () => {
    const things = org.modules.get('things')!;
    const accounts = org.modules.get('accounts')!;
    const choicesOf = (module: string): Choice[] => {
      const own = [...org.modules.get(module)!.fields, ...SYSTEM].map((meta) => ({
        name: meta.apiName,
        meta,
      }));
      if (module !== 'things') return own;
      const rel = [...accounts.fields, ...SYSTEM].map((meta) => ({ name: `f_lookup.${meta.apiName}`, meta }));
      return [...own, ...rel];
    };
    const lookupIds = [...new Set(records.filter((r) => r.module_id === accounts.id).map((r) => r.id))];
    lookupIds.push(randomUUID(), records.find((r) => r.module_id === things.id)!.id);

    const scenario = fc
      .record({
        module: fc.constantFrom('things', 'things', 'things', 'accounts'),
        timeZone: fc.constantFrom(...ZONES),
        user: fc.constantFrom(...org.users),
        // `now` somewhere near BASE, sometimes exactly at a local midnight.
        nowDay: fc.integer({ min: -20, max: 20 }).map((k) => addDays(BASE, k)),
        nowMs: fc.oneof(fc.constant(0), fc.nat(86_399_999)),
      })
      .chain((s) =>
        fc
          .array(conditionArb(choicesOf(s.module), org.users, lookupIds), { minLength: 1, maxLength: 6 })
          .chain((conditions) =>
            fc
              .option(patternArb(conditions.length), { nil: undefined })
              .map((pattern) => ({ ...s, conditions, pattern })),
          ),
      );

    let nonTrivial = 0;
    let conditionsChecked = 0;
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const now = new Date(Date.parse(localDayStart(s.nowDay, s.timeZone)) + s.nowMs);
        const ctx = contextFor(org, s.module, { userId: s.user, timeZone: s.timeZone, now });
        const ast = validateCriteria({ conditions: s.conditions, pattern: s.pattern }, ctx);
        const total = records.filter((r) => r.module_id === ctx.module.id).length;
        const whole = await bySql(ast, ctx);
        expect(whole).toEqual(inMemory(ast, ctx));
        if (whole.length > 0 && whole.length < total) nonTrivial++;
        // Each condition alone too, so that a divergence cannot hide behind the pattern.
        for (const c of ast.conditions) {
          const single: CriteriaAst = { conditions: [c], pattern: { type: 'ref', n: 1 } };
          expect(await bySql(single, ctx)).toEqual(inMemory(single, ctx));
          conditionsChecked++;
        }
      }),
      { numRuns: RUNS },
    );
    // The domains are meant to make criteria select some records but not all.
    expect(nonTrivial).toBeGreaterThan(RUNS * 0.3);
    console.log(
      `criteria property: ${RUNS} criteria (${nonTrivial} non-trivial), ${conditionsChecked} conditions`,
    );
  });
});
