import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSignPool, deliverDue } from '../src/sending/delivery.ts';
import { individualLimit } from '../src/sending/limits.ts';
import { closeRelayTransports } from '../src/sending/transport.ts';
import { type Client, login, startTestApp } from './support/app.ts';
import { type CaptureServer, startCaptureServer } from './support/mail-peers.ts';

let t: Awaited<ReturnType<typeof startTestApp>>;
let admin: Client;
let orgId: string;
let leadId: string;
let templateId: string;
let smtp: CaptureServer;

beforeAll(async () => {
  t = await startTestApp();
  smtp = await startCaptureServer();
  const org = await t.createOrg();
  orgId = org.orgId;
  admin = await login(t.app, org.adminEmail, org.adminPassword);
  leadId = (
    await admin.req('POST', '/api/modules/leads/records', {
      data: { first_name: 'Lena', last_name: 'Lead', email: 'lena@client.example', company: 'Client & Co' },
    })
  ).body.id;
  const tpl = await admin.req('POST', '/api/templates', {
    name: 'Intro',
    module: 'leads',
    subject: 'Hello {{ lead.first_name }}',
    htmlSource: '<p>Dear {{ lead.first_name }} at {{ lead.company }}, regards {{ sender.name }}</p>',
    fromAddress: 'sales@ourco.example',
  });
  expect(tpl.status).toBe(201);
  templateId = tpl.body.id;
});
afterAll(async () => {
  closeRelayTransports(t.deps);
  await closeSignPool(t.deps);
  await smtp.stop();
  await t.stop();
});

const deliver = async () => {
  for (let i = 0; i < 5; i++) if ((await deliverDue(t.deps, { orgId })).claimed === 0) break;
};

describe('individual email', () => {
  it('sends a template to a lead: previewed, queued, in the outbox and in the Emails list', async () => {
    const url = `/api/modules/leads/records/${leadId}`;
    const opts = await admin.req('GET', `${url}/from-options?templateId=${templateId}`);
    expect(opts.body.from.map((o: { kind: string }) => o.kind)).toEqual(['user', 'template']);
    const pre = await admin.req('POST', `${url}/emails/preview`, { templateId });
    expect(pre.body).toMatchObject({ subject: 'Hello Lena', to: { address: 'lena@client.example' } });
    expect(pre.body.html).toContain('Client &amp; Co');
    const sent = await admin.req('POST', `${url}/emails`, { templateId, from: { kind: 'template' } });
    expect(sent.status).toBe(201);
    expect(sent.body).toMatchObject({
      status: 'queued',
      template_id: templateId,
      template_version: 1,
      from_address: 'sales@ourco.example',
    });
    await deliver();
    const list = await admin.req('GET', `${url}/emails`);
    expect(list.body.emails[0]).toMatchObject({ id: sent.body.id, status: 'sent', subject: 'Hello Lena' });
    const box = await admin.req('GET', `/api/outbox/${sent.body.id}`);
    expect(box.status).toBe(200);
    const raw = await admin.req('GET', `/api/outbox/${sent.body.id}/raw`);
    const parsed = await simpleParser(raw.text);
    expect(parsed.subject).toBe('Hello Lena');
    expect(parsed.from?.value[0].address).toBe('sales@ourco.example');
  });

  it('writes from scratch, sanitising the HTML, and refuses opted-out or address-less records', async () => {
    const url = `/api/modules/leads/records/${leadId}`;
    const r = await admin.req('POST', `${url}/emails`, {
      subject: 'Quick note',
      html: '<p onclick="x()">Hi <b>Lena</b><script>alert(1)</script></p>',
    });
    expect(r.status).toBe(201);
    const m = await admin.req('GET', `/api/messages/${r.body.id}`);
    expect(m.body.html).toBe('<p>Hi <b>Lena</b></p>');
    expect(m.body.text).toContain('Hi LENA'.replace('LENA', 'Lena'));
    const inject = await admin.req('POST', `${url}/emails`, {
      subject: 'x\r\nBcc: evil@x.example',
      html: '<p>x</p>',
    });
    expect(inject.status).toBe(400);
    const out = await admin.req('POST', '/api/modules/leads/records', {
      data: { last_name: 'Out', email: 'out@client.example', email_opt_out: true },
    });
    const refused = await admin.req('POST', `/api/modules/leads/records/${out.body.id}/emails`, {
      subject: 's',
      html: '<p>x</p>',
    });
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toMatch(/opted out/);
    const none = await admin.req('POST', '/api/modules/leads/records', { data: { last_name: 'None' } });
    const noAddr = await admin.req('POST', `/api/modules/leads/records/${none.body.id}/emails`, {
      subject: 's',
      html: '<p>x</p>',
    });
    expect(noAddr.body.error.message).toMatch(/no email address/);
  });

  it('uses an organization address only once its confirmation link was opened', async () => {
    const url = `/api/modules/leads/records/${leadId}`;
    const add = await admin.req('POST', '/api/admin/org-addresses', {
      email: 'Support@OurCo.example',
      displayName: 'Support',
    });
    expect(add.status).toBe(201);
    const id = add.body.id;
    const early = await admin.req('POST', `${url}/emails`, {
      subject: 's',
      html: '<p>x</p>',
      from: { kind: 'org_address', orgAddressId: id },
    });
    expect(early.status).toBe(400);
    expect(early.body.error.message).toMatch(/not verified/);
    await deliver();
    const box = await admin.req('GET', '/api/outbox');
    const confirm = box.body.items.find((m: { subject: string }) => /^Confirm support@/i.test(m.subject));
    const body = await admin.req('GET', `/api/outbox/${confirm.messageId}`);
    const link = /https?:\/\/\S+\/org-addresses\/verify\?token=[\w-]+/.exec(body.body.text)?.[0] as string;
    expect(link).toBeTruthy();
    // Opening the link only asks (a link scanner's GET confirms nothing); the button confirms.
    const confirmBy = (token: string) =>
      t.app.inject({
        method: 'POST',
        url: '/org-addresses/verify',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ token }).toString(),
      });
    const opened = await t.app.inject({ method: 'GET', url: link.replace(/^https?:\/\/[^/]+/, '') });
    expect(opened.statusCode).toBe(200);
    expect(opened.body).toContain('<form method="post" action="/org-addresses/verify">');
    expect(
      (
        await admin.req('POST', `${url}/emails`, {
          subject: 's',
          html: '<p>x</p>',
          from: { kind: 'org_address', orgAddressId: id },
        })
      ).status,
    ).toBe(400);
    expect((await confirmBy('forged-token-forged-token')).statusCode).toBe(400);
    const token = new URL(link).searchParams.get('token') as string;
    const ok = await confirmBy(token);
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toContain('can now be used');
    expect((await confirmBy(token)).statusCode).toBe(400); // single use
    const now = await admin.req('POST', `${url}/emails`, {
      subject: 's',
      html: '<p>x</p>',
      from: { kind: 'org_address', orgAddressId: id },
    });
    expect(now.status).toBe(201);
    expect(now.body.from_address).toBe('Support@ourco.example');
  });

  it('delivers through the org relay when one is set', async () => {
    await admin.req('PUT', '/api/admin/smtp-relay', { host: '127.0.0.1', port: smtp.port, security: 'none' });
    const r = await admin.req('POST', `/api/modules/leads/records/${leadId}/emails`, { templateId });
    await deliver();
    const got = await smtp.waitFor(1);
    expect(got[0].rcptTo).toEqual(['lena@client.example']);
    expect((await admin.req('GET', `/api/messages/${r.body.id}`)).body.status).toBe('sent');
    await admin.req('DELETE', '/api/admin/smtp-relay');
  });
});

describe('daily individual limits', () => {
  it('follow the edition rule', () => {
    const free = { individual_per_user: 50, individual_user_cap: 4, individual_flat_over_cap: 200 };
    const paid = { individual_per_user: 300, individual_user_cap: null, individual_flat_over_cap: null };
    expect([1, 2, 4, 5, 10].map((n) => individualLimit(free, n))).toEqual([50, 100, 200, 200, 200]);
    expect([1, 3].map((n) => individualLimit(paid, n))).toEqual([300, 900]);
  });

  it('refuse the send past the limit with the numbers, even when sends race', async () => {
    const org = await t.createOrg();
    await t.deps.db.updateTable('orgs').set({ edition: 'free' }).where('id', '=', org.orgId).execute();
    const c = await login(t.app, org.adminEmail, org.adminPassword);
    const lead = await c.req('POST', '/api/modules/leads/records', {
      data: { last_name: 'L', email: 'l@x.example' },
    });
    const url = `/api/modules/leads/records/${lead.body.id}/emails`;
    // One active user on Free: 50 a day. 60 at once: exactly 50 go.
    const results = await Promise.all(
      Array.from({ length: 60 }, () => c.req('POST', url, { subject: 's', html: '<p>x</p>' })),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(50);
    const refused = results.find((r) => r.status === 422);
    expect(refused?.body.error.message).toMatch(/50 individual emails/);
    expect(
      Object.fromEntries(
        refused?.body.error.details.map((d: { path: string; message: string }) => [d.path, d.message]),
      ),
    ).toMatchObject({
      used: '50',
      limit: '50',
    });
    const usage = await c.req('GET', '/api/admin/email-usage');
    expect(usage.body.individual).toMatchObject({ used: 50, limit: 50, edition: 'free' });
  });
});
