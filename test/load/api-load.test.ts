import { sql } from 'kysely';
import { afterAll, expect, it } from 'vitest';
import { acceptInvite, actorForUser, createApiKey, inviteUser, LEAD_STATUSES } from '../../src/crm/index.ts';
import { createTestOrg, ownDatabase } from '../support/app.ts';
import { FULL, scaled } from '../support/mode.ts';
import { type ParleyProcess, startParley } from '../support/processes.ts';
import { percentile } from './drive.ts';

// Issue 8, "Load": the API of a real `parley serve` under 200 concurrent users, each with an API key
// of its own (spread over an admin and standard users), listing, filtering and opening Leads among
// thousands, as fast as each is answered, for 60 s in full mode (10 s quick). Every answer must be
// 2xx and right (a filter's rows match it, a detail is the record asked for); p50 and p99 printed.

const SECONDS = Number(process.env.LOAD_SECONDS ?? scaled(10, 60));
const USERS = Number(process.env.LOAD_USERS ?? 200);
const PEOPLE = 10; // the admin and 9 standard users, each holding USERS / PEOPLE keys
const RECORDS = scaled(5_000, 20_000);
const PAGE = 50;

const own = await ownDatabase();
const deps = own.deps;
let serve: ParleyProcess | undefined;
afterAll(async () => {
  await serve?.stop();
  await deps.close();
});

type Op = 'list' | 'filter' | 'detail';
interface Lead {
  id: string;
  data: { last_name: string; lead_status: string; annual_revenue: number };
}

it(`${USERS} users list, filter and open records for ${SECONDS} s: all answered 2xx and right`, {
  timeout: (SECONDS + 180) * 1000,
}, async () => {
  const org = await createTestOrg(deps);
  const admin = await actorForUser(deps, { userId: org.adminId });
  if (!admin) throw new Error('no admin actor');
  const people = [org.adminId];
  for (let i = 1; i < PEOPLE; i++) {
    const { inviteToken } = await inviteUser(deps, admin, {
      email: `rep${i}.${org.orgId.slice(0, 8)}@load.example`,
      name: `Rep ${i}`,
      profileId: org.standardProfileId,
    });
    people.push(await acceptInvite(deps, { token: inviteToken, password: `load-password-${i}-long` }));
  }
  const keys: string[] = [];
  for (let u = 0; u < USERS; u++) {
    const actor = await actorForUser(deps, { userId: people[u % PEOPLE] });
    if (!actor) throw new Error('no actor');
    keys.push((await createApiKey(deps, actor, `load ${u}`)).key);
  }
  const leads = await deps.db
    .selectFrom('modules')
    .select('id')
    .where('org_id', '=', org.orgId)
    .where('api_name', '=', 'leads')
    .executeTakeFirstOrThrow();
  await sql`
    INSERT INTO records (org_id, module_id, owner_id, data)
    SELECT ${org.orgId}, ${leads.id}, (${people}::uuid[])[1 + g % ${PEOPLE}],
      jsonb_build_object('last_name', 'Lead ' || g, 'company', 'Company ' || (g % 500),
        'email', 'lead' || g || '@load.example', 'city', 'City ' || (g % 50),
        'lead_status', (${LEAD_STATUSES}::text[])[1 + g % ${LEAD_STATUSES.length}],
        'annual_revenue', (g * 7919) % 1000000)
    FROM generate_series(1, ${RECORDS}) g`.execute(deps.db);
  await sql`ANALYZE records`.execute(deps.db);
  serve = await startParley('serve', { databaseUrl: own.url, secret: deps.config.secret as string });
  const base = serve.url as string;

  const latencies: Record<Op, number[]> = { list: [], filter: [], detail: [] };
  const failures: string[] = []; // the first few, to read
  let failed = 0;
  const fail = (what: string) => {
    failed++;
    if (failures.length < 10) failures.push(what);
  };
  let requests = 0;
  async function call(op: Op, key: string, method: string, path: string, body?: unknown) {
    const t = performance.now();
    requests++;
    try {
      const r = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await r.text();
      latencies[op].push(performance.now() - t);
      if (r.status < 200 || r.status >= 300) {
        fail(`${op} ${path}: ${r.status} ${text.slice(0, 200)}`);
        return undefined;
      }
      return JSON.parse(text);
    } catch (err) {
      latencies[op].push(performance.now() - t);
      fail(`${op} ${path}: ${(err as Error).message}`);
      return undefined;
    }
  }

  const query = `/api/modules/leads/records/query`;
  // Each user: a page of the list (then the next, by cursor), a filter, and a few records opened.
  async function user(u: number) {
    const key = keys[u];
    let cursor: string | null = null;
    let seen = firstPages[u]?.records.map((x) => x.id) ?? [];
    for (let n = u; Date.now() < end; n++) {
      const step = n % 4;
      if (step === 0) {
        const sort = n % 8 === 0 ? { field: 'annual_revenue', dir: 'desc' } : undefined;
        const page: { records: Lead[]; nextCursor: string | null } | undefined = await call(
          'list',
          key,
          'POST',
          query,
          { limit: PAGE, cursor: sort ? null : cursor, ...(sort ? { sort } : {}) },
        );
        if (!page) continue;
        if (page.records.length !== PAGE) fail(`list: ${page.records.length} rows, not ${PAGE}`);
        cursor = sort ? cursor : page.nextCursor;
        seen = page.records.map((x) => x.id);
      } else if (step === 1) {
        const status = LEAD_STATUSES[n % LEAD_STATUSES.length];
        const floor = (n * 104_729) % 900_000;
        const res: { records: Lead[] } | undefined = await call('filter', key, 'POST', query, {
          limit: PAGE,
          criteria: {
            conditions: [
              { field: 'lead_status', op: 'is', value: [status] },
              { field: 'annual_revenue', op: 'gt', value: floor },
            ],
          },
          sort: { field: 'annual_revenue', dir: 'asc' },
        });
        if (!res) continue;
        if (!res.records.length) fail(`filter ${status} > ${floor}: no rows`);
        for (const x of res.records)
          if (x.data.lead_status !== status || !(x.data.annual_revenue > floor))
            fail(`filter ${status} > ${floor} answered ${JSON.stringify(x.data)}`);
      } else {
        const id = seen[(n * 13) % Math.max(1, seen.length)];
        if (!id) continue;
        const res: { record: Lead } | undefined = await call(
          'detail',
          key,
          'GET',
          `/api/modules/leads/records/${id}`,
        );
        if (res && res.record.id !== id) fail(`detail ${id} answered ${res.record.id}`);
      }
    }
  }
  // Everyone signs in and opens the list once (a cold server's first answers: checked, not timed).
  const firstPages: ({ records: Lead[] } | undefined)[] = await Promise.all(
    keys.map((key) => call('list', key, 'POST', query, { limit: PAGE })),
  );
  latencies.list = [];
  requests = 0;
  const end = Date.now() + SECONDS * 1000;
  const t0 = Date.now();
  await Promise.all(Array.from({ length: USERS }, (_, u) => user(u)));
  const took = (Date.now() - t0) / 1000;

  const all = Float64Array.from(Object.values(latencies).flat()).sort();
  const ms = (x: number) => Math.round(x);
  const per = (Object.keys(latencies) as Op[])
    .map((op) => {
      const s = Float64Array.from(latencies[op]).sort();
      return `${op} ${s.length} p99 ${ms(percentile(s, 99))} ms`;
    })
    .join(', ');
  console.log(
    `api load${FULL ? '' : ' (quick)'}: ${USERS} users over ${RECORDS} leads, ${requests} requests in ` +
      `${took.toFixed(1)} s (${Math.round(requests / took)} req/s), p50 ${ms(percentile(all, 50))} ms, ` +
      `p99 ${ms(percentile(all, 99))} ms, max ${ms(all[all.length - 1] ?? 0)} ms (${per}); ` +
      `${failed} failed`,
  );
  expect(failures).toEqual([]);
  expect(failed).toBe(0);
  for (const op of Object.keys(latencies) as Op[]) expect(latencies[op].length).toBeGreaterThan(0);
});
