import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../src/crm/access.ts';
import { actorForUser } from '../../src/crm/auth.service.ts';
import { importRecords } from '../../src/crm/import-export.service.ts';
import type { Deps } from '../../src/deps.ts';
import { AppError } from '../../src/errors.ts';
import { createTestOrg, testDeps } from '../support/app.ts';
import { scaled } from '../support/mode.ts';
import { cases, FUZZ_SEED, FUZZ_TIMEOUT, fuzzOptions, within } from './support.ts';

// The CSV importer gets files from anywhere: spreadsheets, other CRMs, hand edits. A case is one
// data row; rows are imported in files of 1 to 40 (one import per file), with random headers,
// column order, quoting, line endings and BOMs. Each row is good or bad by construction, so the
// outcome is known: good rows land (each carries a marker), bad rows are reported with their line,
// and the module's record count grows by exactly the number imported. Whole-file hostility
// (broken quoting, random bytes, missing columns, huge fields) must give a clear error or a partial
// result that says where it stopped, never a crash and never a half-written batch.

const ROWS = cases(800);
const LIMIT_MS = 5_000; // one import of up to 40 rows (or one hostile file)

let deps: Deps & { close(): Promise<void> };
let actor: Actor;
let ownerEmail: string;
let moduleId: string;

beforeAll(async () => {
  deps = testDeps();
  const org = await createTestOrg(deps);
  actor = (await actorForUser(deps, { userId: org.adminId }))!;
  ownerEmail = org.adminEmail;
  const mod = await deps.db
    .selectFrom('modules')
    .select('id')
    .where('org_id', '=', org.orgId)
    .where('api_name', '=', 'leads')
    .executeTakeFirstOrThrow();
  moduleId = mod.id;
});
afterAll(() => deps?.close());

async function leadCount(): Promise<number> {
  const r = await deps.db
    .selectFrom('records')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('org_id', '=', actor.orgId)
    .where('module_id', '=', moduleId)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

async function markersLanded(markers: string[]): Promise<Set<string>> {
  if (!markers.length) return new Set();
  const rows = await deps.db
    .selectFrom('records')
    .select((eb) => eb.ref('data', '->>').key('last_name').as('m'))
    .where('org_id', '=', actor.orgId)
    .where('module_id', '=', moduleId)
    .where((eb) => eb(eb.ref('data', '->>').key('last_name'), 'in', markers))
    .execute();
  return new Set(rows.map((r) => r.m as string));
}

// ---- rows ----------------------------------------------------------------------------------------

/** The columns a file may have: [header variants, field]. */
const COLUMNS = [
  { headers: ['Last Name', 'last_name', 'LAST NAME'], field: 'last_name' },
  { headers: ['First Name', 'first_name'], field: 'first_name' },
  { headers: ['Email', 'E-mail'], field: 'email' },
  { headers: ['Company'], field: 'company' },
  { headers: ['Lead Status'], field: 'lead_status' },
  { headers: ['Annual Revenue'], field: 'annual_revenue' },
  { headers: ['No. of Employees'], field: 'no_of_employees' },
  { headers: ['Email Opt Out'], field: 'email_opt_out' },
  { headers: ['Description'], field: 'description' },
  { headers: ['Owner'], field: 'owner' },
] as const;
type Field = (typeof COLUMNS)[number]['field'];

// Valid but awkward: separators, quotes, line breaks (long text only), formulas, Unicode, limits.
const goodText = fc.oneof(
  fc.string({ maxLength: 30 }).filter((s) => !/[\r\n]/.test(s)),
  fc.constantFrom(
    'a,b',
    'say "hi"',
    '=1+1',
    '+33',
    '@x',
    "o'brien",
    'Zoë Ünï',
    '日本語',
    '😀',
    ' padded ',
    'x'.repeat(255),
  ),
);
const goodValue: Record<Exclude<Field, 'last_name'>, fc.Arbitrary<string>> = {
  first_name: goodText,
  email: fc.oneof(
    fc.constant(''),
    fc.emailAddress().filter((e) => e.length < 200),
  ),
  company: goodText,
  lead_status: fc.constantFrom('', 'Attempted to Contact', 'attempted to contact'),
  annual_revenue: fc.oneof(
    fc.constant(''),
    fc.integer({ min: -1e9, max: 1e9 }).map(String),
    fc.constantFrom('1,000.50', ' 12 '),
  ),
  no_of_employees: fc.oneof(fc.constant(''), fc.nat().map(String)),
  email_opt_out: fc.constantFrom('', 'true', 'no', 'Y', 'off', '1'),
  description: fc.oneof(
    goodText,
    fc.constantFrom('line 1\nline 2', 'a\r\nb', '"quoted"\n,', 'x'.repeat(32_000)),
  ),
  owner: fc.constant(''), // filled with the admin's email or name below
};
// One broken cell makes a bad row; the reason must name the field.
const badCell = fc.constantFrom(
  ['last_name', ''],
  ['last_name', '   '],
  ['email', 'not-an-email'],
  ['email', 'a@b'],
  ['lead_status', 'Nope'],
  ['annual_revenue', 'abc'],
  ['annual_revenue', '1e400'],
  ['no_of_employees', '12 people'],
  ['email_opt_out', 'maybe'],
  ['first_name', 'x'.repeat(256)],
  ['first_name', 'two\nlines'],
  ['first_name', 'bell\u0007'],
  ['first_name', 'nul\u0000'],
  ['description', 'x'.repeat(32_001)],
  ['owner', 'nobody@nowhere.test'],
) as fc.Arbitrary<[Field, string]>;

interface Row {
  values: Partial<Record<Field, string>>;
  bad?: [Field, string];
}
const row: fc.Arbitrary<Row> = fc
  .record({
    values: fc.record(goodValue, { requiredKeys: [] }),
    bad: fc.option(badCell, { nil: undefined, freq: 3 }),
    ownerByName: fc.boolean(),
  })
  .map(({ values, bad, ownerByName }) => {
    const v: Partial<Record<Field, string>> = { ...values };
    if ('owner' in v) v.owner = ownerByName ? ` ${ownerEmail.toUpperCase()} ` : ownerEmail;
    if (bad) v[bad[0]] = bad[1];
    return { values: v, bad };
  });

const file = fc.record({
  // 1 to 40 rows (a plain array would mostly be short).
  rows: fc.integer({ min: 1, max: 40 }).chain((n) => fc.array(row, { minLength: n, maxLength: n })),
  // Columns present besides last_name, and their order; unknown columns ride along unmapped.
  columns: fc.shuffledSubarray([...COLUMNS.slice(1)], { minLength: 0 }),
  lastNameAt: fc.nat(),
  headerCase: fc.nat(2),
  extra: fc.array(fc.constantFrom('Notes', 'Twitter', 'Last Name (old)', ''), { maxLength: 2 }),
  quoteAll: fc.boolean(),
  eol: fc.constantFrom('\n', '\r\n'),
  bom: fc.boolean(),
  blankLines: fc.boolean(),
  trailingEol: fc.boolean(),
});

const quote = (s: string, all: boolean) =>
  all || /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;

let fileNo = 0;
/** The CSV text, the mapping, and per row its marker and the line its record ends on. */
function build(f: typeof file extends fc.Arbitrary<infer T> ? T : never) {
  fileNo++;
  const cols: { header: string; field: Field | null }[] = f.columns.map((c) => ({
    header: c.headers[f.headerCase % c.headers.length],
    field: c.field,
  }));
  const lastName = COLUMNS[0].headers[f.headerCase % COLUMNS[0].headers.length];
  cols.splice(f.lastNameAt % (cols.length + 1), 0, { header: lastName, field: 'last_name' });
  // Unknown extra columns, unless their name clashes with a mapped header.
  for (const [i, name] of f.extra.entries())
    if (!cols.some((c) => c.header === name)) cols.push({ header: name || `Column ${i}`, field: null });
  const present = new Set(cols.map((c) => c.field));
  const lines: string[] = [cols.map((c) => quote(c.header, f.quoteAll)).join(',')];
  let line = 1;
  const expected = f.rows.map((r, i) => {
    const marker = `m${FUZZ_SEED}-${fileNo}-${i}`;
    const values: Partial<Record<Field, string>> = { last_name: marker, ...r.values };
    // A bad cell in a column the file lacks is no longer bad.
    const bad = r.bad && present.has(r.bad[0]) ? r.bad : undefined;
    if (bad?.[0] !== 'last_name') values.last_name = marker;
    const text = cols.map((c) => quote(c.field ? (values[c.field] ?? '') : 'ignored', f.quoteAll)).join(',');
    if (f.blankLines && i % 3 === 1) {
      lines.push('');
      line++;
    }
    // Line breaks inside cells are LF, as spreadsheets write them (csv-parse counts a CRLF inside
    // quotes as two lines, so line numbers after one would be off by one).
    const cells = text.replace(/\r\n/g, '\n');
    lines.push(cells);
    line += 1 + (cells.match(/\n/g)?.length ?? 0);
    // A row whose only cell is empty is an empty line, which the importer skips.
    return { marker, bad, line, skipped: text === '' };
  });
  const csv = (f.bom ? '\ufeff' : '') + lines.join(f.eol) + (f.trailingEol ? f.eol : '');
  const mapping = Object.fromEntries(cols.map((c) => [c.header, c.field]));
  return { csv, mapping, expected };
}

describe('fuzz: CSV importer', () => {
  it(
    'lands every good row, reports every bad row by line, and writes nothing else',
    async () => {
      let rows = 0;
      let files = 0;
      let landed = 0;
      let rejected = 0;
      const runs = Math.ceil(ROWS / 15); // files average ~15 rows (fast-check favours small sizes)
      await fc.assert(
        fc.asyncProperty(file, async (f) => {
          const { csv, mapping, expected } = build(f);
          const before = await leadCount();
          const result = await within(LIMIT_MS, 'import', () =>
            importRecords(deps, actor, 'leads', { csv, mapping }),
          );
          const after = await leadCount();
          files++;
          rows += expected.length;
          expect(after - before, 'records written = rows reported imported').toBe(result.imported);
          const good = expected.filter((e) => !e.bad && !e.skipped);
          const bad = expected.filter((e) => e.bad && !e.skipped);
          expect(result.imported).toBe(good.length);
          expect(result.rejectedCount).toBe(bad.length);
          expect(result.rejected.map((r) => r.line)).toEqual(bad.map((b) => b.line));
          for (const r of result.rejected) expect(r.reason).toMatch(/\S/);
          const markers = await markersLanded(expected.map((e) => e.marker));
          expect([...markers].sort()).toEqual(good.map((g) => g.marker).sort());
          landed += good.length;
          rejected += bad.length;
        }),
        fuzzOptions('CSV importer (files)', runs, 30_000),
      );
      console.log(
        `fuzz CSV importer: ${rows} rows in ${files} files: ${landed} landed, ${rejected} rejected by line`,
      );
      expect(rows).toBeGreaterThanOrEqual(ROWS * 0.9);
    },
    FUZZ_TIMEOUT,
  );

  it(
    'answers hostile files with a clear error or a partial result that says where it stopped',
    async () => {
      const mapping = { 'Last Name': 'last_name', Email: 'email' };
      const header = 'Last Name,Email\n';
      const goodRows = fc.array(
        fc.nat(1_000_000).map((n) => `h${FUZZ_SEED}-${n},`),
        { maxLength: 10 },
      );
      const hostile = fc.oneof(
        fc.uint8Array({ maxLength: 2_000 }).map((b) => Buffer.from(b).toString('latin1')),
        fc.string({ unit: 'binary', maxLength: 500 }),
        fc
          .tuple(goodRows, fc.string({ maxLength: 50 }))
          .map(([g, tail]) => `${header}${g.join('\n')}\n"unterminated,${tail}`),
        fc
          .tuple(goodRows, goodRows)
          .map(([a, b]) => `${header}${a.join('\n')}\nx,"bad"quote\n${b.join('\n')}`),
        fc
          .tuple(goodRows, fc.integer({ min: 100_000, max: 500_000 }))
          .map(([g, n]) => `${header}${g.join('\n')}\n"${'x'.repeat(n)}",a@b.test\n`),
        goodRows.map((g) => `Name,Mail\n${g.join('\n')}`), // the mapped columns are missing
        goodRows.map((g) => `\ufeff\ufeff${header}${g.join('\n')}`),
        goodRows.map((g) => `${header}${g.join('\n')}\n\ufeffsurprise,,\n,,,,,,,\n`),
        goodRows.map((g) =>
          Buffer.from(`${header}${g.join('\n')}\nMüller,m@x.test\n`, 'utf8').toString('latin1'),
        ),
        goodRows.map((g) =>
          Buffer.from(`${header}${g.join('\n')}\nMüller,m@x.test\n`, 'latin1').toString('utf8'),
        ),
        goodRows.map((g) => `${header}${g.join('\r')}`),
        fc.constantFrom('', '\n', '\ufeff', 'Last Name,Email', 'Last Name,Email,Last Name\na,b,c\n', '"'),
      );
      let files = 0;
      await fc.assert(
        fc.asyncProperty(hostile, async (csv) => {
          files++;
          const before = await leadCount();
          let imported = 0;
          try {
            const r = await within(LIMIT_MS, 'import', () =>
              importRecords(deps, actor, 'leads', { csv, mapping }),
            );
            imported = r.imported;
            for (const x of r.rejected) {
              expect(Number.isInteger(x.line)).toBe(true);
              expect(x.reason).toMatch(/\S/);
            }
            expect(r.rejected.length).toBe(Math.min(r.rejectedCount, 1_000));
          } catch (e) {
            expect(e).toBeInstanceOf(AppError);
            expect((e as AppError).code).toBe('validation_failed');
          }
          expect(await leadCount(), 'records written = rows reported imported').toBe(before + imported);
        }),
        fuzzOptions('CSV importer (hostile files)', scaled(40, 500), 30_000),
      );
      console.log(`fuzz CSV importer: ${files} hostile files`);
    },
    FUZZ_TIMEOUT,
  );

  // Regression the fuzzer found: csv-parse's INVALID_OPENING_QUOTE (no CSV_ prefix) was a 500.
  it('reports a stray quote in the header line as a rejected line', async () => {
    const r = await importRecords(deps, actor, 'leads', {
      csv: 'Last\u0016Name"',
      mapping: { 'Last Name': 'last_name' },
    });
    expect(r.imported).toBe(0);
    expect(r.rejected).toEqual([
      { line: 1, reason: expect.stringMatching(/^Invalid CSV: Invalid Opening Quote/) },
    ]);
  });
});
