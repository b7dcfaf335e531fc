// The mailbox API: a user connects, tests, edits, pauses, resumes and removes their own mailbox;
// the secret never comes back; bad input gets a clear 400; others' mailboxes are not found.
// Also attachments fetched on demand from the mailbox (IMAP and POP3). Real Dovecot, real PostgreSQL.
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Actor, acceptInvite, inviteUser } from '../src/crm/index.ts';
import { fetchAttachmentContent } from '../src/mailbox/sync/fetch-part.ts';
import { syncAccountOnce } from '../src/mailbox/sync/worker.ts';
import { type Client, login, startTestApp, type TestOrg } from './support/app.ts';
import { type Dovecot, startDovecot } from './support/dovecot.ts';

let dov: Dovecot;
let t: Awaited<ReturnType<typeof startTestApp>>;
let app: FastifyInstance;

beforeAll(async () => {
  dov = await startDovecot({
    users: [
      { user: 'api1@test.local', password: 'secret-one' },
      { user: 'api2@test.local', password: 'secret-two' },
      { user: 'api3@test.local', password: 'secret-three' },
    ],
  });
  t = await startTestApp();
  app = t.app;
});
afterAll(async () => {
  // Workers of other test files share this database: leave them no account of a stopped Dovecot.
  if (t && dov)
    await t.deps.db
      .deleteFrom('mailbox_accounts')
      .where('host', '=', '127.0.0.1')
      .where('port', 'in', [dov.imapPort, dov.pop3Port])
      .execute();
  await t?.stop();
  await dov?.stop();
});

const adminActor = (org: TestOrg): Actor => ({
  orgId: org.orgId,
  userId: org.adminId,
  isAdmin: true,
  permissions: {} as Actor['permissions'],
  timeZone: 'UTC',
  locale: 'en',
});

let seq = 0;
async function member(org: TestOrg): Promise<Client> {
  const email = `mb-user-${++seq}-${Date.now()}@test.example`;
  const { inviteToken } = await inviteUser(t.deps, adminActor(org), {
    email,
    name: 'Mia Member',
    profileId: org.standardProfileId,
  });
  await acceptInvite(t.deps, { token: inviteToken, password: 'member-password-123' });
  return login(app, email, 'member-password-123');
}

const imap = (user: string, secret: string, over: Record<string, unknown> = {}) => ({
  protocol: 'imap',
  host: '127.0.0.1',
  port: dov.imapPort,
  security: 'none',
  username: user,
  secret,
  emailAddress: user,
  ...over,
});

describe('mailbox accounts API', () => {
  it('connects, lists, edits, pauses, resumes and removes; never answers the secret', async () => {
    const org = await t.createOrg();
    const c = await login(app, org.adminEmail, org.adminPassword);
    const created = await c.req('POST', '/api/mailbox/accounts', imap('api1@test.local', 'secret-one'));
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      protocol: 'imap',
      security: 'none',
      username: 'api1@test.local',
      emailAddress: 'api1@test.local',
      backfillDays: 90,
      state: 'active',
      error: null,
      lastSyncAt: null,
    });
    expect(created.text).not.toContain('secret-one');
    const id = created.body.id as string;
    const stored = await t.deps.db
      .selectFrom('mailbox_accounts')
      .select('secret_enc')
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    expect(stored.secret_enc).not.toContain('secret-one');

    const list = await c.req('GET', '/api/mailbox/accounts');
    expect(list.body.accounts.map((a: { id: string }) => a.id)).toEqual([id]);
    expect(list.text).not.toContain('secret');

    expect((await c.req('POST', `/api/mailbox/accounts/${id}/test`)).body).toEqual({ ok: true });
    const patched = await c.req('PATCH', `/api/mailbox/accounts/${id}`, {
      backfillDays: 10,
      secret: 'changed',
    });
    expect(patched.status).toBe(200);
    expect(patched.body.backfillDays).toBe(10);
    expect((await c.req('POST', `/api/mailbox/accounts/${id}/test`)).body).toMatchObject({
      ok: false,
      code: 'auth',
    });
    await c.req('PATCH', `/api/mailbox/accounts/${id}`, { secret: 'secret-one' });

    expect((await c.req('POST', `/api/mailbox/accounts/${id}/pause`)).body.state).toBe('paused');
    expect(await syncAccountOnce(t.deps, id)).toBeNull();
    expect((await c.req('POST', `/api/mailbox/accounts/${id}/resume`)).body.state).toBe('active');
    const now = await c.req('POST', `/api/mailbox/accounts/${id}/sync`);
    expect(now.status).toBe(202);
    expect(await syncAccountOnce(t.deps, id)).toMatchObject({ fetched: 0 });
    expect((await c.req('GET', `/api/mailbox/accounts/${id}`)).body.lastSyncAt).not.toBeNull();

    expect((await c.req('DELETE', `/api/mailbox/accounts/${id}`)).status).toBe(204);
    expect((await c.req('GET', `/api/mailbox/accounts/${id}`)).status).toBe(404);
  });

  it('answers 400 with the field for bad input', async () => {
    const org = await t.createOrg();
    const c = await login(app, org.adminEmail, org.adminPassword);
    for (const [body, field] of [
      [imap('a@test.local', 'x', { port: 70000 }), 'port'],
      [imap('a@test.local', 'x', { security: 'ssl3' }), 'security'],
      [imap('a@test.local', 'x', { host: 'bad host/../' }), 'host'],
      [imap('a@test.local', 'x', { emailAddress: 'not-an-address' }), 'emailAddress'],
      [imap('a@test.local', ''), 'secret'],
      [imap('a@test.local', 'x', { backfillDays: 0 }), 'backfillDays'],
      [imap('a@test.local', 'x', { extra: 1 }), ''],
    ] as const) {
      const r = await c.req('POST', '/api/mailbox/accounts', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.code).toBe('validation_failed');
      if (field) expect(JSON.stringify(r.body.error.details)).toContain(field);
    }
    expect((await c.req('GET', '/api/mailbox/accounts')).body.accounts).toEqual([]);
  });

  it("keeps each user's mailboxes to themselves, admins included", async () => {
    const org = await t.createOrg();
    const admin = await login(app, org.adminEmail, org.adminPassword);
    const user = await member(org);
    const mine = await user.req('POST', '/api/mailbox/accounts', imap('api2@test.local', 'secret-two'));
    expect(mine.status).toBe(201);
    const id = mine.body.id as string;
    expect((await admin.req('GET', '/api/mailbox/accounts')).body.accounts).toEqual([]);
    for (const [method, url] of [
      ['GET', `/api/mailbox/accounts/${id}`],
      ['PATCH', `/api/mailbox/accounts/${id}`],
      ['DELETE', `/api/mailbox/accounts/${id}`],
      ['POST', `/api/mailbox/accounts/${id}/test`],
      ['POST', `/api/mailbox/accounts/${id}/sync`],
      ['POST', `/api/mailbox/accounts/${id}/pause`],
      ['POST', `/api/mailbox/accounts/${id}/resume`],
    ] as const)
      expect(
        (await admin.req(method, url, method === 'PATCH' ? { backfillDays: 5 } : undefined)).status,
      ).toBe(404);
    const other = await t.createOrg();
    const stranger = await login(app, other.adminEmail, other.adminPassword);
    expect((await stranger.req('GET', `/api/mailbox/accounts/${id}`)).status).toBe(404);
    expect((await user.req('GET', `/api/mailbox/accounts/${id}`)).status).toBe(200);
  });

  it('tests a connection before saving and says why it failed', async () => {
    const org = await t.createOrg();
    const c = await login(app, org.adminEmail, org.adminPassword);
    const test = (over: Record<string, unknown>, secret = 'secret-one') =>
      c.req('POST', '/api/mailbox/test', imap('api1@test.local', secret, over)).then((r) => r.body);
    expect(await test({})).toEqual({ ok: true });
    expect(await test({ protocol: 'pop3', port: dov.pop3Port })).toEqual({ ok: true });
    expect(await test({}, 'wrong')).toMatchObject({ ok: false, code: 'auth' });
    expect(await test({ protocol: 'pop3', port: dov.pop3Port }, 'wrong')).toMatchObject({
      ok: false,
      code: 'auth',
    });
    expect(await test({ security: 'tls', port: dov.imapsPort })).toMatchObject({ ok: false, code: 'tls' });
    // STARTTLS offered, but its self-signed certificate is refused.
    expect(await test({ security: 'starttls' })).toMatchObject({ ok: false, code: 'tls' });
    expect(await test({ security: 'starttls', protocol: 'pop3', port: dov.pop3Port })).toMatchObject({
      ok: false,
      code: 'tls',
    });
    // Plain IMAP port spoken to in TLS: the handshake fails.
    expect(await test({ security: 'tls' })).toMatchObject({ ok: false, code: 'tls' });
    expect(await test({ host: 'no-such-host.invalid' })).toMatchObject({ ok: false, code: 'not_found' });
    const closed = await import('node:net').then(
      (net) =>
        new Promise<number>((resolve) => {
          const s = net.createServer();
          s.listen(0, '127.0.0.1', () => {
            const port = (s.address() as { port: number }).port;
            s.close(() => resolve(port));
          });
        }),
    );
    expect(await test({ port: closed })).toMatchObject({ ok: false, code: 'network' });
  });
});

describe('attachments on demand', () => {
  const pdf = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 256));
  const raw = [
    'From: client@remote.example',
    'To: api3@test.local',
    'Subject: The quote',
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <quote-${Date.now()}@remote.example>`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="XX"',
    '',
    '--XX',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Please find the quote attached.',
    '--XX',
    'Content-Type: application/pdf; name="quote.pdf"',
    'Content-Disposition: attachment; filename="quote.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    pdf.toString('base64').replace(/.{76}/g, '$&\r\n'),
    '--XX--',
    '',
  ].join('\r\n');
  const sha = (b: Buffer | null) => (b ? createHash('sha256').update(b).digest('hex') : null);

  it('stores the metadata only, and fetches the bytes from the IMAP or POP3 mailbox', async () => {
    dov.writeMaildir('api3@test.local', 'INBOX', [raw]);
    const org = await t.createOrg();
    const c = await login(app, org.adminEmail, org.adminPassword);
    for (const over of [{}, { protocol: 'pop3', port: dov.pop3Port }]) {
      const acc = await c.req('POST', '/api/mailbox/accounts', imap('api3@test.local', 'secret-three', over));
      expect((await syncAccountOnce(t.deps, acc.body.id))?.fetched).toBe(1);
    }
    const mail = await t.deps.db
      .selectFrom('mail_messages')
      .select(['id', 'text_body', 'has_attachments'])
      .where('org_id', '=', org.orgId)
      .where('subject', '=', 'The quote')
      .executeTakeFirstOrThrow();
    expect(mail).toMatchObject({ has_attachments: true });
    expect(mail.text_body).toContain('Please find the quote attached.');
    const att = await t.deps.db
      .selectFrom('mail_attachments')
      .selectAll()
      .where('mail_id', '=', mail.id)
      .executeTakeFirstOrThrow();
    expect(att).toMatchObject({
      filename: 'quote.pdf',
      content_type: 'application/pdf',
      part: '2',
      content: null,
    });
    expect(sha(await fetchAttachmentContent(t.deps, att))).toBe(sha(pdf));
    // Without the IMAP copy, the POP3 mailbox serves it.
    await t.deps.db
      .deleteFrom('mail_locations')
      .where('mail_id', '=', mail.id)
      .where('uid', 'is not', null)
      .execute();
    expect(sha(await fetchAttachmentContent(t.deps, att))).toBe(sha(pdf));
  });
});
