// Email & Calls Analytics (F5.2) and Sent Email Status (F5.3) through the API on a real database:
// periods in the user's time zone, call kinds and minutes, keyset pages, the status filter agreeing
// with the status rule, saved reports, formula-safe CSV, emailing the CSV (messages queued with
// the attachment) and what a user without access to a module sees.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorForUser } from '../src/crm/index.ts';
import { hashPassword } from '../src/crm/passwords.ts';
import { emailCallsReport } from '../src/reports/calls.ts';
import { rebuildRollups } from '../src/reports/rollups.ts';
import { deliverDue } from '../src/sending/delivery.ts';
import { type NewEmailEvent, recordEvents } from '../src/tracking/events.ts';
import { drain } from './reports-fixture.ts';
import { type Client, login, startTestApp, type TestOrg } from './support/app.ts';

let t: Awaited<ReturnType<typeof startTestApp>>;
let org: TestOrg;
let admin: Client;
let limited: Client;
let limitedId: string;
let limitedEmail: string;
const mods: Record<string, string> = {};

async function insertRecord(module: string, data: Record<string, unknown>, ownerId = org.adminId) {
  const r = await t.deps.db
    .insertInto('records')
    .values({
      org_id: org.orgId,
      module_id: mods[module] as string,
      owner_id: ownerId,
      data: JSON.stringify(data),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return r.id;
}

async function insertSent(o: {
  module: string;
  recordId: string;
  sentAt: string;
  subject?: string;
  repliedAt?: string;
  openedAt?: string;
  bouncedAt?: string;
  senderId?: string;
}) {
  const m = await t.deps.db
    .insertInto('messages')
    .values({
      org_id: org.orgId,
      kind: 'individual',
      module_id: mods[o.module] as string,
      record_id: o.recordId,
      sender_id: o.senderId ?? org.adminId,
      from_address: org.adminEmail,
      to_address: `to-${randomBytes(3).toString('hex')}@rcpt.example`,
      subject: o.subject ?? 'Hello',
      message_id_header: `<${randomBytes(8).toString('hex')}@test.example>`,
      transport: 'relay',
      status: 'sent',
      sent_at: new Date(o.sentAt),
      tracked: true,
      replied_at: o.repliedAt ? new Date(o.repliedAt) : null,
      opened_at: o.openedAt ? new Date(o.openedAt) : null,
      open_count: o.openedAt ? 1 : 0,
      bounced_at: o.bouncedAt ? new Date(o.bouncedAt) : null,
      bounce_kind: o.bouncedAt ? 'hard' : null,
      expires_at: new Date('2030-01-01T00:00:00Z'),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  // The events the summary columns come from (the report rollups count these).
  const events: NewEmailEvent[] = [];
  const ev = (kind: 'opened' | 'replied' | 'bounced', at: string) =>
    events.push({
      orgId: org.orgId,
      messageId: m.id,
      recordId: o.recordId,
      massEmailId: null,
      kind,
      human: true,
      at: new Date(at),
    });
  if (o.openedAt) ev('opened', o.openedAt);
  if (o.repliedAt) ev('replied', o.repliedAt);
  if (o.bouncedAt) ev('bounced', o.bouncedAt);
  await recordEvents(t.deps.db, events);
}

/** Brings the report rollups up to date (the org's past sends are older than the worker's cursor). */
async function rollUp() {
  await drain(t.deps);
  await rebuildRollups(t.deps, { orgId: org.orgId });
}

beforeAll(async () => {
  t = await startTestApp();
  org = await t.createOrg();
  for (const m of await t.deps.db
    .selectFrom('modules')
    .select(['id', 'api_name'])
    .where('org_id', '=', org.orgId)
    .execute())
    mods[m.api_name] = m.id;
  // The admin works in New York (UTC-5 in January): periods are cut at New York midnight.
  await t.deps.db
    .updateTable('users')
    .set({ time_zone: 'America/New_York' })
    .where('id', '=', org.adminId)
    .execute();
  admin = await login(t.app, org.adminEmail, org.adminPassword);

  // A user whose profile reads Leads only (no Contacts, no Calls).
  const profile = await t.deps.db
    .insertInto('profiles')
    .values({
      org_id: org.orgId,
      name: 'Leads readers',
      permissions: JSON.stringify({
        modules: { leads: { read: true, create: false, edit: false, delete: false, mass_email: false } },
      }),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  limitedEmail = `reader-${randomBytes(4).toString('hex')}@test.example`;
  const u = await t.deps.db
    .insertInto('users')
    .values({
      org_id: org.orgId,
      email: limitedEmail,
      name: 'Reader',
      profile_id: profile.id,
      status: 'active',
      password_hash: await hashPassword('reader-password-1'),
      time_zone: 'America/New_York',
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  limitedId = u.id;
  limited = await login(t.app, limitedEmail, 'reader-password-1');

  const lead = await insertRecord('leads', {
    first_name: 'Ada',
    last_name: 'Lovelace',
    email: 'ada@x.example',
  });
  const contact = await insertRecord('contacts', { first_name: 'Alan', last_name: 'Turing' });
  // Jan 4, 22:00 in New York (a Sunday: the week that began Mon Dec 29); Jan 5 in UTC.
  await insertSent({
    module: 'leads',
    recordId: lead,
    sentAt: '2026-01-05T03:00:00Z',
    openedAt: '2026-01-05T04:00:00Z',
  });
  await insertSent({
    module: 'contacts',
    recordId: contact,
    sentAt: '2026-01-10T15:00:00Z',
    repliedAt: '2026-01-11T15:00:00Z',
  });
  await insertSent({
    module: 'leads',
    recordId: lead,
    sentAt: '2026-01-31T23:30:00Z',
    subject: '=HYPERLINK("http://evil")',
  });
  // Jan 31, 23:00 in New York; February in UTC.
  await insertSent({
    module: 'leads',
    recordId: lead,
    sentAt: '2026-02-01T04:00:00Z',
    bouncedAt: '2026-02-01T04:01:00Z',
  });
  await t.deps.db
    .insertInto('email_events')
    .values({ org_id: org.orgId, record_id: lead, kind: 'received', at: new Date('2026-01-12T15:00:00Z') })
    .execute();
  const call = (type: string, result: string | null, secs: number | null) =>
    insertRecord('calls', {
      subject: `${type} call`,
      call_type: type,
      call_start_time: '2026-01-06T15:00:00.000Z',
      ...(result ? { call_result: result } : {}),
      ...(secs !== null ? { call_duration_seconds: secs } : {}),
    });
  await call('Outbound', 'Interested', 300);
  await call('Outbound', 'Busy', 0);
  await call('Outbound', null, null);
  await call('Inbound', null, 120);
  await call('Missed', null, null);
  await rollUp();
}, 60_000);

afterAll(async () => {
  await t?.stop();
});

describe('Email & Calls Analytics', () => {
  it('groups by week in the user’s time zone (weeks start on Monday)', async () => {
    const r = await admin.req(
      'GET',
      '/api/reports/email-calls?from=2026-01-01&to=2026-01-31&groupBy=week&by=date',
    );
    expect(r.status).toBe(200);
    const by = Object.fromEntries(r.body.rows.map((x: { period: string }) => [x.period, x]));
    expect(Object.keys(by).sort()).toEqual(['2025-12-29', '2026-01-05', '2026-01-12', '2026-01-26']);
    expect(by['2025-12-29'].sent).toBe(1);
    expect(by['2026-01-05']).toMatchObject({
      sent: 1,
      replied: 1,
      dialledAttended: 1,
      dialledUnattended: 2,
      callsReceived: 1,
      callsMissed: 1,
      callMinutes: 7,
    });
    expect(by['2026-01-12'].received).toBe(1);
    expect(by['2026-01-26'].sent).toBe(2);
    expect(r.body.summary).toMatchObject({ sent: 4, received: 1, replied: 1, callMinutes: 7 });
  });

  it('groups by month: the last evening of January in New York is January, not February (UTC)', async () => {
    const r = await admin.req('GET', '/api/reports/email-calls?from=2026-01-01&to=2026-02-28&groupBy=month');
    expect(r.body.rows.map((x: { period: string; sent: number }) => [x.period, x.sent])).toEqual([
      ['2026-01-01', 4],
    ]);
    const utc = { ...(await actorForUser(t.deps, { userId: org.adminId }))!, timeZone: 'UTC' };
    const inUtc = await emailCallsReport(t.deps, utc, {
      from: '2026-01-01',
      to: '2026-02-28',
      groupBy: 'month',
      by: 'date',
    });
    expect(inUtc.rows.map((x) => [x.period, x.sent])).toEqual([
      ['2026-01-01', 3],
      ['2026-02-01', 1],
    ]);
  });

  it('by user and by both, and a CSV', async () => {
    const u = await admin.req(
      'GET',
      '/api/reports/email-calls?from=2026-01-01&to=2026-01-31&groupBy=year&by=user',
    );
    expect(u.body.rows).toHaveLength(1);
    expect(u.body.rows[0]).toMatchObject({ period: null, userId: org.adminId, sent: 4, callsMissed: 1 });
    const both = await admin.req(
      'GET',
      '/api/reports/email-calls?from=2026-01-01&to=2026-01-31&groupBy=year&by=both',
    );
    expect(both.body.rows[0]).toMatchObject({ period: '2026-01-01', userId: org.adminId, sent: 4 });
    const csv = await admin.req(
      'GET',
      '/api/reports/email-calls?from=2026-01-01&to=2026-01-31&groupBy=year&by=both&format=csv',
    );
    expect(csv.status).toBe(200);
    expect(csv.text.split('\n')[0]).toBe(
      'Period,User,sent,received,replied,dialledAttended,dialledUnattended,callsReceived,callsMissed,callMinutes',
    );
    expect(csv.text.split('\n')[1]).toMatch(/^2026-01-01,Admin [0-9a-f]+,4,1,1,1,2,1,1,7$/);
  });

  it('shows a user only the modules they may read', async () => {
    const r = await limited.req(
      'GET',
      '/api/reports/email-calls?from=2026-01-01&to=2026-01-31&groupBy=month',
    );
    expect(r.body.calls).toBe(false);
    expect(r.body.summary).toMatchObject({
      sent: 3,
      replied: 0,
      received: 1,
      dialledAttended: 0,
      callMinutes: 0,
    });
  });

  it('refuses bad input with a 400', async () => {
    for (const q of [
      'from=2026-02-01&to=2026-01-01',
      'from=2026-01-01&to=2026-01-31&groupBy=hour',
      'from=yesterday&to=2026-01-31',
      'from=2020-01-01&to=2026-01-31',
    ])
      expect((await admin.req('GET', `/api/reports/email-calls?${q}`)).status, q).toBe(400);
  });
});

describe('Sent Email Status', () => {
  const Q = 'from=2026-01-01&to=2026-01-31';

  it('lists one row per sent email, newest first, in keyset pages', async () => {
    const p1 = await admin.req('GET', `/api/reports/sent-status?${Q}&limit=3`);
    expect(p1.status).toBe(200);
    expect(p1.body.rows).toHaveLength(3);
    expect(p1.body.next).toBeTruthy();
    const p2 = await admin.req('GET', `/api/reports/sent-status?${Q}&limit=3&after=${p1.body.next}`);
    expect(p2.body.rows).toHaveLength(1);
    expect(p2.body.next).toBeNull();
    const all = [...p1.body.rows, ...p2.body.rows];
    expect(new Set(all.map((r) => r.id)).size).toBe(4);
    const times = all.map((r) => r.sentAt);
    expect([...times].sort().reverse()).toEqual(times);
    expect(all[0]).toMatchObject({ status: 'bounced', record: { module: 'leads', name: 'Ada Lovelace' } });
    expect(all[3]).toMatchObject({ status: 'opened', opens: 1 });
    expect((await admin.req('GET', `/api/reports/sent-status?${Q}&after=junk`)).status).toBe(400);
  });

  it('filters by status with the same rule as each row’s status', async () => {
    const all = (await admin.req('GET', `/api/reports/sent-status?${Q}`)).body.rows as { status: string }[];
    for (const s of ['sent', 'delivered', 'bounced', 'opened', 'clicked', 'replied']) {
      const f = (await admin.req('GET', `/api/reports/sent-status?${Q}&status=${s}`)).body.rows as {
        status: string;
      }[];
      expect(f.length, s).toBe(all.filter((r) => r.status === s).length);
      expect(f.every((r) => r.status === s)).toBe(true);
    }
    expect((await admin.req('GET', `/api/reports/sent-status?${Q}&status=replied`)).body.rows).toHaveLength(
      1,
    );
  });

  it('hides emails of records in modules the user may not read', async () => {
    const r = await limited.req('GET', `/api/reports/sent-status?${Q}`);
    expect(r.body.rows).toHaveLength(3);
    expect(r.body.rows.every((x: { record: { module: string } }) => x.record.module === 'leads')).toBe(true);
  });

  it('exports the chosen columns, in order, as formula-safe CSV', async () => {
    const r = await admin.req(
      'GET',
      `/api/reports/sent-status?${Q}&format=csv&columns=subject,status,record`,
    );
    expect(r.status).toBe(200);
    const lines = r.text.trim().split('\n');
    expect(lines[0]).toBe('Subject,Status,Record');
    expect(lines).toHaveLength(5);
    expect(r.text).toContain(`"'=HYPERLINK(""http://evil"")",delivered,Ada Lovelace`);
    expect(r.text).not.toMatch(/^=|,=/m);
    expect(
      (await admin.req('GET', `/api/reports/sent-status?${Q}&format=csv&columns=subject,nope`)).status,
    ).toBe(400);
  });

  it('saves named reports per user', async () => {
    const config = {
      columns: ['status', 'subject', 'sentAt'],
      status: 'opened',
      from: '2026-01-01',
      to: null,
    };
    const s = await admin.req('POST', '/api/reports/saved', { name: 'Opened in January', config });
    expect(s.status).toBe(201);
    expect(s.body.config).toEqual(config);
    // Saving under the same name replaces it.
    const s2 = await admin.req('POST', '/api/reports/saved', {
      name: 'Opened in January',
      config: { ...config, columns: ['subject', 'status'] },
    });
    expect(s2.body.id).toBe(s.body.id);
    const mine = (await admin.req('GET', '/api/reports/saved')).body.reports;
    expect(mine).toHaveLength(1);
    expect(mine[0].config.columns).toEqual(['subject', 'status']);
    expect((await limited.req('GET', '/api/reports/saved')).body.reports).toEqual([]);
    expect((await limited.req('DELETE', `/api/reports/saved/${s.body.id}`)).status).toBe(404);
    for (const bad of [
      { name: '', config },
      { name: 'x', config: { ...config, columns: [] } },
      { name: 'x', config: { ...config, columns: ['status', 'status'] } },
      { name: 'x', config: { ...config, status: 'exploded' } },
    ])
      expect((await admin.req('POST', '/api/reports/saved', bad)).status).toBe(400);
    expect((await admin.req('DELETE', `/api/reports/saved/${s.body.id}`)).status).toBe(204);
    expect((await admin.req('GET', '/api/reports/saved')).body.reports).toEqual([]);
  });

  it('emails the CSV to users of the org: a queued message each, with the attachment', async () => {
    const r = await admin.req('POST', '/api/reports/sent-status/email', {
      from: '2026-01-01',
      to: '2026-01-31',
      columns: ['recipient', 'subject', 'status'],
      userIds: [limitedId],
      name: 'January',
    });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ queued: 1, rows: 4, truncated: false });
    const rows = (
      await sql<{ to_address: string; kind: string; subject: string; filename: string; content: Buffer }>`
        SELECT m.to_address, m.kind, m.subject, a.filename, a.content
        FROM messages m JOIN message_attachments a ON a.message_id = m.id
        WHERE m.org_id = ${org.orgId} AND m.kind = 'system'`.execute(t.deps.db)
    ).rows;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      to_address: limitedEmail,
      subject: 'Parley report: January',
      filename: 'sent-email-status-2026-01-01-to-2026-01-31.csv',
    });
    const csv = rows[0]!.content.toString('utf8');
    expect(csv.split('\n')[0]).toBe('Recipient,Subject,Status');
    expect(csv).toContain(`"'=HYPERLINK(""http://evil"")"`);
    // Delivered (to the org's outbox here) as a multipart/mixed message carrying the CSV.
    await deliverDue(t.deps, { orgId: org.orgId });
    const stored = await t.deps.db
      .selectFrom('outbox')
      .innerJoin('messages', 'messages.id', 'outbox.message_id')
      .select('outbox.raw')
      .where('messages.org_id', '=', org.orgId)
      .where('messages.kind', '=', 'system')
      .executeTakeFirstOrThrow();
    const mail = await simpleParser(stored.raw);
    expect(mail.attachments.map((a) => [a.filename, a.content.toString('utf8')])).toEqual([
      ['sent-email-status-2026-01-01-to-2026-01-31.csv', csv],
    ]);
    // Recipients must be users of the same org.
    const other = await t.createOrg();
    const bad = await admin.req('POST', '/api/reports/sent-status/email', {
      from: '2026-01-01',
      to: '2026-01-31',
      columns: ['subject'],
      userIds: [other.adminId],
    });
    expect(bad.status).toBe(400);
  });
});

describe('own sends', () => {
  it('are visible to their sender even in a module the sender may not read', async () => {
    const contact = await insertRecord('contacts', { first_name: 'Own', last_name: 'Send' });
    await insertSent({
      module: 'contacts',
      recordId: contact,
      sentAt: '2026-01-20T15:00:00Z',
      senderId: limitedId,
    });
    await rollUp();
    const rows = (await limited.req('GET', '/api/reports/sent-status?from=2026-01-01&to=2026-01-31')).body
      .rows;
    expect(rows.map((r: { record: { name: string } }) => r.record.name)).toContain('Own Send');
    expect(rows).toHaveLength(4);
    const r = await limited.req(
      'GET',
      '/api/reports/email-calls?from=2026-01-01&to=2026-01-31&groupBy=month',
    );
    expect(r.body.summary.sent).toBe(4);
  });
});
