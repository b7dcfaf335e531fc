import { type Expression, type SqlBool, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Database, openDatabase } from '../../db/pool.ts';
import type { FieldMeta } from '../values.ts';
import {
  type CriteriaContext,
  compileCriteria,
  evaluateCriteria,
  fieldSortExpression,
  registerConditionKind,
  validateCriteria,
} from './index.ts';
import { contextFor, createOrg, field, insertRecords, loadRecords, type TestOrg } from './test-fixtures.ts';
import type { EvalRecord } from './types.ts';

// Hand-picked cases against the real database; the property test covers the rest.
let database: Database;
let org: TestOrg;
let records: EvalRecord[];
const ids: Record<string, string> = {};

const contactFields: FieldMeta[] = [
  field('name', 'text'),
  field('score', 'number'),
  field('stage', 'picklist', { values: ['New', 'Won'] }),
  field('account_id', 'lookup', { module: 'accounts' }),
  field('manager', 'user'),
];

beforeAll(async () => {
  database = openDatabase(inject('dbUrl'), 3);
  org = await createOrg(database.pool, {
    contacts: contactFields,
    accounts: [field('industry', 'picklist', { values: ['Banking', 'Retail'] })],
  });
  const [bank, shop] = await insertRecords(database.pool, org, 'accounts', [
    { owner_id: org.users[0], data: { industry: 'Banking' } },
    { owner_id: org.users[0], data: {} },
  ]);
  const names = ['100%', '100 percent', 'a_b', 'axb', 'back\\slash', "o'brien"];
  const made = await insertRecords(database.pool, org, 'contacts', [
    ...names.map((name, i) => ({
      owner_id: org.users[i % 2],
      data: { name, score: [2, 10, 9, -1, 0.5, 30][i] },
    })),
    { owner_id: org.users[2], data: { stage: 'Won', account_id: bank } },
    { owner_id: org.users[2], data: { stage: 'New', account_id: shop, manager: org.users[1] } },
    { owner_id: org.users[2], data: { account_id: '00000000-0000-4000-8000-000000000000' } },
  ]);
  names.forEach((n, i) => {
    ids[n] = made[i];
  });
  ids.banking = made[6];
  ids.retail = made[7];
  ids.dangling = made[8];
  records = await loadRecords(database.pool, org.orgId);
});
afterAll(() => database.close());

async function sqlIds(where: Expression<SqlBool>, ctx: CriteriaContext) {
  const rows = await database.db
    .selectFrom('records as r')
    .select('r.id')
    .where(sql<SqlBool>`r.org_id = ${org.orgId} AND r.module_id = ${ctx.module.id}`)
    .where(where)
    .execute();
  return rows.map((r) => r.id).sort();
}

/** Runs a criteria in SQL and in memory, checks both agree, returns the ids. */
async function run(criteria: unknown, ctx = contextFor(org, 'contacts')) {
  const ast = validateCriteria(criteria, ctx);
  const fromSql = await sqlIds(compileCriteria(ast, ctx), ctx);
  const related = new Map(records.map((r) => [r.id, r]));
  const inMemory = records
    .filter((r) => r.module_id === ctx.module.id && evaluateCriteria(ast, ctx, r, related))
    .map((r) => r.id)
    .sort();
  expect(fromSql).toEqual(inMemory);
  return fromSql;
}
const where = (field: string, op: string, value?: unknown) => ({ conditions: [{ field, op, value }] });

describe('compileCriteria on Postgres', () => {
  it('binds every user value as a parameter', () => {
    const ctx = contextFor(org, 'contacts');
    const evil = "x'); DROP TABLE records; --";
    const ast = validateCriteria(
      {
        conditions: [
          { field: 'name', op: 'contains', value: evil },
          { field: 'name', op: 'is', value: [evil] },
        ],
      },
      ctx,
    );
    const compiled = database.db
      .selectFrom('records as r')
      .select('r.id')
      .where(compileCriteria(ast, ctx))
      .compile();
    expect(compiled.sql).not.toContain('DROP');
    expect(compiled.parameters).toContain(evil);
    expect(compiled.parameters).toContain(`%${evil}%`);
  });

  it('escapes LIKE wildcards in the value', async () => {
    expect(await run(where('name', 'contains', '0%'))).toEqual([ids['100%']].sort());
    expect(await run(where('name', 'contains', 'a_b'))).toEqual([ids.a_b]);
    expect(await run(where('name', 'ends_with', '\\SLASH'))).toEqual([ids['back\\slash']]);
    expect(await run(where('name', 'starts_with', "O'"))).toEqual([ids["o'brien"]]);
    expect(await run(where('name', 'is', ['A_B', 'AXB']))).toEqual([ids.a_b, ids.axb].sort());
  });

  it('negative operators also match empty fields', async () => {
    const notA = await run(where('name', 'not_contains', 'a'));
    expect(notA).toContain(ids.banking); // no name at all
    expect(notA).not.toContain(ids.a_b);
    expect(await run(where('stage', 'is_not', ['Won']))).not.toContain(ids.banking);
    expect(await run(where('stage', 'is_not', ['Won']))).toContain(ids['100%']);
    expect(await run(where('score', 'neq', 2))).toContain(ids.retail);
  });

  it('compares numbers as numbers and uses containment for equality', async () => {
    expect(await run(where('score', 'gt', 9))).toEqual([ids['100 percent'], ids["o'brien"]].sort());
    expect(await run(where('score', 'between', [0.5, 9]))).toEqual(
      [ids['100%'], ids.a_b, ids['back\\slash']].sort(),
    );
    const ctx = contextFor(org, 'contacts');
    const c = compileCriteria(validateCriteria(where('stage', 'is', ['Won']), ctx), ctx);
    expect(database.db.selectFrom('records as r').select('r.id').where(c).compile().sql).toContain('@>');
  });

  it('related conditions need the looked-up record to exist', async () => {
    expect(await run(where('account_id.industry', 'is', ['Banking']))).toEqual([ids.banking]);
    // The shop has no industry: a negative matches it; the dangling lookup matches nothing related.
    expect(await run(where('account_id.industry', 'is_not', ['Banking']))).toEqual([ids.retail]);
    expect(await run(where('account_id.industry', 'is_empty'))).toEqual([ids.retail]);
    expect(await run(where('account_id', 'is_not_empty'))).toHaveLength(3);
  });

  it("'me' is the current user", async () => {
    const me = contextFor(org, 'contacts', { userId: org.users[1] });
    expect(await run(where('manager', 'is', ['me']), me)).toEqual([ids.retail]);
    expect(await run(where('owner', 'is', ['me']), me)).toEqual(
      [ids['100 percent'], ids.axb, ids["o'brien"]].sort(),
    );
  });

  it('sort expressions are typed: numbers sort as numbers', async () => {
    const score = contactFields[1];
    const rows = await database.db
      .selectFrom('records as r')
      .select(['r.id', fieldSortExpression(score, 'r').as('k')])
      .where('r.org_id', '=', org.orgId)
      .where(sql<SqlBool>`r.data ? 'score'`)
      .orderBy(fieldSortExpression(score, 'r'))
      .execute();
    expect(rows.map((r) => Number(r.k))).toEqual([-1, 0.5, 2, 9, 10, 30]);
    const owner = await database.db
      .selectFrom('records as r')
      .select(fieldSortExpression({ apiName: 'owner', type: 'user' }, 'r').as('k'))
      .where('r.org_id', '=', org.orgId)
      .orderBy(fieldSortExpression({ apiName: 'created_at', type: 'datetime' }, 'r'))
      .limit(1)
      .executeTakeFirstOrThrow();
    expect(typeof owner.k).toBe('string');
  });
});

describe('condition kinds (extension point)', () => {
  // A tiny kind: records whose data has a given key.
  registerConditionKind<{ key: string }>('test_has_key', {
    validate: (cond) => ({ key: String(cond.key) }),
    compile: (node) => sql<SqlBool>`(r.data ? ${node.key})`,
    evaluate: (node, _ctx, record) => Object.hasOwn(record.data, node.key),
  });

  it('compile and evaluate inside any criteria and pattern', async () => {
    const got = await run({
      conditions: [
        { kind: 'test_has_key', key: 'stage' },
        { field: 'score', op: 'lt', value: 1 },
      ],
      pattern: '1 or 2',
    });
    expect(got).toEqual([ids.banking, ids.retail, ids.axb, ids['back\\slash']].sort());
  });
});
