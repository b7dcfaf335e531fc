import { sql } from 'kysely';
import type { Deps } from '../deps.ts';
import { type Actor, fullAccess } from './access.ts';
import { DEAL_STAGES, LEAD_STATUSES } from './catalog.ts';
import { loadModule } from './metadata.service.ts';
import { createOrg } from './orgs.service.ts';
import { createRecord } from './records.service.ts';

export const DEMO_ADMIN = 'admin@demo.parley.local';

const FIRST = [
  'Ana',
  'Bruno',
  'Chen',
  'Dana',
  'Elif',
  'Farid',
  'Greta',
  'Hugo',
  'Ines',
  'Jonas',
  'Keiko',
  'Liam',
  'Maya',
  'Nils',
  'Olga',
  'Pedro',
  'Quinn',
  'Rosa',
  'Sven',
  'Tara',
  'Umar',
  'Vera',
  'Wei',
  'Yara',
  'Zoe',
];
const LAST = [
  'Almeida',
  'Berg',
  'Costa',
  'Dubois',
  'Eriksen',
  'Fischer',
  'Garcia',
  'Huang',
  'Ivanova',
  'Jensen',
  'Kowalski',
  'Lopez',
  'Müller',
  'Novak',
  'Okafor',
  'Petit',
  'Rossi',
  'Schmidt',
  'Tanaka',
  'Wagner',
];
const COMPANIES = [
  'Acme',
  'Globex',
  'Initech',
  'Umbrella',
  'Stark Industries',
  'Wayne Enterprises',
  'Hooli',
  'Vandelay',
  'Soylent',
  'Tyrell',
  'Cyberdyne',
  'Wonka',
  'Oscorp',
  'Aperture',
  'Massive Dynamic',
];
const SOURCES = [
  'Advertisement',
  'Cold Call',
  'Employee Referral',
  'Partner',
  'Trade Show',
  'Web Download',
  'Web Research',
  'Chat',
];
const INDUSTRIES = [
  'Banking',
  'Consulting',
  'Education',
  'Healthcare',
  'Manufacturing',
  'Retail',
  'Technology',
  'Telecom',
];

const pick = <T>(a: T[], i: number) => a[i % a.length];

/** The demo org with a second user and a little of everything, created once. */
export async function ensureDemoOrg(deps: Deps, password: string) {
  const existing = await deps.db
    .selectFrom('users')
    .select(['id', 'org_id'])
    .where('email', '=', DEMO_ADMIN)
    .executeTakeFirst();
  if (existing) return { orgId: existing.org_id, adminId: existing.id, created: false };
  const { org, admin, profiles } = await createOrg(deps, {
    name: 'Demo Company',
    edition: 'enterprise',
    adminEmail: DEMO_ADMIN,
    adminName: 'Alex Admin',
    adminPassword: password,
  });
  await deps.db
    .insertInto('users')
    .values({
      org_id: org.id,
      profile_id: profiles.standardId,
      email: 'sam@demo.parley.local',
      name: 'Sam Seller',
      status: 'active',
      password_hash: admin.password_hash,
    })
    .execute();
  const actor: Actor = {
    orgId: org.id,
    userId: admin.id,
    isAdmin: true,
    permissions: { modules: { leads: fullAccess } },
    timeZone: 'UTC',
    locale: 'en-US',
  };
  const accounts: string[] = [];
  for (let i = 0; i < 12; i++) {
    const a = await createRecord(deps, actor, 'accounts', {
      data: {
        account_name: pick(COMPANIES, i),
        industry: pick(INDUSTRIES, i),
        account_type: i % 3 ? 'Customer' : 'Prospect',
        annual_revenue: 250_000 * (i + 1),
        billing_city: pick(['Lisbon', 'Berlin', 'Paris', 'Shanghai', 'Austin'], i),
      },
    });
    accounts.push(a.id);
  }
  const contacts: string[] = [];
  for (let i = 0; i < 30; i++) {
    const c = await createRecord(deps, actor, 'contacts', {
      data: {
        first_name: pick(FIRST, i * 7),
        last_name: pick(LAST, i * 3),
        email: `contact${i}@${pick(COMPANIES, i % 12)
          .toLowerCase()
          .replace(/ /g, '')}.example`,
        account_id: pick(accounts, i),
        title: pick(['CEO', 'CTO', 'Buyer', 'Head of Sales'], i),
        lead_source: pick(SOURCES, i),
      },
    });
    contacts.push(c.id);
  }
  const today = deps.clock.now();
  for (let i = 0; i < 15; i++) {
    const close = new Date(today.getTime() + (i - 5) * 6 * 86_400_000).toISOString().slice(0, 10);
    await createRecord(deps, actor, 'deals', {
      data: {
        deal_name: `${pick(COMPANIES, i)} – ${pick(['Renewal', 'Expansion', 'New licence', 'Pilot'], i)}`,
        account_id: pick(accounts, i),
        contact_id: pick(contacts, i),
        amount: 5_000 * ((i % 9) + 1) * 3,
        stage: pick(DEAL_STAGES, i),
        closing_date: close,
      },
    });
  }
  for (let i = 0; i < 60; i++) {
    await createRecord(deps, actor, 'leads', {
      data: {
        first_name: pick(FIRST, i),
        last_name: pick(LAST, i * 11),
        company: pick(COMPANIES, i * 5),
        email: `lead${i}@example.com`,
        lead_status: pick(LEAD_STATUSES, i),
        lead_source: pick(SOURCES, i * 3),
        industry: pick(INDUSTRIES, i),
        annual_revenue: 100_000 * ((i % 20) + 1),
        no_of_employees: 10 * ((i % 50) + 1),
        email_opt_out: i % 17 === 0,
      },
    });
  }
  for (let i = 0; i < 10; i++) {
    await createRecord(deps, actor, 'tasks', {
      data: {
        subject: pick(['Send proposal', 'Follow up call', 'Prepare demo', 'Check contract'], i),
        due_date: new Date(today.getTime() + i * 86_400_000).toISOString().slice(0, 10),
        status: pick(['Not Started', 'In Progress', 'Completed'], i),
        priority: pick(['High', 'Normal', 'Low'], i),
        contact_id: pick(contacts, i),
      },
    });
    await createRecord(deps, actor, 'calls', {
      data: {
        subject: `Call with ${pick(FIRST, i)}`,
        call_type: pick(['Outbound', 'Inbound', 'Missed'], i),
        call_start_time: new Date(today.getTime() - i * 86_400_000).toISOString(),
        call_duration_seconds: 60 * ((i % 15) + 1),
        call_result: pick(['Interested', 'No Response', 'Busy', 'Requested More Info'], i),
        contact_id: pick(contacts, i),
      },
    });
  }
  return { orgId: org.id, adminId: admin.id, created: true };
}

/**
 * Bulk-generates leads inside PostgreSQL (INSERT … SELECT generate_series), in chunks so progress can
 * be shown: the fast path for demo volumes and benchmarks (about a million rows in well under a minute).
 */
export async function seedLeads(
  deps: Deps,
  orgId: string,
  total: number,
  onProgress?: (done: number) => void,
  chunk = 25_000,
) {
  const mod = await loadModule(deps, orgId, 'leads');
  const users = (await deps.db.selectFrom('users').select('id').where('org_id', '=', orgId).execute()).map(
    (u) => u.id,
  );
  // Two chunks in flight (one per core); each in its own transaction with a large GIN pending list,
  // so index entries are merged in bulk rather than row by row, and without waiting for WAL flushes
  // (a crash mid-seed loses only seed rows, which are re-creatable).
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < total) {
      const from = next + 1;
      const n = Math.min(chunk, total - next);
      next += n;
      await deps.db.transaction().execute(async (trx) => {
        await sql`SET LOCAL synchronous_commit = off`.execute(trx);
        await sql`SET LOCAL gin_pending_list_limit = '256MB'`.execute(trx);
        await sql`
        INSERT INTO records (org_id, module_id, owner_id, created_by, data, created_at, updated_at)
        SELECT ${orgId}::uuid, ${mod.id}::uuid, (${users}::uuid[])[1 + (g % ${users.length})], (${users}::uuid[])[1],
          jsonb_strip_nulls(jsonb_build_object(
            'first_name', (${FIRST}::text[])[1 + (g * 7) % ${FIRST.length}],
            'last_name', (${LAST}::text[])[1 + (g * 13) % ${LAST.length}],
            'company', (${COMPANIES}::text[])[1 + (g * 3) % ${COMPANIES.length}] || ' ' || (g % 997),
            'email', 'lead' || g || '@' || lower(replace((${COMPANIES}::text[])[1 + (g * 3) % ${COMPANIES.length}], ' ', '')) || '.example',
            'lead_status', (${LEAD_STATUSES}::text[])[1 + (g * 5) % ${LEAD_STATUSES.length}],
            'lead_source', (${SOURCES}::text[])[1 + (g * 11) % ${SOURCES.length}],
            'industry', (${INDUSTRIES}::text[])[1 + (g * 17) % ${INDUSTRIES.length}],
            'annual_revenue', ((g * 7919) % 5000) * 1000,
            'no_of_employees', CASE WHEN g % 10 = 0 THEN NULL ELSE (g * 31) % 5000 END,
            'email_opt_out', g % 23 = 0
          )),
          now() - make_interval(secs => (g * 7) % 31536000), now()
        FROM generate_series(${from}::bigint, ${from + n - 1}::bigint) AS g
      `.execute(trx);
      });
      done += n;
      onProgress?.(done);
    }
  };
  await Promise.all([worker(), worker()]);
  // Merge what is left in the pending list now: searches would otherwise scan it linearly.
  await sql`SELECT gin_clean_pending_list('records_data_idx'::regclass)`.execute(deps.db);
  await sql`ANALYZE records`.execute(deps.db);
  return done;
}
