import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorForUser } from '../../src/crm/auth.service.ts';
import { type Actor, createRecord, FIELD_TYPES } from '../../src/crm/index.ts';
import { type FieldMeta, normaliseData } from '../../src/crm/values.ts';
import type { Deps } from '../../src/deps.ts';
import { AppError } from '../../src/errors.ts';
import { createTestOrg, testDeps } from '../support/app.ts';
import { scaled } from '../support/mode.ts';
import { FUZZ_TIMEOUT, fuzzOptions } from './support.ts';

// What the CSV importer and the record API both write: any value normaliseData accepts must be
// storable as jsonb by Postgres, so a bad value is a clear 400, never a database error (a lone
// surrogate in JSON input was one).

// Lookups and users hold ids of real records and users: the criteria and CSV fuzzers cover them.
const TYPES = FIELD_TYPES.filter((t) => t !== 'lookup' && t !== 'user');
const fields: FieldMeta[] = TYPES.map((t) => ({
  apiName: `f_${t}`,
  label: t,
  type: t,
  required: false,
  options: t.endsWith('picklist') ? { values: ['A', 'Ü', '\ud83d\ude00'] } : {},
}));
const raw = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom(
    'x\ud800y',
    '\udfff',
    'a\u0000',
    '\u2028',
    'A;Ü;\ud83d\ude00',
    '2024-02-29',
    '2026-03-29T02:30:00+14:00',
    '1e308',
    '-0',
  ),
  fc.double(),
  fc.boolean(),
  fc.array(fc.string({ unit: 'binary', maxLength: 5 }), { maxLength: 3 }),
);

let deps: Deps & { close(): Promise<void> };
let actor: Actor;
beforeAll(async () => {
  deps = testDeps();
  const org = await createTestOrg(deps);
  actor = (await actorForUser(deps, { userId: org.adminId }))!;
});
afterAll(() => deps?.close());

describe('fuzz: record values', () => {
  it(
    'every value normaliseData accepts is storable as jsonb',
    async () => {
      let stored = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.dictionary(fc.constantFrom(...fields.map((f) => f.apiName)), raw),
          async (input) => {
            const { data, errors } = normaliseData(fields, input, { partial: true });
            for (const e of errors) expect(e.message).toMatch(/\S/);
            if (errors.length) return;
            const r = await sql<{
              ok: boolean;
            }>`SELECT ${JSON.stringify(data)}::jsonb IS NOT NULL AS ok`.execute(deps.db);
            expect(r.rows[0].ok).toBe(true);
            stored++;
          },
        ),
        fuzzOptions('record values', scaled(300, 3_000), 10_000),
      );
      console.log(`fuzz record values: ${stored} accepted inputs stored as jsonb`);
    },
    FUZZ_TIMEOUT,
  );

  // Regression the fuzzer found: a 500 (Postgres "invalid input syntax for type json") before.
  it('refuses a lone surrogate in a record with a clear error', async () => {
    const create = createRecord(deps, actor, 'leads', { data: { last_name: 'x\ud800y' } });
    await expect(create).rejects.toBeInstanceOf(AppError);
    await expect(create).rejects.toMatchObject({ code: 'validation_failed' });
  });
});
