import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentDisposition } from '../src/http/routes/conversations.routes.ts';
import { ingestMail } from '../src/mailbox/ingest.ts';
import { type Client, login, startTestApp, type TestOrg } from './support/app.ts';
import { itemOf, mailOf } from './support/mail-fixtures.ts';

let t: Awaited<ReturnType<typeof startTestApp>>;
let org: TestOrg;
let admin: Client;
let sam: Client;
let samId: string;
let leadId: string;
let sharedAcc: string;
let privateAcc: string;
let sentId: string;
let sentMsgId: string;
const tag = randomBytes(4).toString('hex');
const lead = `lena.${tag}@client.example`;
let uid = 0;

async function account(userId: string, email: string, shared: boolean) {
  return (
    await t.deps.db
      .insertInto('mailbox_accounts')
      .values({
        org_id: org.orgId,
        user_id: userId,
        protocol: 'imap',
        host: 'imap.test',
        port: 993,
        security: 'tls',
        username: email,
        secret_enc: 'x',
        email_address: email,
        shared,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
}
const loc = (accountId: string, userId: string, direction: 'in' | 'out' = 'in') => ({
  accountId,
  userId,
  folder: direction === 'in' ? 'INBOX' : 'Sent',
  uid: ++uid,
  uidl: null,
  direction,
  seen: false,
});

beforeAll(async () => {
  t = await startTestApp();
  org = await t.createOrg();
  admin = await login(t.app, org.adminEmail, org.adminPassword);
  leadId = (
    await admin.req('POST', '/api/modules/leads/records', {
      data: { last_name: 'Lead', company: 'C', email: lead },
    })
  ).body.id;
  const inv = await admin.req('POST', '/api/users', {
    email: `sam.${tag}@test.example`,
    name: 'Sam',
    profileId: org.standardProfileId,
  });
  samId = inv.body.user.id;
  const token = new URL(inv.body.inviteUrl).searchParams.get('token');
  await t.app.inject({
    method: 'POST',
    url: '/api/auth/accept-invite',
    payload: { token, password: 'sam-password-1' },
  });
  sam = await login(t.app, `sam.${tag}@test.example`, 'sam-password-1');
  sharedAcc = await account(org.adminId, org.adminEmail, true);
  privateAcc = await account(samId, `sam.${tag}@test.example`, false);

  sentMsgId = `<p.${tag}@ourco.example>`;
  sentId = (
    await t.deps.db
      .insertInto('messages')
      .values({
        org_id: org.orgId,
        kind: 'individual',
        record_id: leadId,
        module_id: (
          await t.deps.db
            .selectFrom('modules')
            .select('id')
            .where('org_id', '=', org.orgId)
            .where('api_name', '=', 'leads')
            .executeTakeFirstOrThrow()
        ).id,
        sender_id: org.adminId,
        from_address: org.adminEmail,
        to_address: lead,
        subject: 'Our offer',
        text: 'Please find our offer.',
        message_id_header: sentMsgId,
        transport: 'outbox',
        status: 'sent',
        sent_at: new Date(Date.now() - 7_200_000),
        expires_at: new Date(Date.now() + 86_400_000),
      })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;

  await ingestMail(t.deps, org.orgId, [
    // The lead's reply, in the admin's shared mailbox, with an inline logo and a file.
    itemOf(
      await mailOf(
        {
          from: lead,
          to: org.adminEmail,
          subject: 'Re: Our offer',
          messageId: `<reply.${tag}@client.example>`,
          inReplyTo: sentMsgId,
          date: new Date(Date.now() - 3_600_000),
          html: '<p>Yes please <img src="cid:logo@client"> <img src="https://track.example/p.gif"></p><script>parent.x=1</script>',
          attachments: [
            {
              filename: 'logo.png',
              content: Buffer.from('89504e470d0a1a0a', 'hex'),
              cid: 'logo@client',
              contentType: 'image/png',
            },
            { filename: '../../etc/"evil".txt', content: 'file body', contentType: 'text/html' },
          ],
        },
        { keepAttachmentsUpTo: 1000 },
      ),
      loc(sharedAcc, org.adminId),
    ),
    // Sam's private conversation with the lead.
    itemOf(
      await mailOf({
        from: lead,
        to: `sam.${tag}@test.example`,
        subject: 'Private',
        date: new Date(Date.now() - 60_000),
      }),
      loc(privateAcc, samId),
    ),
  ]);
});
afterAll(() => t.stop());

describe('conversations', () => {
  it('lists threads newest first with Parley’s sent email and the reply in one thread', async () => {
    const r = await admin.req('GET', `/api/modules/leads/records/${leadId}/conversations`);
    expect(r.status).toBe(200);
    // The admin does not see Sam's private mailbox.
    expect(r.body.conversations).toHaveLength(1);
    const [c] = r.body.conversations;
    expect(c.id).toBe(sentId);
    expect(c.emails.map((e: { kind: string; direction: string }) => [e.kind, e.direction])).toEqual([
      ['message', 'out'],
      ['mail', 'in'],
    ]);
    expect(c.emails[0].status.state).toBe('replied');
    expect(c.emails[1]).toMatchObject({
      hasAttachments: true,
      from: { address: lead },
      snippet: 'Yes please',
    });

    const s = await sam.req('GET', `/api/modules/leads/records/${leadId}/conversations`);
    expect(s.body.conversations.map((x: { subject: string }) => x.subject)).toEqual(['Private', 'Our offer']);
  });

  it('shows one email sanitised, with inline images signed and remote ones only on request', async () => {
    const list = await admin.req('GET', `/api/modules/leads/records/${leadId}/conversations`);
    const mailId = list.body.conversations[0].emails[1].id;
    const m = await admin.req('GET', `/api/mail/${mailId}`);
    expect(m.status).toBe(200);
    expect(m.body.html).not.toContain('<script');
    expect(m.body.html).not.toContain('track.example');
    expect(m.body.blockedImages).toBe(1);
    expect(m.body.attachments.map((a: { inline: boolean }) => a.inline)).toEqual([true, false]);
    const inline = /src="https?:\/\/[^/]+(\/mail\/inline\/[^"]+)"/
      .exec(m.body.html)?.[1]
      ?.replace(/&amp;/g, '&');
    expect(inline).toBeTruthy();
    // Signed: loads without a session; tampered or foreign: not found.
    const img = await t.app.inject({ method: 'GET', url: inline as string });
    expect(img.statusCode).toBe(200);
    expect(img.headers['content-type']).toBe('image/png');
    // another first character (one signature in 64 starts with an A already)
    const tampered = (inline as string).replace(/sig=(.)/, (_m, c: string) => `sig=${c === 'A' ? 'B' : 'A'}`);
    const bad = await t.app.inject({ method: 'GET', url: tampered });
    expect(bad.statusCode).toBe(404);
    const withImages = await admin.req('GET', `/api/mail/${mailId}?images=1`);
    expect(withImages.body.html).toContain('https://track.example/p.gif');
    expect(withImages.body.html).toContain('img-src data: http://');

    // Download: as a file, never rendered, safe name.
    const file = m.body.attachments[1];
    const dl = await admin.req('GET', file.url);
    expect(dl.status).toBe(200);
    expect(dl.text).toBe('file body');
    const res = await t.app.inject({ method: 'GET', url: file.url, headers: { cookie: admin.cookie } });
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['content-disposition']).toBe(
      `attachment; filename="evil.txt"; filename*=UTF-8''evil.txt`,
    );
  });

  it('keeps private mail to its owner and mail to its org', async () => {
    const s = await sam.req('GET', `/api/modules/leads/records/${leadId}/conversations`);
    const privateId = s.body.conversations[0].emails[0].id;
    expect((await sam.req('GET', `/api/mail/${privateId}`)).status).toBe(200);
    expect((await admin.req('GET', `/api/mail/${privateId}`)).status).toBe(404);
    const other = await t.createOrg();
    const stranger = await login(t.app, other.adminEmail, other.adminPassword);
    expect((await stranger.req('GET', `/api/mail/${privateId}`)).status).toBe(404);
    expect((await stranger.req('GET', `/api/modules/leads/records/${leadId}/conversations`)).status).toBe(
      404,
    );
    const att = (await admin.req('GET', `/api/modules/leads/records/${leadId}/conversations`)).body
      .conversations[0].emails[1].id;
    const atts = (await admin.req('GET', `/api/mail/${att}`)).body.attachments;
    expect((await stranger.req('GET', atts[1].url)).status).toBe(404);
    expect((await admin.req('GET', '/api/mail/not-a-uuid')).status).toBe(404);
  });

  it('answers "not available" when no mailbox holding the email can serve an attachment', async () => {
    const r = await ingestMail(t.deps, org.orgId, [
      itemOf(
        await mailOf({
          from: lead,
          to: org.adminEmail,
          subject: 'Big file',
          attachments: [{ filename: 'big.bin', content: Buffer.alloc(2000, 7) }],
        }),
        loc(sharedAcc, org.adminId),
      ),
    ]);
    const m = await admin.req('GET', `/api/mail/${r.mails[0].id}`);
    const dl = await admin.req('GET', m.body.attachments[0].url);
    expect(dl.status).toBe(404);
    expect(dl.body.error.message).toMatch(/not available/);
  });

  it('makes header-safe file names', () => {
    expect(contentDisposition('attachment', 'a\r\nb"c.pdf')).toBe(
      `attachment; filename="abc.pdf"; filename*=UTF-8''abc.pdf`,
    );
    expect(contentDisposition('attachment', 'Fü r.txt')).toBe(
      `attachment; filename="F_ r.txt"; filename*=UTF-8''F%C3%BC%20r.txt`,
    );
    expect(contentDisposition('attachment', '')).toContain('filename="attachment"');
  });
});
