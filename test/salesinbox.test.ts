// SalesInbox over the API: the CRM tab first, email and sales filters, labels, keyset paging, and
// that a user only ever sees their own mailbox's mail of their own org.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptInvite, actorForUser, createRecord, inviteUser } from '../src/crm/index.ts';
import { type Box, deliver, mailbox } from './salesinbox-fixtures.ts';
import { type Client, login, startTestApp, type TestOrg } from './support/app.ts';

let t: Awaited<ReturnType<typeof startTestApp>>;
let org: TestOrg;
let other: TestOrg;
let a: Client; // the admin, owner of mailbox A
let b: Client; // a colleague with the standard profile, mailbox B
let z: Client; // another org's admin
const mail: Record<string, string> = {};
const hour = 3_600_000;
const base = Date.now() - 48 * hour;
const at = (h: number) => new Date(base + h * hour);

beforeAll(async () => {
  t = await startTestApp();
  const deps = t.deps;
  org = await t.createOrg();
  other = await t.createOrg();
  const admin = await actorForUser(deps, { userId: org.adminId });
  if (!admin) throw new Error('no actor');
  const tag = Math.random().toString(36).slice(2, 8);
  const colleague = `bob-${tag}@acme-${tag}.example`;
  const inv = await inviteUser(deps, admin, {
    email: colleague,
    name: 'Bob B',
    profileId: org.standardProfileId,
  });
  await acceptInvite(deps, { token: inv.inviteToken, password: 'bob-password-123' });

  const rec = async (module: string, data: Record<string, unknown>) =>
    (await createRecord(deps, admin, module, { data })).id;
  await rec('leads', { last_name: 'Fair', email: 'fair@buyer.example', lead_source: 'Trade Show' });
  await rec('leads', { last_name: 'Web', email: 'web@buyer.example', lead_source: 'Web Download' });
  const c1 = await rec('contacts', { last_name: 'Soon', email: 'soon@client.example' });
  const c2 = await rec('contacts', { last_name: 'Late', email: 'late@client.example' });
  const today = new Date().toISOString().slice(0, 10);
  await rec('deals', { deal_name: 'Closing now', contact_id: c1, closing_date: today });
  await rec('deals', {
    deal_name: 'Closing later',
    contact_id: c2,
    closing_date: `${new Date().getUTCFullYear() + 2}-06-01`,
  });

  const boxA: Box = await mailbox(deps, org.orgId, org.adminId, `me-${tag}@acme-${tag}.example`);
  const boxB: Box = await mailbox(deps, org.orgId, inv.user.id, colleague);
  const me = boxA.address;
  mail.fair = await deliver(deps, org.orgId, boxA, {
    from: 'fair@buyer.example',
    to: [me],
    subject: 'Met you at the trade show',
    date: at(1),
    attachment: true,
  });
  mail.web = await deliver(deps, org.orgId, boxA, {
    from: 'web@buyer.example',
    to: [me],
    subject: 'Download question',
    date: at(2),
  });
  mail.soon = await deliver(deps, org.orgId, boxA, {
    from: 'soon@client.example',
    to: [me],
    subject: 'Contract',
    date: at(3),
  });
  mail.late = await deliver(deps, org.orgId, boxA, {
    from: 'late@client.example',
    to: [me],
    subject: 'Next year',
    date: at(4),
  });
  mail.news = await deliver(deps, org.orgId, boxA, {
    from: 'news@nowhere.example',
    to: [me],
    subject: 'Newsletter',
    date: at(5),
  });
  mail.offer = await deliver(deps, org.orgId, boxA, {
    from: me,
    to: ['fair@buyer.example'],
    subject: 'Our offer',
    date: at(6),
  });
  mail.bobs = await deliver(deps, org.orgId, boxB, {
    from: 'fair@buyer.example',
    to: [colleague],
    subject: 'For Bob only',
    date: at(7),
  });
  // The same lead's address writes to another org: never part of this org's inbox.
  const boxZ = await mailbox(deps, other.orgId, other.adminId, `z-${tag}@zeta-${tag}.example`);
  mail.zeta = await deliver(deps, other.orgId, boxZ, {
    from: 'fair@buyer.example',
    to: [boxZ.address],
    subject: 'Zeta',
    date: at(8),
  });

  a = await login(t.app, org.adminEmail, org.adminPassword);
  b = await login(t.app, colleague, 'bob-password-123');
  z = await login(t.app, other.adminEmail, other.adminPassword);
});
afterAll(() => t.stop());

const ids = (res: { body: { items: { id: string }[] } }) => res.body.items.map((i) => i.id);
const query = async (c: Client, body: Record<string, unknown>) => {
  const r = await c.req('POST', '/api/inbox/query', body);
  expect(r.status, r.text).toBe(200);
  return r;
};
const tradeShow = { conditions: [{ field: 'lead_source', op: 'is', value: 'Trade Show' }] };

describe('SalesInbox', () => {
  it('shows the mail from and to CRM records first, the rest under Other', async () => {
    const crm = await query(a, { tab: 'crm' });
    expect(ids(crm)).toEqual([mail.offer, mail.late, mail.soon, mail.web, mail.fair]);
    expect(crm.body.items[0]).toMatchObject({
      direction: 'out',
      records: [{ module: 'leads', displayName: 'Fair', role: 'to' }],
    });
    expect(ids(await query(a, { tab: 'other' }))).toEqual([mail.news]);
  });

  it('filters by sales conditions of the linked record, in the criteria language', async () => {
    expect(ids(await query(a, { tab: 'all', sales: [{ module: 'leads', criteria: tradeShow }] }))).toEqual([
      mail.offer,
      mail.fair,
    ]);
    expect(ids(await query(a, { sales: [{ module: 'leads', criteria: tradeShow, role: 'from' }] }))).toEqual([
      mail.fair,
    ]);
    // Contacts of deals closing this month: Deals' criteria, joined through the deal's Contact lookup.
    const closing = {
      module: 'contacts',
      related: {
        module: 'deals',
        field: 'contact_id',
        criteria: { conditions: [{ field: 'closing_date', op: 'this_month' }] },
      },
    };
    expect(ids(await query(a, { sales: [closing] }))).toEqual([mail.soon]);
    // Mixed with an email condition.
    expect(ids(await query(a, { sales: [closing], subject: 'nothing like it' }))).toEqual([]);
  });

  it('answers a bad sales condition with a 400 naming it', async () => {
    const r = await a.req('POST', '/api/inbox/query', {
      sales: [{ module: 'leads', criteria: { conditions: [{ field: 'lead_sauce', op: 'is', value: 'x' }] } }],
    });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('invalid_criteria');
    expect(r.body.error.message).toContain(
      'Sales condition 1 (leads): condition 1: unknown field "lead_sauce"',
    );
    const lookup = await a.req('POST', '/api/inbox/query', {
      sales: [{ module: 'contacts', related: { module: 'deals', field: 'deal_name', criteria: tradeShow } }],
    });
    expect(lookup.status).toBe(400);
    expect(lookup.body.error.message).toContain('"deal_name" is not a lookup to Contacts');
  });

  it('filters by email conditions: from, to, subject, attachment, unread, direction, dates', async () => {
    expect(ids(await query(a, { tab: 'all', from: 'WEB@buyer' }))).toEqual([mail.web]);
    expect(ids(await query(a, { tab: 'all', to: 'fair@' }))).toEqual([mail.offer]);
    expect(ids(await query(a, { tab: 'all', subject: 'trade SHOW' }))).toEqual([mail.fair]);
    expect(ids(await query(a, { tab: 'all', hasAttachment: true }))).toEqual([mail.fair]);
    expect(ids(await query(a, { tab: 'all', direction: 'out' }))).toEqual([mail.offer]);
    expect(
      ids(await query(a, { tab: 'all', after: at(2).toISOString(), before: at(4).toISOString() })),
    ).toEqual([mail.soon, mail.web]);
    // Parley's own read flag.
    const seen = await a.req('POST', '/api/inbox/seen', { mailIds: [mail.web, mail.soon], seen: true });
    expect(seen.body).toEqual({ updated: 2 });
    const unread = await query(a, { tab: 'crm', unread: true });
    expect(ids(unread)).toEqual([mail.late, mail.fair]);
    expect(ids(await query(a, { tab: 'crm', unread: false }))).toEqual([mail.offer, mail.soon, mail.web]);
  });

  it('pages with a keyset cursor, without gaps or repeats', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await query(a, { tab: 'all', limit: 2, cursor });
      seen.push(...ids(r));
      cursor = r.body.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([mail.offer, mail.news, mail.late, mail.soon, mail.web, mail.fair]);
    const bad = await a.req('POST', '/api/inbox/query', { cursor: 'not-a-cursor' });
    expect(bad.status).toBe(400);
  });

  it('labels: coloured, several per email, filterable, private to their owner', async () => {
    const hot = await a.req('POST', '/api/inbox/labels', { name: 'Hot', colour: 'red' });
    const deal = await a.req('POST', '/api/inbox/labels', { name: 'Deal', colour: 'green' });
    expect(hot.status).toBe(201);
    expect((await a.req('POST', '/api/inbox/labels', { name: 'hot', colour: 'blue' })).status).toBe(409);
    expect((await a.req('POST', '/api/inbox/labels', { name: 'Odd', colour: 'chartreuse' })).status).toBe(
      400,
    );
    const apply = await a.req('POST', '/api/inbox/labels/apply', {
      mailIds: [mail.fair],
      add: [hot.body.id, deal.body.id],
    });
    expect(apply.status).toBe(200);
    await a.req('POST', '/api/inbox/labels/apply', { mailIds: [mail.soon], add: [deal.body.id] });
    const withDeal = await query(a, { tab: 'all', labelIds: [deal.body.id] });
    expect(ids(withDeal)).toEqual([mail.soon, mail.fair]);
    expect(withDeal.body.items[1].labels).toEqual([
      { id: deal.body.id, name: 'Deal', colour: 'green' },
      { id: hot.body.id, name: 'Hot', colour: 'red' },
    ]);
    await a.req('POST', '/api/inbox/labels/apply', { mailIds: [mail.fair], remove: [hot.body.id] });
    expect(ids(await query(a, { tab: 'all', labelIds: [hot.body.id] }))).toEqual([]);
    // Bob can neither use Ann's label nor label Ann's mail; he does not see her labels.
    const bobs = await b.req('POST', '/api/inbox/labels', { name: 'Mine', colour: 'teal' });
    expect(
      (await b.req('POST', '/api/inbox/labels/apply', { mailIds: [mail.bobs], add: [deal.body.id] })).status,
    ).toBe(404);
    expect(
      (await b.req('POST', '/api/inbox/labels/apply', { mailIds: [mail.fair], add: [bobs.body.id] })).status,
    ).toBe(404);
    expect(
      (await b.req('GET', '/api/inbox/labels')).body.labels.map((l: { name: string }) => l.name),
    ).toEqual(['Mine']);
    expect((await b.req('DELETE', `/api/inbox/labels/${deal.body.id}`)).status).toBe(404);
    expect((await a.req('DELETE', `/api/inbox/labels/${deal.body.id}`)).status).toBe(204);
  });

  it("never shows another user's mail, nor another org's", async () => {
    expect(ids(await query(b, { tab: 'all' }))).toEqual([mail.bobs]);
    expect((await b.req('GET', `/api/inbox/mail/${mail.fair}`)).status).toBe(404);
    expect((await b.req('POST', '/api/inbox/seen', { mailIds: [mail.fair], seen: true })).body).toEqual({
      updated: 0,
    });
    const all = ids(await query(a, { tab: 'all', limit: 100 }));
    expect(all).not.toContain(mail.bobs);
    expect(all).not.toContain(mail.zeta);
    expect(ids(await query(z, { tab: 'all' }))).toEqual([mail.zeta]);
    expect((await z.req('GET', `/api/inbox/mail/${mail.fair}`)).status).toBe(404);
    // Org Z's sales condition sees its own records only: it has no Trade Show lead.
    expect(ids(await query(z, { tab: 'all', sales: [{ module: 'leads', criteria: tradeShow }] }))).toEqual(
      [],
    );
    const own = await a.req('GET', `/api/inbox/mail/${mail.fair}`);
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({
      subject: 'Met you at the trade show',
      hasAttachments: true,
      records: [{ module: 'leads', displayName: 'Fair', role: 'from' }],
    });
  });
});
