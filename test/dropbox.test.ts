// The BCC dropbox end to end over real SMTP: the inbound listener on a free port (the one that
// receives bounces), nodemailer as the user's mail client (DKIM-signing like a real provider), a
// DNS resolver answering from a table (SPF and DKIM records), the API as admins use it.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptInvite, inviteUser } from '../src/crm/index.ts';
import { dropboxInbound } from '../src/mailbox/dropbox/metrics.ts';
import { dkimDnsName, generateDkimKey } from '../src/sending/dkim.ts';
import { verpReturnPath } from '../src/sending/verp.ts';
import { type BounceListener, startBounceListener } from '../src/tracking/bounces/inbound.ts';
import { adminActor, type Client, login, startTestApp, type TestOrg } from './support/app.ts';
import { dsn, smtpSend } from './support/bounce-mail.ts';

let t: Awaited<ReturnType<typeof startTestApp>>;
let listener: BounceListener;
const tag = () => randomBytes(4).toString('hex');

// The sender's domain publishes SPF for 127.0.0.1 and a DKIM key; other.test publishes nothing.
const SENDER_DOMAIN = 'sender.test';
const key = generateDkimKey('rsa-sha256');
const dns: Record<string, string> = {
  [SENDER_DOMAIN]: 'v=spf1 ip4:127.0.0.1 -all',
  [dkimDnsName('s1', SENDER_DOMAIN)]: key.dnsValue,
  'strict.test': 'v=spf1 ip4:192.0.2.1 -all',
};
async function resolver(name: string, type: string) {
  const v = dns[name.toLowerCase()];
  if (type !== 'TXT' || !v) throw Object.assign(new Error(`no ${type} for ${name}`), { code: 'ENOTFOUND' });
  return [[v]];
}

interface Org extends TestOrg {
  admin: Client;
  address: string;
  leadId: string;
  contactId: string;
  lead: string;
  contact: string;
}

async function newOrg(): Promise<Org> {
  const o = await t.createOrg();
  const admin = await login(t.app, o.adminEmail, o.adminPassword);
  const lead = `lena-${tag()}@client.example`;
  const contact = `carl-${tag()}@client.example`;
  const leadId = (
    await admin.req('POST', '/api/modules/leads/records', {
      data: { first_name: 'Lena', last_name: 'Lead', email: lead, company: 'Client' },
    })
  ).body.id as string;
  const contactId = (
    await admin.req('POST', '/api/modules/contacts/records', {
      data: { first_name: 'Carl', last_name: 'Contact', email: contact },
    })
  ).body.id as string;
  const box = await admin.req('GET', '/api/admin/dropbox');
  expect(box.status).toBe(200);
  return { ...o, admin, address: box.body.address, leadId, contactId, lead, contact };
}

/** Mails like a user's client does: MAIL FROM the sender, the dropbox only as a BCC. */
async function mail(o: {
  from: string;
  to: string[];
  cc?: string[];
  bcc: string;
  subject?: string;
  dkim?: boolean;
}) {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: listener.port,
    secure: false,
    ignoreTLS: true,
    name: 'mta.sender.test',
    ...(o.dkim
      ? { dkim: { domainName: SENDER_DOMAIN, keySelector: 's1', privateKey: key.privateKeyPem } }
      : {}),
  });
  const subject = o.subject ?? `Proposal ${tag()}`;
  const info = await transport.sendMail({
    from: o.from,
    to: o.to,
    cc: o.cc,
    bcc: o.bcc,
    subject,
    text: 'Here is our proposal.',
    attachments: [{ filename: 'proposal.txt', content: 'the terms' }],
  });
  transport.close();
  return { subject, info };
}

async function items(c: Client, state = 'unmatched') {
  const r = await c.req('GET', `/api/admin/dropbox/items?state=${state}`);
  expect(r.status).toBe(200);
  return r.body.items as any[];
}
const linksOf = (mailId: string) =>
  t.deps.db
    .selectFrom('mail_record_links')
    .select(['record_id', 'role', 'org_id'])
    .where('mail_id', '=', mailId)
    .orderBy('role')
    .execute();
const counter = async (outcome: string) =>
  (await dropboxInbound.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;

/** The confirmation link mailed to an address (a queued system message). */
async function confirmationLink(orgId: string, to: string) {
  const m = await t.deps.db
    .selectFrom('messages')
    .select(['text', 'subject', 'kind'])
    .where('org_id', '=', orgId)
    .where('to_address', '=', to)
    .orderBy('created_at', 'desc')
    .executeTakeFirstOrThrow();
  expect(m.kind).toBe('system');
  const link = /https?:\/\/\S+\/dropbox\/verify\?token=[A-Za-z0-9_-]+/.exec(m.text ?? '')?.[0];
  expect(link).toBeTruthy();
  return new URL(link as string);
}

let a: Org;
let rep: string;
const confirmSender = (token: string) =>
  t.app.inject({
    method: 'POST',
    url: '/dropbox/verify',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ token }).toString(),
  });

beforeAll(async () => {
  t = await startTestApp();
  listener = await startBounceListener(t.deps, { port: 0, host: '127.0.0.1', resolver });
  a = await newOrg();
  rep = `rep-${tag()}@${SENDER_DOMAIN}`;
  // A rep's own address elsewhere: verified by the link mailed to it.
  const added = await a.admin.req('POST', '/api/admin/dropbox/senders', { email: rep.toUpperCase() });
  expect(added.status).toBe(201);
  expect(added.body).toMatchObject({ email: rep, verified: false });
  const link = await confirmationLink(a.orgId, rep);
  // Opening the link only asks (a link scanner's GET confirms nothing); the page's button confirms.
  const opened = await t.app.inject({ method: 'GET', url: `${link.pathname}${link.search}` });
  expect(opened.statusCode).toBe(200);
  expect(opened.body).toContain('<button type="submit">Confirm</button>');
  const unconfirmed = (await a.admin.req('GET', '/api/admin/dropbox')).body.senders;
  expect(unconfirmed.find((s: any) => s.email === rep).verified).toBe(false);
  const confirmed = await confirmSender(link.searchParams.get('token') as string);
  expect(confirmed.statusCode).toBe(200);
  expect(confirmed.body).toContain('Address confirmed');
  // Works once.
  expect((await confirmSender(link.searchParams.get('token') as string)).statusCode).toBe(400);
  // The admin's login email is verified at once.
  const own = await a.admin.req('POST', '/api/admin/dropbox/senders', { email: a.adminEmail });
  expect(own.body).toMatchObject({ email: a.adminEmail.toLowerCase(), verified: true });
  const list = (await a.admin.req('GET', '/api/admin/dropbox')).body.senders;
  expect(list.map((s: any) => [s.email, s.verified])).toEqual(
    expect.arrayContaining([
      [rep, true],
      [a.adminEmail.toLowerCase(), true],
    ]),
  );
});
afterAll(async () => {
  await listener?.close();
  await t?.stop();
});

describe('the dropbox address', () => {
  it('is dropbox-<160-bit token>@the inbound domain, stable until regenerated; the old one is then refused', async () => {
    const o = await newOrg();
    expect(o.address).toMatch(/^dropbox-[a-z2-7]{32}@localhost$/);
    expect((await o.admin.req('GET', '/api/admin/dropbox')).body.address).toBe(o.address);
    // The token is stored hashed and encrypted, never as such.
    const row = await t.deps.db
      .selectFrom('dropbox_addresses')
      .selectAll()
      .where('org_id', '=', o.orgId)
      .executeTakeFirstOrThrow();
    const token = o.address.slice('dropbox-'.length, o.address.indexOf('@'));
    expect(JSON.stringify(row)).not.toContain(token);

    const before = await counter('refused');
    const next = await o.admin.req('POST', '/api/admin/dropbox/regenerate');
    expect(next.status).toBe(200);
    expect(next.body.address).not.toBe(o.address);
    const raw = 'From: x@other.test\r\nTo: y@client.example\r\nSubject: hi\r\n\r\nhi\r\n';
    expect((await smtpSend(listener.port, 'x@other.test', [o.address], raw)).rcpt).toEqual([550]);
    // Any domain, any letter case of the token.
    const other = next.body.address.replace('@localhost', '@mx.elsewhere.example').toUpperCase();
    expect(await smtpSend(listener.port, 'x@other.test', [other], raw)).toMatchObject({
      rcpt: [250],
      data: 250,
    });
    expect(await counter('refused')).toBe(before + 1);
  });

  it('refuses a wrong or malformed token at RCPT, counted, and nothing is stored', async () => {
    const before = await counter('refused');
    const wrong = `dropbox-${'a'.repeat(32)}@localhost`;
    const r = await smtpSend(
      listener.port,
      rep,
      [wrong, 'dropbox-short@localhost'],
      'Subject: x\r\n\r\nx\r\n',
    );
    expect(r.rcpt).toEqual([550, 550]);
    expect(r.data).toBeUndefined();
    expect(await counter('refused')).toBe(before + 2);
    await expect(mail({ from: rep, to: [a.lead], bcc: wrong })).rejects.toMatchObject({ responseCode: 550 });
  });
});

describe('mail received at the dropbox', () => {
  it('from a verified sender, DKIM-signed, is attached to the lead it was sent to and the contact in Cc', async () => {
    const { subject } = await mail({
      from: `Rita Rep <${rep}>`,
      to: [a.lead],
      cc: [a.contact],
      bcc: a.address,
      dkim: true,
    });
    const item = (await items(a.admin, 'attached')).find((i) => i.subject === subject);
    expect(item).toMatchObject({
      fromAddress: rep,
      fromName: 'Rita Rep',
      envelopeFrom: rep,
      spf: 'pass',
      dkim: 'pass',
      dkimDomain: SENDER_DOMAIN,
      state: 'attached',
      reason: null,
      remoteIp: '127.0.0.1',
    });
    expect(item.records.map((r: any) => r.id).sort()).toEqual([a.leadId, a.contactId].sort());
    expect(await linksOf(item.mailId)).toEqual([
      { record_id: a.contactId, role: 'cc', org_id: a.orgId },
      { record_id: a.leadId, role: 'to', org_id: a.orgId },
    ]);
    const stored = await t.deps.db
      .selectFrom('mail_messages')
      .select(['source', 'subject', 'has_attachments'])
      .where('id', '=', item.mailId)
      .executeTakeFirstOrThrow();
    expect(stored).toEqual({ source: 'dropbox', subject, has_attachments: true });
    // The small attachment is kept: no mailbox can serve it later.
    const att = await t.deps.db
      .selectFrom('mail_attachments')
      .select(['filename', 'content'])
      .where('mail_id', '=', item.mailId)
      .executeTakeFirstOrThrow();
    expect(att.filename).toBe('proposal.txt');
    expect(att.content?.toString()).toBe('the terms');
  });

  it('an unsigned message shows DKIM none; a signature that does not verify shows fail', async () => {
    const { subject } = await mail({ from: rep, to: [a.lead], bcc: a.address });
    const plain = (await items(a.admin, 'attached')).find((i) => i.subject === subject);
    expect(plain).toMatchObject({ dkim: 'none', spf: 'pass', dkimDetail: 'message not signed' });

    const signed = [
      `From: ${rep}`,
      `To: ${a.lead}`,
      'Subject: altered',
      'DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=sender.test; s=s1; h=from:to:subject; bh=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=; b=AAAA',
      '',
      'body',
      '',
    ].join('\r\n');
    expect((await smtpSend(listener.port, 'x@other.test', [a.address], signed)).data).toBe(250);
    const altered = (await items(a.admin, 'attached')).find((i) => i.subject === 'altered');
    expect(altered.dkim).not.toBe('pass');
    expect(['fail', 'neutral']).toContain(altered.dkim);
    // MAIL FROM other.test, which publishes no SPF.
    expect(altered.spf).toBe('none');
  });

  it('from an unverified sender is kept unmatched, linked to nothing', async () => {
    const { subject } = await mail({ from: `stranger-${tag()}@other.test`, to: [a.lead], bcc: a.address });
    const item = (await items(a.admin)).find((i) => i.subject === subject);
    expect(item).toMatchObject({
      state: 'unmatched',
      reason: 'unverified_sender',
      spf: 'none',
      dkim: 'none',
    });
    expect(item.records).toEqual([]);
    expect(await linksOf(item.mailId)).toEqual([]);
  });

  it('from a verified address whose domain refuses this host by SPF, unsigned, is not believed', async () => {
    const strict = `boss-${tag()}@strict.test`;
    await t.deps.db
      .insertInto('dropbox_senders')
      .values({ org_id: a.orgId, email: strict, verified_at: new Date() })
      .execute();
    const { subject } = await mail({ from: strict, to: [a.lead], bcc: a.address });
    const item = (await items(a.admin)).find((i) => i.subject === subject);
    expect(item).toMatchObject({
      state: 'unmatched',
      reason: 'unverified_sender',
      spf: 'fail',
      dkim: 'none',
    });
    expect(item.spfDetail).toContain('does not designate 127.0.0.1');
  });

  it('from a verified sender to no known record is unmatched: no record matched', async () => {
    const { subject } = await mail({
      from: a.adminEmail,
      to: [`nobody-${tag()}@unknown.example`],
      bcc: a.address,
    });
    const item = (await items(a.admin)).find((i) => i.subject === subject);
    expect(item).toMatchObject({ state: 'unmatched', reason: 'no_record' });
  });

  it("never links the sender's own address, even when a lead has it", async () => {
    const o = await newOrg();
    const self = (
      await o.admin.req('POST', '/api/modules/leads/records', {
        data: { last_name: 'Admin as a lead', email: o.adminEmail },
      })
    ).body.id as string;
    expect(self).toBeTruthy();
    await o.admin.req('POST', '/api/admin/dropbox/senders', { email: o.adminEmail });
    const { subject } = await mail({ from: o.adminEmail, to: [o.contact], bcc: o.address });
    const item = (await items(o.admin, 'attached')).find((i) => i.subject === subject);
    expect((await linksOf(item.mailId)).map((l) => l.record_id)).toEqual([o.contactId]);
  });

  it('a deactivated user or a removed sender is not verified any more', async () => {
    const o = await newOrg();
    const email = `uma-${tag()}@test.example`;
    const { inviteToken, user } = await inviteUser(t.deps, adminActor(o), {
      email,
      name: 'Uma',
      profileId: o.standardProfileId,
    });
    await acceptInvite(t.deps, { token: inviteToken, password: 'user-password-123' });
    const s = await o.admin.req('POST', '/api/admin/dropbox/senders', { email });
    expect(s.body.verified).toBe(true);
    await t.deps.db.updateTable('users').set({ status: 'deactivated' }).where('id', '=', user.id).execute();
    const r1 = await mail({ from: email, to: [o.lead], bcc: o.address });
    expect((await items(o.admin)).find((i) => i.subject === r1.subject)?.reason).toBe('unverified_sender');
    expect((await o.admin.req('DELETE', `/api/admin/dropbox/senders/${s.body.id}`)).status).toBe(204);
    expect((await o.admin.req('GET', '/api/admin/dropbox')).body.senders).toEqual([]);
  });

  it('the same email delivered twice is one item', async () => {
    const raw = [
      `From: ${rep}`,
      `To: ${a.lead}`,
      `Message-ID: <twice-${tag()}@sender.test>`,
      'Subject: twice',
      '',
      'hello',
      '',
    ].join('\r\n');
    for (let i = 0; i < 2; i++) expect((await smtpSend(listener.port, rep, [a.address], raw)).data).toBe(250);
    expect((await items(a.admin, 'attached')).filter((i) => i.subject === 'twice')).toHaveLength(1);
  });

  it('answers 451 when the email cannot be stored, so the sender retries; the retry stores it once', async () => {
    const o = await newOrg();
    await o.admin.req('POST', '/api/admin/dropbox/senders', { email: o.adminEmail });
    // A real failure in the database, for this org only, for as long as the trigger exists.
    const fn = `dropbox_fail_${tag()}`;
    await sql
      .raw(
        `CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
           IF NEW.org_id = '${o.orgId}' THEN RAISE EXCEPTION 'disk full'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER ${fn} BEFORE INSERT ON dropbox_items FOR EACH ROW EXECUTE FUNCTION ${fn}();`,
      )
      .execute(t.deps.db);
    const raw = [
      `From: ${o.adminEmail}`,
      `To: ${o.lead}`,
      `Message-ID: <retry-${tag()}@test.example>`,
      'Subject: retried',
      '',
      'hello',
      '',
    ].join('\r\n');
    const errorsBefore = await counter('error');
    try {
      const r = await smtpSend(listener.port, o.adminEmail, [o.address], raw);
      expect(r).toMatchObject({ rcpt: [250], data: 451 });
      expect(await counter('error')).toBe(errorsBefore + 1);
      expect(await items(o.admin, 'attached')).toEqual([]);
      // Nothing half-stored: the email went with its item.
      const mails = await t.deps.db
        .selectFrom('mail_messages')
        .select('id')
        .where('org_id', '=', o.orgId)
        .execute();
      expect(mails).toEqual([]);
    } finally {
      await sql.raw(`DROP TRIGGER ${fn} ON dropbox_items; DROP FUNCTION ${fn}();`).execute(t.deps.db);
    }
    expect((await smtpSend(listener.port, o.adminEmail, [o.address], raw)).data).toBe(250);
    const stored = await items(o.admin, 'attached');
    expect(stored.map((i) => [i.subject, i.records.map((r: any) => r.id)])).toEqual([
      ['retried', [o.leadId]],
    ]);
  });
});

describe('unmatched items', () => {
  it('an admin assigns one to a lead and a contact: it is linked and leaves the unmatched list', async () => {
    const { subject } = await mail({ from: `stranger-${tag()}@other.test`, to: [a.lead], bcc: a.address });
    const item = (await items(a.admin)).find((i) => i.subject === subject);
    const r = await a.admin.req('POST', `/api/admin/dropbox/items/${item.id}/assign`, {
      recordIds: [a.leadId, a.contactId],
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ state: 'attached' });
    const links = await linksOf(item.mailId);
    expect(links).toHaveLength(2);
    expect(links).toEqual(
      expect.arrayContaining([
        { record_id: a.leadId, role: 'to', org_id: a.orgId },
        { record_id: a.contactId, role: 'to', org_id: a.orgId },
      ]),
    );
    expect((await items(a.admin)).find((i) => i.id === item.id)).toBeUndefined();
    const attached = (await items(a.admin, 'attached')).find((i) => i.id === item.id);
    expect(attached.reason).toBe('unverified_sender');
    // Once only.
    expect(
      (await a.admin.req('POST', `/api/admin/dropbox/items/${item.id}/assign`, { recordIds: [a.leadId] }))
        .status,
    ).toBe(409);
  });

  it('are listed newest first, in pages', async () => {
    const o = await newOrg();
    for (const n of [1, 2, 3])
      await mail({ from: `s${n}-${tag()}@other.test`, to: [o.lead], bcc: o.address, subject: `page ${n}` });
    const seen: string[] = [];
    let cursor = '';
    for (;;) {
      const r = await o.admin.req(
        'GET',
        `/api/admin/dropbox/items?state=unmatched&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      expect(r.status).toBe(200);
      seen.push(...r.body.items.map((i: any) => i.subject));
      if (!r.body.next) break;
      cursor = r.body.next;
    }
    expect(seen).toEqual(['page 3', 'page 2', 'page 1']);
    expect((await o.admin.req('GET', '/api/admin/dropbox/items?cursor=nonsense')).status).toBe(400);
  });

  it('discarding deletes the stored email unless a mailbox also holds it', async () => {
    const one = await mail({ from: `stranger-${tag()}@other.test`, to: [a.lead], bcc: a.address });
    const two = await mail({ from: `stranger-${tag()}@other.test`, to: [a.lead], bcc: a.address });
    const list = await items(a.admin);
    const i1 = list.find((i) => i.subject === one.subject);
    const i2 = list.find((i) => i.subject === two.subject);
    // The second email is also in a user's synced mailbox.
    const account = await t.deps.db
      .insertInto('mailbox_accounts')
      .values({
        org_id: a.orgId,
        user_id: a.adminId,
        protocol: 'imap',
        host: 'imap.test',
        port: 993,
        security: 'tls',
        username: 'u',
        secret_enc: 'x',
        email_address: a.adminEmail,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await t.deps.db
      .insertInto('mail_locations')
      .values({
        org_id: a.orgId,
        mail_id: i2.mailId,
        account_id: account.id,
        user_id: a.adminId,
        folder: 'INBOX',
        uid: 7,
        direction: 'in',
        date: new Date(),
      })
      .execute();
    const d1 = await a.admin.req('POST', `/api/admin/dropbox/items/${i1.id}/discard`);
    expect(d1.body).toMatchObject({ state: 'discarded', mailDeleted: true });
    const d2 = await a.admin.req('POST', `/api/admin/dropbox/items/${i2.id}/discard`);
    expect(d2.body).toMatchObject({ state: 'discarded', mailDeleted: false });
    const left = await t.deps.db
      .selectFrom('mail_messages')
      .select('id')
      .where('id', 'in', [i1.mailId, i2.mailId])
      .execute();
    expect(left.map((m) => m.id)).toEqual([i2.mailId]);
    const discarded = await items(a.admin, 'discarded');
    expect(discarded.find((i) => i.id === i1.id)).toMatchObject({ subject: one.subject, mailId: null });
    expect((await a.admin.req('POST', `/api/admin/dropbox/items/${i1.id}/discard`)).status).toBe(409);

    // An email deleted under its item (its mailbox copy removed): it can be discarded, not assigned.
    const three = await mail({ from: `stranger-${tag()}@other.test`, to: [a.lead], bcc: a.address });
    const i3 = (await items(a.admin)).find((i) => i.subject === three.subject);
    await t.deps.db.deleteFrom('mail_messages').where('id', '=', i3.mailId).execute();
    const r3 = await a.admin.req('POST', `/api/admin/dropbox/items/${i3.id}/assign`, {
      recordIds: [a.leadId],
    });
    expect(r3.status).toBe(409);
    expect(r3.body.error.message).toMatch(/no longer stored/);
    const d3 = await a.admin.req('POST', `/api/admin/dropbox/items/${i3.id}/discard`);
    expect(d3.body).toMatchObject({ state: 'discarded', mailDeleted: false });
  });
});

describe('the same listener', () => {
  it('still receives bounces to VERP return paths', async () => {
    const to = `gone-${tag()}@remote.example`;
    const m = await t.deps.db
      .insertInto('messages')
      .values({
        org_id: a.orgId,
        kind: 'individual',
        from_address: a.adminEmail,
        to_address: to,
        subject: 'Hello',
        text: 'Hello',
        message_id_header: `<${tag()}@parley.test>`,
        transport: 'relay',
        status: 'sent',
        sent_at: new Date(),
        expires_at: new Date(Date.now() + 86_400_000),
      })
      .returning(['id', 'message_id_header'])
      .executeTakeFirstOrThrow();
    const verp = verpReturnPath(m.id, 'bounces.parley.test', t.deps.config.secret as string);
    const r = await smtpSend(
      listener.port,
      '',
      [verp],
      dsn({
        to: verp,
        recipient: to,
        status: '5.1.1',
        diagnostic: '550 5.1.1 User unknown',
        messageId: m.message_id_header,
      }),
    );
    expect(r).toMatchObject({ rcpt: [250], data: 250 });
    const row = await t.deps.db
      .selectFrom('messages')
      .select('bounce_kind')
      .where('id', '=', m.id)
      .executeTakeFirstOrThrow();
    expect(row.bounce_kind).toBe('hard');
  });
});

describe('access', () => {
  it("keeps each org's dropbox, items and records to itself", async () => {
    const b = await newOrg();
    await b.admin.req('POST', '/api/admin/dropbox/senders', { email: rep });
    const { subject } = await mail({ from: `stranger-${tag()}@other.test`, to: [b.lead], bcc: b.address });
    const bItem = (await items(b.admin)).find((i) => i.subject === subject);
    expect(bItem).toBeTruthy();
    expect((await items(a.admin)).find((i) => i.subject === subject)).toBeUndefined();
    // Another org's item or record cannot be assigned or discarded.
    expect(
      (await a.admin.req('POST', `/api/admin/dropbox/items/${bItem.id}/assign`, { recordIds: [a.leadId] }))
        .status,
    ).toBe(404);
    expect((await a.admin.req('POST', `/api/admin/dropbox/items/${bItem.id}/discard`)).status).toBe(404);
    expect(
      (await b.admin.req('POST', `/api/admin/dropbox/items/${bItem.id}/assign`, { recordIds: [a.leadId] }))
        .status,
    ).toBe(404);
    // Senders are per org: B's unconfirmed copy of rep does not count for B, A's confirmation neither.
    const fromRep = await mail({ from: rep, to: [b.lead], bcc: b.address });
    expect((await items(b.admin)).find((i) => i.subject === fromRep.subject)?.reason).toBe(
      'unverified_sender',
    );
    const aSender = (await a.admin.req('GET', '/api/admin/dropbox')).body.senders[0];
    expect((await b.admin.req('DELETE', `/api/admin/dropbox/senders/${aSender.id}`)).status).toBe(404);
    // One email to both orgs' dropboxes: each stores its own copy.
    const both = await mail({ from: rep, to: [a.lead, b.lead], bcc: `${a.address}, ${b.address}` });
    const inA = (await items(a.admin, 'attached')).find((i) => i.subject === both.subject);
    const inB = (await items(b.admin)).find((i) => i.subject === both.subject);
    expect(inA.records.map((r: any) => r.id)).toEqual([a.leadId]);
    expect(inB.reason).toBe('unverified_sender');
    expect(inA.mailId).not.toBe(inB.mailId);
  });

  it('only admins manage the dropbox', async () => {
    const email = `std-${tag()}@test.example`;
    const { inviteToken } = await inviteUser(t.deps, adminActor(a), {
      email,
      name: 'Sam Standard',
      profileId: a.standardProfileId,
    });
    await acceptInvite(t.deps, { token: inviteToken, password: 'user-password-123' });
    const user = await login(t.app, email, 'user-password-123');
    const id = '00000000-0000-4000-8000-000000000000';
    for (const [method, url, body] of [
      ['GET', '/api/admin/dropbox', undefined],
      ['POST', '/api/admin/dropbox/regenerate', undefined],
      ['POST', '/api/admin/dropbox/senders', { email: 'x@y.example' }],
      ['POST', `/api/admin/dropbox/senders/${id}/resend`, undefined],
      ['DELETE', `/api/admin/dropbox/senders/${id}`, undefined],
      ['GET', '/api/admin/dropbox/items', undefined],
      ['POST', `/api/admin/dropbox/items/${id}/assign`, { recordIds: [id] }],
      ['POST', `/api/admin/dropbox/items/${id}/discard`, undefined],
    ] as const)
      expect((await user.req(method, url, body)).status, `${method} ${url}`).toBe(403);
  });

  it('refuses bad input with a clear 4xx', async () => {
    expect(
      (await a.admin.req('POST', '/api/admin/dropbox/senders', { email: 'not an address' })).status,
    ).toBe(400);
    expect((await a.admin.req('POST', '/api/admin/dropbox/senders', { email: rep })).status).toBe(409);
    expect(
      (await a.admin.req('POST', '/api/admin/dropbox/items/nope/assign', { recordIds: [a.leadId] })).status,
    ).toBe(404);
    const item = (await items(a.admin))[0];
    expect(
      (await a.admin.req('POST', `/api/admin/dropbox/items/${item.id}/assign`, { recordIds: ['x'] })).status,
    ).toBe(400);
    expect((await confirmSender('abc')).statusCode).toBe(400);
  });
});
