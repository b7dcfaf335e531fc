// SalesInbox on a big mailbox: 20,000 emails of one user (a quarter from leads), another user's
// 20,000 in the same org. The first page of each tab and of a sales-condition filter, and a deep
// keyset page, stay fast (loose bounds: the machine is shared; the figures are printed).
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Actor, acceptInvite, actorForUser, inviteUser } from '../src/crm/index.ts';
import { queryInbox } from '../src/mailbox/inbox/inbox.service.ts';
import { mailbox } from './salesinbox-fixtures.ts';
import { createTestOrg, type TestOrg, testDeps } from './support/app.ts';

const N = 20_000;
const deps = testDeps();
let org: TestOrg;
let ann: Actor;

beforeAll(async () => {
  org = await createTestOrg(deps);
  ann = (await actorForUser(deps, { userId: org.adminId })) as Actor;
  const inv = await inviteUser(deps, ann, {
    email: `bob-${org.orgId}@x.example`,
    name: 'Bob',
    profileId: org.standardProfileId,
  });
  await acceptInvite(deps, { token: inv.inviteToken, password: 'bob-password-123' });
  const leads = await deps.db
    .selectFrom('modules')
    .select('id')
    .where('org_id', '=', org.orgId)
    .where('api_name', '=', 'leads')
    .executeTakeFirstOrThrow();
  // 500 leads, every 10th from a trade show.
  await sql`INSERT INTO records (org_id, module_id, owner_id, created_by, data)
    SELECT ${org.orgId}, ${leads.id}, ${org.adminId}, ${org.adminId},
      jsonb_build_object('last_name', 'Lead ' || i, 'email', 'lead' || i || '@buyer.example',
        'lead_source', CASE WHEN i % 10 = 0 THEN 'Trade Show' ELSE 'Web Download' END)
    FROM generate_series(1, 500) AS i`.execute(deps.db);
  for (const [userId, tag] of [
    [org.adminId, 'a'],
    [inv.user.id, 'b'],
  ] as const) {
    const box = await mailbox(deps, org.orgId, userId, `${tag}@acme.example`);
    await sql`INSERT INTO mail_messages (org_id, message_key, message_id_header, thread_id, subject, from_address,
        participants, date, snippet, source)
      SELECT ${org.orgId}, '<' || ${tag} || i || '@scale>', '<' || ${tag} || i || '@scale>', gen_random_uuid(),
        'Subject ' || i, CASE WHEN i % 4 = 0 THEN 'lead' || (i / 4 % 500 + 1) || '@buyer.example' ELSE 'x' || i || '@other.example' END,
        ARRAY[CASE WHEN i % 4 = 0 THEN 'lead' || (i / 4 % 500 + 1) || '@buyer.example' ELSE 'x' || i || '@other.example' END],
        now() - make_interval(mins => i), 'snippet', 'imap'
      FROM generate_series(1, ${N}) AS i`.execute(deps.db);
    await sql`INSERT INTO mail_locations (org_id, mail_id, account_id, user_id, folder, uid, direction, seen, date)
      SELECT org_id, id, ${box.accountId}, ${userId}, 'INBOX', row_number() OVER (), 'in', false, date
      FROM mail_messages WHERE org_id = ${org.orgId} AND message_key LIKE ${`<${tag}%@scale>`}`.execute(
      deps.db,
    );
  }
  await sql`INSERT INTO mail_record_links (mail_id, record_id, org_id, module_id, role)
    SELECT m.id, r.id, m.org_id, r.module_id, 'from' FROM mail_messages m
    JOIN records r ON r.org_id = m.org_id AND lower(r.data ->> 'email') = m.from_address
    WHERE m.org_id = ${org.orgId}`.execute(deps.db);
  await sql`ANALYZE mail_messages, mail_locations, mail_record_links, records`.execute(deps.db);
}, 120_000);
afterAll(() => deps.close());

async function timed(body: Record<string, unknown>) {
  await queryInbox(deps, ann, body); // warm
  const t0 = performance.now();
  const r = await queryInbox(deps, ann, body);
  return { ms: performance.now() - t0, r };
}

describe('SalesInbox at 20,000 emails per mailbox', () => {
  it('answers the first pages fast', async () => {
    const crm = await timed({ tab: 'crm' });
    const other = await timed({ tab: 'other' });
    const sales = await timed({
      tab: 'crm',
      sales: [
        {
          module: 'leads',
          criteria: { conditions: [{ field: 'lead_source', op: 'is', value: 'Trade Show' }] },
        },
      ],
    });
    const subject = await timed({ tab: 'all', subject: 'subject 19999' });
    let cursor: string | null = null;
    for (let i = 0; i < 20; i++)
      cursor = (await queryInbox(deps, ann, { tab: 'all', limit: 100, cursor })).nextCursor;
    const deep = await timed({ tab: 'all', limit: 100, cursor });
    expect(crm.r.items).toHaveLength(50);
    expect(other.r.items).toHaveLength(50);
    expect(sales.r.items).toHaveLength(50);
    expect(subject.r.items.map((i) => i.subject)).toEqual(['Subject 19999']);
    expect(deep.r.items).toHaveLength(100);
    const figures = { crm: crm.ms, other: other.ms, sales: sales.ms, subject: subject.ms, page21: deep.ms };
    console.log(
      'salesinbox ms:',
      JSON.stringify(Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, Math.round(v)]))),
    );
    for (const ms of Object.values(figures)) expect(ms).toBeLessThan(1500);
  }, 120_000);
});
