// Rules that add senders as Leads or Contacts: by domain, subject keyword and folder; never for the
// org's own domains, never twice; the sender's mail is linked to the new record.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Actor, acceptInvite, actorForUser, createRecord, inviteUser } from '../src/crm/index.ts';
import { applyLeadRules } from '../src/mailbox/inbox/lead-rules.ts';
import { type Box, deliver, mailbox } from './salesinbox-fixtures.ts';
import { type Client, login, startTestApp, type TestOrg } from './support/app.ts';

let t: Awaited<ReturnType<typeof startTestApp>>;
let org: TestOrg;
let admin: Actor;
let adminClient: Client;
let bobClient: Client;
let box: Box;
let bobBox: Box;
const tag = randomBytes(3).toString('hex');
const own = `acme-${tag}.example`;
const prospect = `prospect-${tag}.example`;

beforeAll(async () => {
  t = await startTestApp();
  org = await t.createOrg();
  admin = (await actorForUser(t.deps, { userId: org.adminId })) as Actor;
  const inv = await inviteUser(t.deps, admin, {
    email: `bob@${own}`,
    name: 'Bob',
    profileId: org.standardProfileId,
  });
  await acceptInvite(t.deps, { token: inv.inviteToken, password: 'bob-password-123' });
  box = await mailbox(t.deps, org.orgId, org.adminId, `ann@${own}`);
  bobBox = await mailbox(t.deps, org.orgId, inv.user.id, `bob@${own}`);
  adminClient = await login(t.app, org.adminEmail, org.adminPassword);
  bobClient = await login(t.app, `bob@${own}`, 'bob-password-123');
  // The org offers "Email" as a Lead Source: rules set it.
  await sql`UPDATE fields SET options = jsonb_set(options, '{values}', (options -> 'values') || '["Email"]')
    WHERE org_id = ${org.orgId} AND api_name = 'lead_source'
      AND module_id = (SELECT id FROM modules WHERE org_id = ${org.orgId} AND api_name = 'leads')`.execute(
    t.deps.db,
  );
});
afterAll(() => t.stop());

const incoming = (from: string, subject: string, opts: { folder?: string; name?: string; to?: Box } = {}) =>
  deliver(
    t.deps,
    org.orgId,
    opts.to ?? box,
    { from, fromName: opts.name, to: [(opts.to ?? box).address], subject, date: new Date() },
    { folder: opts.folder ?? 'INBOX', direction: 'in' },
  );

const recordsWith = async (address: string) =>
  (
    await sql<{ id: string; module: string; data: Record<string, unknown>; owner_id: string }>`
      SELECT r.id, m.api_name AS module, r.data, r.owner_id FROM records r JOIN modules m ON m.id = r.module_id
      WHERE r.org_id = ${org.orgId} AND lower(r.data ->> 'email') = ${address}`.execute(t.deps.db)
  ).rows;

const linksOf = (mailId: string) =>
  t.deps.db
    .selectFrom('mail_record_links')
    .select(['record_id', 'role'])
    .where('mail_id', '=', mailId)
    .execute();

async function rule(c: Client, body: Record<string, unknown>) {
  const r = await c.req('POST', '/api/inbox/lead-rules', body);
  expect(r.status, r.text).toBe(201);
  return r.body;
}

describe('lead rules', () => {
  it('checks rules when they are made', async () => {
    const badDomain = await adminClient.req('POST', '/api/inbox/lead-rules', {
      module: 'leads',
      match: 'domain',
      values: ['not a domain'],
    });
    expect(badDomain.status).toBe(400);
    expect(badDomain.body.error.message).toContain('"not a domain" is not a domain');
    const orgRuleByBob = await bobClient.req('POST', '/api/inbox/lead-rules', {
      scope: 'org',
      module: 'leads',
      match: 'keyword',
      values: ['x'],
    });
    expect(orgRuleByBob.status).toBe(403);
  });

  it('adds a sender by domain (subdomains too), names split, owned by the mailbox owner, mail linked', async () => {
    await rule(adminClient, {
      scope: 'org',
      module: 'leads',
      match: 'domain',
      values: [`@${prospect.toUpperCase()}`],
    });
    const first = await incoming(`ann.lee@sales.${prospect}`, 'Hello', { name: 'Ann Lee' });
    const second = await incoming(`ann.lee@sales.${prospect}`, 'Again', { name: 'Ann Lee' });
    // Ingest applied the rule as the mail arrived: running it again adds nothing.
    expect(await applyLeadRules(t.deps, org.orgId, [first, second])).toBe(0);
    const [lead] = await recordsWith(`ann.lee@sales.${prospect}`);
    expect(lead).toMatchObject({
      module: 'leads',
      owner_id: org.adminId,
      data: { first_name: 'Ann', last_name: 'Lee', email: `ann.lee@sales.${prospect}`, lead_source: 'Email' },
    });
    expect(await linksOf(first)).toEqual([{ record_id: lead.id, role: 'from' }]);
    expect(await linksOf(second)).toEqual([{ record_id: lead.id, role: 'from' }]);
    // The inbox now shows it under CRM mail.
    const crm = await adminClient.req('POST', '/api/inbox/query', { tab: 'crm' });
    expect(crm.body.items.map((i: { id: string }) => i.id)).toEqual(expect.arrayContaining([first, second]));
  });

  it('never twice: not again for the same address, even once the record is gone, nor for an existing one', async () => {
    const again = await incoming(`ann.lee@sales.${prospect}`, 'Third time');
    expect(await applyLeadRules(t.deps, org.orgId, [again])).toBe(0);
    const [lead] = await recordsWith(`ann.lee@sales.${prospect}`);
    await t.deps.db.deleteFrom('records').where('id', '=', lead.id).execute();
    const afterDelete = await incoming(`ann.lee@sales.${prospect}`, 'Fourth time');
    expect(await applyLeadRules(t.deps, org.orgId, [afterDelete])).toBe(0);
    expect(await recordsWith(`ann.lee@sales.${prospect}`)).toEqual([]);
    // Already a Contact: no Lead is added.
    await createRecord(t.deps, admin, 'contacts', {
      data: { last_name: 'Known', email: `known@${prospect}` },
    });
    const known = await incoming(`KNOWN@${prospect}`, 'Hi');
    expect(await applyLeadRules(t.deps, org.orgId, [known])).toBe(0);
    expect((await recordsWith(`known@${prospect}`)).map((r) => r.module)).toEqual(['contacts']);
    // Two ingests of a new sender at once: one record.
    await Promise.all([incoming(`race@${prospect}`, 'One'), incoming(`race@${prospect}`, 'Two')]);
    expect(await recordsWith(`race@${prospect}`)).toHaveLength(1);
  });

  it('adds a Contact by subject keyword, a Lead by folder; user rules apply to their own mailbox only', async () => {
    await rule(adminClient, { module: 'contacts', match: 'keyword', values: ['pricing', 'quote'] });
    await rule(adminClient, { module: 'leads', match: 'folder', values: ['Prospects'] });
    await rule(bobClient, { module: 'leads', match: 'keyword', values: ['bob-only'] });
    const kw = await incoming(`carla@other-${tag}.example`, 'Re: PRICING for 2027', { name: 'Lee, Carla' });
    const folder = await incoming(`dan@third-${tag}.example`, 'Hi', { folder: 'Prospects' });
    const inboxOnly = await incoming(`erin@fourth-${tag}.example`, 'Hi');
    const bobsWord = await incoming(`fay@fifth-${tag}.example`, 'bob-only topic');
    expect(await applyLeadRules(t.deps, org.orgId, [kw, folder, inboxOnly, bobsWord])).toBe(0);
    expect(await recordsWith(`carla@other-${tag}.example`)).toMatchObject([
      { module: 'contacts', data: { first_name: 'Carla', last_name: 'Lee' } },
    ]);
    expect(await recordsWith(`dan@third-${tag}.example`)).toMatchObject([
      { module: 'leads', data: { last_name: 'dan' } },
    ]);
    expect(await recordsWith(`erin@fourth-${tag}.example`)).toEqual([]);
    expect(await recordsWith(`fay@fifth-${tag}.example`)).toEqual([]);
    // In Bob's mailbox his rule applies, and he owns the record.
    const toBob = await incoming(`gil@sixth-${tag}.example`, 'bob-only topic', { to: bobBox });
    expect(await applyLeadRules(t.deps, org.orgId, [toBob])).toBe(0);
    expect((await recordsWith(`gil@sixth-${tag}.example`))[0].owner_id).toBe(bobBox.userId);
  });

  it("never adds the org's own domains, nor senders of outgoing mail", async () => {
    await rule(adminClient, {
      scope: 'org',
      module: 'leads',
      match: 'domain',
      values: [own, 'test.example'],
    });
    const colleague = await incoming(`carol@${own}`, 'pricing lunch?');
    // The admin's own login domain (test.example) is the org's too.
    const adminDomain = await incoming(`someone@test.example`, 'quote');
    const out = await deliver(
      t.deps,
      org.orgId,
      box,
      { from: box.address, to: [`hal@${prospect}`], subject: 'quote', date: new Date() },
      { direction: 'out' },
    );
    expect(await applyLeadRules(t.deps, org.orgId, [colleague, adminDomain, out])).toBe(0);
    expect(await recordsWith(`carol@${own}`)).toEqual([]);
    expect(await recordsWith('someone@test.example')).toEqual([]);
    expect(await recordsWith(box.address)).toEqual([]);
    // Rules can be switched off.
    const list = await adminClient.req('GET', '/api/inbox/lead-rules');
    expect(list.body.rules.length).toBe(4);
    for (const r of list.body.rules)
      expect(
        (await adminClient.req('PATCH', `/api/inbox/lead-rules/${r.id}`, { active: false })).status,
      ).toBe(200);
    const off = await incoming(`ivy@${prospect}`, 'pricing');
    expect(await applyLeadRules(t.deps, org.orgId, [off])).toBe(0);
    expect((await bobClient.req('DELETE', `/api/inbox/lead-rules/${list.body.rules[0].id}`)).status).toBe(
      403,
    );
  });
});
