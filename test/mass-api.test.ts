import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchDue } from '../src/sending/mass-launch.ts';
import { type Client, insertTemplate, login, startTestApp } from './support/app.ts';

let t: Awaited<ReturnType<typeof startTestApp>>;
let admin: Client;
let clerk: Client;
let templateId: string;
let orgId: string;

beforeAll(async () => {
  t = await startTestApp();
  const org = await t.createOrg();
  orgId = org.orgId;
  admin = await login(t.app, org.adminEmail, org.adminPassword);
  // A user whose profile may read contacts but not mass email them.
  const prof = await admin.req('POST', '/api/profiles', {
    name: 'Readers',
    permissions: { modules: { contacts: { read: true } } },
  });
  const inv = await admin.req('POST', '/api/users', {
    email: `clerk-${Date.now()}@t.example`,
    name: 'Clerk',
    profileId: prof.body.id,
  });
  await admin.req('POST', '/api/auth/accept-invite', {
    token: new URL(inv.body.inviteUrl).searchParams.get('token'),
    password: 'clerk-password-1',
  });
  clerk = await login(t.app, inv.body.user.email, 'clerk-password-1');
  templateId = await insertTemplate(t.deps, org.orgId, 'contacts', {
    name: 'T',
    subject: 'S',
    html: 'H',
    text: 'H',
    createdBy: org.adminId,
  });
  for (const [last, email, optOut] of [
    ['Ann', 'ann@x.example', false],
    ['=cmd|calc', 'evil@x.example', false],
    ['Out', 'out@x.example', true],
    ['Nobody', null, false],
  ] as const)
    await admin.req('POST', '/api/modules/contacts/records', {
      data: { last_name: last, ...(email ? { email } : {}), email_opt_out: optOut },
    });
});
afterAll(() => t.stop());

const audience = { kind: 'criteria', criteria: { conditions: [{ field: 'last_name', op: 'is_not_empty' }] } };

describe('mass email API', () => {
  it('previews the audience with reasons and lists who is left out', async () => {
    const r = await admin.req('POST', '/api/mass-emails/audience', { module: 'contacts', audience });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      recipients: 2,
      excluded: { opted_out: 1, no_address: 1 },
      excludedTotal: 2,
    });
    const l = await admin.req('POST', '/api/mass-emails/audience/list', {
      module: 'contacts',
      audience,
      reason: 'opted_out',
    });
    expect(l.body.items.map((i: { email: string }) => i.email)).toEqual(['out@x.example']);
    const denied = await clerk.req('POST', '/api/mass-emails/audience', { module: 'contacts', audience });
    expect(denied.status).toBe(403);
  });

  it('creates, lists by folder, counts, and exports the recipients behind a number safely', async () => {
    const bad = await admin.req('POST', '/api/mass-emails', {
      module: 'contacts',
      name: 'x',
      templateId,
      from: { kind: 'template' },
      audience,
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/no address of its own/);
    const c = await admin.req('POST', '/api/mass-emails', {
      module: 'contacts',
      name: 'Launch',
      templateId,
      from: { kind: 'user' },
      audience,
    });
    expect(c.status).toBe(201);
    await launchDue(t.deps, { orgId });
    const sent = await admin.req('GET', '/api/mass-emails?folder=sent');
    expect(sent.body.massEmails.map((m: { id: string }) => m.id)).toContain(c.body.id);
    // Both delivered; one tracked (HTML with Insights on), the other not: it cannot count as unopened.
    await sql`UPDATE messages SET status = 'sent', sent_at = now(), tracked = (id = (SELECT min(id::text)::uuid
      FROM messages WHERE mass_email_id = ${c.body.id})) WHERE mass_email_id = ${c.body.id}`.execute(
      t.deps.db,
    );
    const stats = await admin.req('GET', `/api/mass-emails/${c.body.id}/stats`);
    expect(stats.body).toMatchObject({
      recipients: 2,
      sent: 2,
      delivered: 2,
      tracked: 1,
      unopened: 1,
      opened: 0,
      bounced: 0,
    });
    expect(stats.body.excluded).toEqual({ opted_out: 1, no_address: 1 });
    const list = await admin.req('GET', `/api/mass-emails/${c.body.id}/stats/delivered`);
    expect(list.body.items).toHaveLength(2);
    const csv = await admin.req('GET', `/api/mass-emails/${c.body.id}/stats/delivered?format=csv`);
    expect(csv.text).toContain("'=cmd|calc");
    expect(csv.text).not.toMatch(/(^|,)=cmd/m);
    const scheduled = await admin.req('POST', '/api/mass-emails', {
      module: 'contacts',
      name: 'Later',
      templateId,
      from: { kind: 'user' },
      audience,
      sendAt: new Date(Date.now() + 3 * 86_400_000).toISOString(),
    });
    const stop = await admin.req('POST', `/api/mass-emails/${scheduled.body.id}/stop`);
    expect(stop.body.status).toBe('stopped');
    const stopped = await admin.req('GET', '/api/mass-emails?folder=stopped');
    expect(stopped.body.massEmails.map((m: { id: string }) => m.id)).toEqual([scheduled.body.id]);
    expect((await admin.req('DELETE', `/api/mass-emails/${scheduled.body.id}`)).status).toBe(204);
  });
});
