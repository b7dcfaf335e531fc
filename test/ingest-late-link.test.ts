// A Lead or Contact that gets its address after its mail was synced (created, edited or imported)
// shows that mail as its conversation at once.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingestMail } from '../src/mailbox/ingest.ts';
import { type Client, login, startTestApp, type TestOrg } from './support/app.ts';
import { itemOf, mailOf } from './support/mail-fixtures.ts';

let t: Awaited<ReturnType<typeof startTestApp>>;
let org: TestOrg;
let admin: Client;
let accountId: string;
const tag = randomBytes(4).toString('hex');
let uid = 0;

async function received(from: string, subject: string) {
  const mail = await mailOf({ from, to: org.adminEmail, subject, text: `About ${subject}` });
  const loc = {
    accountId,
    userId: org.adminId,
    folder: 'INBOX',
    uid: ++uid,
    uidl: null,
    direction: 'in' as const,
    seen: false,
  };
  await ingestMail(t.deps, org.orgId, [itemOf(mail, loc)]);
}

const subjectsOf = async (module: string, id: string) =>
  (
    (await admin.req('GET', `/api/modules/${module}/records/${id}/conversations`)).body.conversations as {
      emails: { subject: string }[];
    }[]
  ).flatMap((c) => c.emails.map((m) => m.subject));

beforeAll(async () => {
  t = await startTestApp();
  org = await t.createOrg();
  admin = await login(t.app, org.adminEmail, org.adminPassword);
  accountId = (
    await t.deps.db
      .insertInto('mailbox_accounts')
      .values({
        org_id: org.orgId,
        user_id: org.adminId,
        protocol: 'imap',
        host: 'imap.test',
        port: 993,
        security: 'tls',
        username: org.adminEmail,
        secret_enc: 'x',
        email_address: org.adminEmail,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
});
afterAll(() => t?.stop());

describe('mail synced before its record exists', () => {
  it('is linked when a lead is created with that address', async () => {
    await received(`Early.${tag}@prospect.example`, 'Pricing question');
    const lead = await admin.req('POST', '/api/modules/leads/records', {
      data: { last_name: 'Early', company: 'P', email: `early.${tag}@prospect.example` },
    });
    expect(lead.status).toBe(201);
    expect(await subjectsOf('leads', lead.body.id)).toEqual(['Pricing question']);
  });

  it('is linked when a contact is given that address', async () => {
    await received(`moved.${tag}@new.example`, 'New address');
    const c = await admin.req('POST', '/api/modules/contacts/records', { data: { last_name: 'Moved' } });
    expect(await subjectsOf('contacts', c.body.id)).toEqual([]);
    await admin.req('PATCH', `/api/modules/contacts/records/${c.body.id}`, {
      data: { email: `moved.${tag}@new.example` },
    });
    expect(await subjectsOf('contacts', c.body.id)).toEqual(['New address']);
  });

  it('is linked when leads are imported', async () => {
    await received(`imported.${tag}@list.example`, 'From the list');
    const r = await admin.req('POST', '/api/modules/leads/import', {
      csv: `Last Name,Company,Email\nImported,L,imported.${tag}@list.example\nOther,L,nobody.${tag}@list.example\n`,
      mapping: { 'Last Name': 'last_name', Company: 'company', Email: 'email' },
    });
    expect(r.body.imported).toBe(2);
    const rows = await t.deps.db
      .selectFrom('records')
      .select(['id'])
      .where('org_id', '=', org.orgId)
      .where(({ ref }) => ref('data', '->>').key('email'), '=', `imported.${tag}@list.example`)
      .execute();
    expect(rows).toHaveLength(1);
    expect(await subjectsOf('leads', rows[0].id)).toEqual(['From the list']);
  });
});
