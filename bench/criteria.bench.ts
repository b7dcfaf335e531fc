// `npm run bench:criteria`: a custom view with 3 conditions over 1,000,000 leads (issue targets: first
// page < 100 ms, total count < 1 s, seeding < 60 s). Baseline in the same run: the same page reached
// with OFFSET instead of the keyset cursor, 200 pages deep.

import { sql } from 'kysely';
import { type Actor, countRecords, createOrg, queryRecords } from '../src/crm/index.ts';
import { seedLeads } from '../src/crm/seed.ts';
import { benchDatabase, median, timed } from './support.ts';

const N = Number(process.env.BENCH_LEADS ?? 1_000_000);
const RUNS = 15;

const b = await benchDatabase('criteria');
try {
  const { deps } = b;
  const { org, admin } = await createOrg(deps, {
    name: 'Bench',
    adminEmail: 'bench@bench.example',
    adminName: 'Bench',
    adminPassword: 'bench-password',
  });
  const [seedMs] = await timed(() =>
    seedLeads(deps, org.id, N, (d) => process.stderr.write(`\rseeding ${d}/${N}`)),
  );
  process.stderr.write('\n');
  console.log(
    `seed: ${N} leads in ${(seedMs / 1000).toFixed(1)} s (${Math.round(N / (seedMs / 1000))} rows/s)`,
  );

  const actor: Actor = {
    orgId: org.id,
    userId: admin.id,
    isAdmin: true,
    permissions: {},
    timeZone: 'Europe/Berlin',
    locale: 'en-US',
  };
  const criteria = {
    conditions: [
      { field: 'lead_status', op: 'is', value: ['Contacted', 'Pre-Qualified'] },
      { field: 'annual_revenue', op: 'gt', value: 1_000_000 },
      { field: 'company', op: 'contains', value: 'ac' },
    ],
    pattern: '1 and 2 and 3',
  };
  const firstPage: number[] = [];
  const counts: number[] = [];
  let total = 0;
  for (let i = 0; i < RUNS; i++) {
    const [ms] = await timed(() => queryRecords(deps, actor, 'leads', { criteria, limit: 50 }));
    firstPage.push(ms);
    const [cms, n] = await timed(() => countRecords(deps, actor, 'leads', { criteria }));
    counts.push(cms);
    total = n;
  }
  // Deep paging: the page 90% of the way into the list, reached by the keyset cursor a client
  // would hold there, vs the same page by OFFSET (the baseline).
  const mod = await deps.db
    .selectFrom('modules')
    .select('id')
    .where('org_id', '=', org.id)
    .where('api_name', '=', 'leads')
    .executeTakeFirstOrThrow();
  const deep = Math.floor(N * 0.9);
  const offsetPage = () =>
    deps.db
      .selectFrom('records')
      .select(['id', 'data', 'created_at'])
      .where('org_id', '=', org.id)
      .where('module_id', '=', mod.id)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .offset(deep)
      .limit(50)
      .execute();
  const before = (
    await sql<{ ts: string; id: string }>`
      SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts, id FROM records
      WHERE org_id = ${org.id} AND module_id = ${mod.id}
      ORDER BY created_at DESC, id DESC OFFSET ${deep - 1} LIMIT 1`.execute(deps.db)
  ).rows[0];
  const cursor = Buffer.from(JSON.stringify([before.ts, before.id])).toString('base64url');
  const keysetRuns: number[] = [];
  const offsetRuns: number[] = [];
  for (let i = 0; i < 5; i++) {
    const [k, page] = await timed(() => queryRecords(deps, actor, 'leads', { limit: 50, cursor }));
    keysetRuns.push(k);
    const [o, rows] = await timed(offsetPage);
    offsetRuns.push(o);
    if (page.records[0]?.id !== rows[0]?.id) throw new Error('keyset and OFFSET pages differ');
  }
  const keysetMs = median(keysetRuns);
  const offsetMs = median(offsetRuns);
  console.log(`matches: ${total} of ${N}`);
  console.log(
    `page at ${deep}: keyset ${keysetMs.toFixed(1)} ms vs OFFSET ${offsetMs.toFixed(1)} ms (${(offsetMs / keysetMs).toFixed(1)}x faster)`,
  );
  console.log(
    `criteria: ${median(firstPage).toFixed(1)} ms first page, ${median(counts).toFixed(1)} ms count over ${N} leads`,
  );
} finally {
  await b.close();
}
