// Reports over the API: rows add up to the summary, dates follow the caller's time zone (to the
// quarter hour), what a user may see, formula-safe CSV, the leaderboards' minimum sends, and
// template performance version by version.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROW_KEYS } from '../src/reports/query.ts';
import { rebuildRollups } from '../src/reports/rollups.ts';
import { type NewEmailEvent, recordEvents } from '../src/tracking/events.ts';
import { drain, type Fixture, insertMessage, type NewMessage, reportFixture } from './reports-fixture.ts';
import { type Client, login, startTestApp } from './support/app.ts';

let t: Awaited<ReturnType<typeof startTestApp>>;
let f: Fixture;
let admin: Client;
let clerk: Client;
let clerkId: string;
let leads: string;
let contacts: string;
const [T0, T1, T2] = [0, 1, 2];
const EVIL = '=HYPERLINK("http://evil.example","x")';

const at = (iso: string) => new Date(iso);

async function send(n: number, m: Omit<NewMessage, 'sentAt'> & { sentAt: Date }): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await insertMessage(t.deps, f.orgId, m));
  return ids;
}
const ev = (messageId: string, kind: NewEmailEvent['kind'], human = true): NewEmailEvent => ({
  orgId: f.orgId,
  messageId,
  recordId: null,
  massEmailId: null,
  kind,
  human,
  at: new Date(),
});

beforeAll(async () => {
  t = await startTestApp();
  f = await reportFixture(t.deps);
  [leads, contacts] = f.modules; // reportFixture: leads first, then contacts
  admin = await login(t.app, f.org.adminEmail, f.org.adminPassword);
  // A user who may read contacts only: sees contacts' numbers and their own sends.
  const prof = await admin.req('POST', '/api/profiles', {
    name: 'Contact readers',
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
  clerkId = inv.body.user.id;
  clerk = await login(t.app, inv.body.user.email, 'clerk-password-1');
  await sql`UPDATE templates SET name = ${EVIL} WHERE id = ${f.templates[T2].id}`.execute(t.deps.db);

  const [admin0, bea, cal] = f.users;
  const tpl = (i: number, version = 1) => ({
    templateId: f.templates[i].id,
    version,
    moduleId: f.templates[i].moduleId,
  });
  const events: NewEmailEvent[] = [];
  // Template 0 (leads), version 1: 40 by the admin, 20 opened, 5 clicked, 3 opened by machines, 2 bounced.
  const v1 = await send(40, {
    senderId: admin0,
    recordId: null,
    tracked: true,
    sentAt: at('2026-03-10T10:00:00Z'),
    ...tpl(T0),
  });
  for (const id of v1.slice(0, 20)) events.push(ev(id, 'opened'));
  for (const id of v1.slice(0, 5)) events.push(ev(id, 'clicked'), ev(id, 'clicked'));
  for (const id of v1.slice(30, 33)) events.push(ev(id, 'opened', false));
  for (const id of v1.slice(38)) events.push(ev(id, 'bounced'));
  // Version 2: 20 by Bea, 16 opened, 8 clicked.
  const v2 = await send(20, {
    senderId: bea,
    recordId: null,
    tracked: true,
    sentAt: at('2026-03-10T11:00:00Z'),
    ...tpl(T0, 2),
  });
  for (const id of v2.slice(0, 16)) events.push(ev(id, 'opened'));
  for (const id of v2.slice(0, 8)) events.push(ev(id, 'clicked'));
  // Template 1 (leads): 2 by Cal, both opened (100 %, but too few to rank with minSends 50).
  const t1 = await send(2, {
    senderId: cal,
    recordId: null,
    tracked: true,
    sentAt: at('2026-03-10T12:00:00Z'),
    ...tpl(T1),
  });
  for (const id of t1) events.push(ev(id, 'opened'));
  // Template 2 (contacts, a formula for a name): 4 tracked + 1 untracked by the clerk, one replied.
  const t2 = await send(4, {
    senderId: clerkId,
    recordId: null,
    tracked: true,
    sentAt: at('2026-03-10T13:00:00Z'),
    ...tpl(T2),
  });
  await send(1, {
    senderId: clerkId,
    recordId: null,
    tracked: false,
    sentAt: at('2026-03-10T13:00:00Z'),
    ...tpl(T2),
  });
  events.push(ev(t2[0], 'replied'));
  // The clerk's own mail about a lead (which the clerk may not read: still theirs to see).
  await send(1, {
    senderId: clerkId,
    recordId: null,
    tracked: true,
    sentAt: at('2026-03-10T14:00:00Z'),
    moduleId: leads,
    templateId: null,
    version: null,
  });
  // Around midnight in India (+5:30) and Nepal (+5:45): 23:40 / 23:55, 23:50 / 00:05, 00:20 / 00:35.
  for (const time of ['18:10', '18:20', '18:50'])
    await send(1, {
      senderId: admin0,
      recordId: null,
      tracked: false,
      sentAt: at(`2026-03-20T${time}:00Z`),
      moduleId: leads,
      templateId: null,
      version: null,
    });
  // A received email from a contact the clerk owns.
  const rec = await sql<{ id: string }>`
    INSERT INTO records (org_id, module_id, owner_id, data) VALUES (${f.orgId}, ${contacts}, ${clerkId}, '{}')
    RETURNING id`.execute(t.deps.db);
  events.push({
    ...ev(t2[0], 'received'),
    messageId: null,
    recordId: rec.rows[0].id,
    at: at('2026-03-10T15:00:00Z'),
    data: { mailId: 'm1' },
  });
  // Test sends never count.
  await send(3, {
    kind: 'test',
    senderId: admin0,
    recordId: null,
    tracked: true,
    sentAt: at('2026-03-10T10:00:00Z'),
    ...tpl(T0),
  });
  await recordEvents(t.deps.db, events);
  // The worker follows the feed; the org's rebuild counts its past sends, older than the cursor.
  await drain(t.deps);
  await rebuildRollups(t.deps, { orgId: f.orgId });
});
afterAll(() => t.stop());

const q = (params: Record<string, string>) => new URLSearchParams(params).toString();
const sum = (rows: Record<string, number>[]) =>
  Object.fromEntries(ROW_KEYS.map((k) => [k, rows.reduce((s, r) => s + r[k], 0)]));

describe('Email Analytics', () => {
  it('gives the period and its break-ups, whose rows add up to the summary', async () => {
    const expected = {
      sent: 71,
      bounced: 2,
      tracked: 67,
      bouncedTracked: 2,
      opened: 38,
      openedMachine: 3,
      clicked: 13,
      clickedMachine: 0,
      received: 1,
      replied: 1,
    };
    for (const groupBy of ['date', 'template', 'module', 'user']) {
      const r = await admin.req(
        'GET',
        `/api/reports/email-analytics?${q({ from: '2026-03-01', to: '2026-03-31', groupBy })}`,
      );
      expect(r.status).toBe(200);
      expect(r.body.summary).toEqual(expected);
      expect(sum(r.body.rows)).toEqual(r.body.summary);
    }
    const byDate = await admin.req(
      'GET',
      `/api/reports/email-analytics?${q({ from: '2026-03-09', to: '2026-03-11', groupBy: 'date' })}`,
    );
    expect(byDate.body.rows.map((r: { key: string; sent: number }) => [r.key, r.sent])).toEqual([
      ['2026-03-09', 0],
      ['2026-03-10', 68],
      ['2026-03-11', 0],
    ]);
    const byTemplate = await admin.req(
      'GET',
      `/api/reports/email-analytics?${q({ from: '2026-03-10', to: '2026-03-10', groupBy: 'template' })}`,
    );
    expect(
      byTemplate.body.rows.map((r: { label: string; sent: number; opened: number }) => [
        r.label,
        r.sent,
        r.opened,
      ]),
    ).toEqual([
      ['Template 0', 60, 36],
      [EVIL, 5, 0],
      ['Template 1', 2, 2],
      ['No template', 1, 0],
    ]);
    // Filters: users, module, template.
    const [admin0, bea] = f.users;
    const filtered = await admin.req(
      'GET',
      `/api/reports/email-analytics?${q({ from: '2026-03-10', to: '2026-03-10', users: `${admin0},${bea}`, module: 'leads', template: f.templates[T0].id, groupBy: 'user' })}`,
    );
    expect(filtered.body.summary).toMatchObject({
      sent: 60,
      opened: 36,
      clicked: 13,
      openedMachine: 3,
      bounced: 2,
    });
    expect(filtered.body.rows.map((r: { label: string; sent: number }) => [r.label, r.sent])).toEqual([
      [`Admin ${f.org.adminEmail.slice(6, 16)}`, 40],
      ['Bea', 20],
    ]);
  });

  it('dates are in the caller’s time zone, to the quarter hour', async () => {
    const day = (from: string) => q({ from, to: from, groupBy: 'date' });
    const sent = async (tz: string, d: string) => {
      await sql`UPDATE users SET time_zone = ${tz} WHERE id = ${f.org.adminId}`.execute(t.deps.db);
      return (await admin.req('GET', `/api/reports/email-analytics?${day(d)}`)).body.summary.sent;
    };
    expect([await sent('UTC', '2026-03-20'), await sent('UTC', '2026-03-21')]).toEqual([3, 0]);
    expect([await sent('Asia/Kolkata', '2026-03-20'), await sent('Asia/Kolkata', '2026-03-21')]).toEqual([
      2, 1,
    ]);
    expect([await sent('Asia/Kathmandu', '2026-03-20'), await sent('Asia/Kathmandu', '2026-03-21')]).toEqual([
      1, 2,
    ]);
    // Over a range with whole days inside (day rows) the ragged ends still follow the zone.
    const range = await admin.req(
      'GET',
      `/api/reports/email-analytics?${q({ from: '2026-03-05', to: '2026-03-20', groupBy: 'module' })}`,
    );
    expect(range.body.summary.sent).toBe(68 + 1); // (still in Nepal: only 18:10Z of the 20th)
    await sql`UPDATE users SET time_zone = 'UTC' WHERE id = ${f.org.adminId}`.execute(t.deps.db);
  });

  it('a range over whole months (month rows) adds up to its days (day and quarter-hour rows), in any zone', async () => {
    for (const tz of ['UTC', 'Asia/Kathmandu', 'America/New_York']) {
      await sql`UPDATE users SET time_zone = ${tz} WHERE id = ${f.org.adminId}`.execute(t.deps.db);
      for (const [from, to] of [
        ['2026-01-15', '2026-04-15'],
        ['2026-03-01', '2026-03-31'],
        ['2025-12-01', '2026-06-30'],
      ]) {
        const byModule = await admin.req(
          'GET',
          `/api/reports/email-analytics?${q({ from, to, groupBy: 'module' })}`,
        );
        const byDate = await admin.req(
          'GET',
          `/api/reports/email-analytics?${q({ from, to, groupBy: 'date' })}`,
        );
        expect(byModule.body.summary.sent).toBeGreaterThan(0);
        expect({ tz, from, ...byModule.body.summary }).toEqual({ tz, from, ...byDate.body.summary });
      }
    }
    await sql`UPDATE users SET time_zone = 'UTC' WHERE id = ${f.org.adminId}`.execute(t.deps.db);
  });

  it('shows a user the modules they can read and their own sends; other orgs nothing', async () => {
    const r = await clerk.req(
      'GET',
      `/api/reports/email-analytics?${q({ from: '2026-03-01', to: '2026-03-31', groupBy: 'module' })}`,
    );
    expect(r.status).toBe(200);
    // contacts (5 sends, the received mail), and the clerk's own lead email; not the others' leads mail
    expect(r.body.summary).toMatchObject({ sent: 6, received: 1, replied: 1, opened: 0 });
    expect(r.body.rows.map((x: { label: string; sent: number }) => [x.label, x.sent]).sort()).toEqual([
      ['Contacts', 5],
      ['Leads', 1],
    ]);
    const other = await t.createOrg();
    const stranger = await login(t.app, other.adminEmail, other.adminPassword);
    const s = await stranger.req(
      'GET',
      `/api/reports/email-analytics?${q({ from: '2026-03-01', to: '2026-03-31' })}`,
    );
    expect(s.body.summary.sent).toBe(0);
    expect(
      (
        await stranger.req(
          'GET',
          `/api/templates/${f.templates[T0].id}/performance?${q({ from: '2026-03-01', to: '2026-03-31' })}`,
        )
      ).status,
    ).toBe(404);
    expect(
      (
        await clerk.req(
          'GET',
          `/api/templates/${f.templates[T0].id}/performance?${q({ from: '2026-03-01', to: '2026-03-31' })}`,
        )
      ).status,
    ).toBe(404);
    const anon = await t.app.inject({
      method: 'GET',
      url: '/api/reports/leaderboards?from=2026-03-01&to=2026-03-31',
    });
    expect(anon.statusCode).toBe(401);
  });

  it('refuses bad input with a clear 400', async () => {
    for (const bad of <Record<string, string>[]>[
      { from: '2026-13-01', to: '2026-03-31' },
      { from: '2026-03-31', to: '2026-03-01' },
      { from: '2020-01-01', to: '2026-03-01' },
      { from: '2026-03-01', to: '2026-03-31', module: 'nope' },
      { from: '2026-03-01', to: '2026-03-31', users: 'not-a-uuid' },
      { from: '2026-03-01', to: '2026-03-31', groupBy: 'weekday' },
    ]) {
      const r = await admin.req('GET', `/api/reports/email-analytics?${q(bad)}`);
      expect([bad, r.status]).toEqual([bad, 400]);
    }
  });

  it('exports formula-safe CSV whose rows add up', async () => {
    const r = await admin.req(
      'GET',
      `/api/reports/email-analytics?${q({ from: '2026-03-10', to: '2026-03-10', groupBy: 'template', format: 'csv' })}`,
    );
    expect(r.status).toBe(200);
    expect(r.text).toContain(`"'=HYPERLINK(""http://evil.example"",""x"")",5,`);
    expect(r.text).not.toMatch(/(^|\n)"?=/);
    const lines = r.text.trim().split('\n');
    expect(lines[0]).toBe(
      'Template,Sent,Bounced,Tracked,Bounced (tracked),Opened,Opened by machines,Clicked,Clicked by machines,Received,Replied',
    );
    expect(lines.at(-1)).toBe('Total,68,2,67,2,38,3,13,0,1,1');
  });
});

describe('Leaderboards', () => {
  it('ranks templates by open and click rate with a minimum of sends, and users by sent', async () => {
    const r = await admin.req(
      'GET',
      `/api/reports/leaderboards?${q({ from: '2026-03-01', to: '2026-03-31' })}`,
    );
    expect(r.status).toBe(200);
    expect(r.body.templatesByOpenRate).toEqual([
      {
        templateId: f.templates[T0].id,
        name: 'Template 0',
        sent: 60,
        tracked: 60,
        opened: 36,
        clicked: 13,
        rate: 0.6,
      },
    ]);
    expect(r.body.templatesByClickRate[0].rate).toBe(0.2167);
    expect(r.body.usersBySent.map((u: { name: string; sent: number }) => [u.name, u.sent])).toEqual([
      [`Admin ${f.org.adminEmail.slice(6, 16)}`, 43],
      ['Bea', 20],
      ['Clerk', 6],
      ['Cal', 2],
    ]);
    const low = await admin.req(
      'GET',
      `/api/reports/leaderboards?${q({ from: '2026-03-01', to: '2026-03-31', minSends: '2' })}`,
    );
    expect(low.body.templatesByOpenRate.map((x: { name: string; rate: number }) => [x.name, x.rate])).toEqual(
      [
        ['Template 1', 1],
        ['Template 0', 0.6],
        [EVIL, 0],
      ],
    );
    const csv = await admin.req(
      'GET',
      `/api/reports/leaderboards?${q({ from: '2026-03-01', to: '2026-03-31', minSends: '2', format: 'csv' })}`,
    );
    expect(csv.text).toContain(`Open rate,3,"'=HYPERLINK`);
    expect(csv.text).toContain('Open rate,1,Template 1,2,2,2,0,100');
  });
});

describe('Template performance', () => {
  it('per version, with date, author and comment, and for every template, searchable', async () => {
    const r = await admin.req(
      'GET',
      `/api/templates/${f.templates[T0].id}/performance?${q({ from: '2026-03-01', to: '2026-03-31' })}`,
    );
    expect(r.status).toBe(200);
    expect(r.body.total).toEqual({
      sent: 60,
      tracked: 60,
      opened: 36,
      clicked: 13,
      openRate: 0.6,
      clickRate: 0.2167,
    });
    expect(
      r.body.versions.map((v: Record<string, unknown>) => [
        v.version,
        v.comment,
        v.sent,
        v.opened,
        v.clicked,
        v.openRate,
        v.clickRate,
      ]),
    ).toEqual([
      [1, null, 40, 20, 5, 0.5, 0.125],
      [2, 'shorter subject', 20, 16, 8, 0.8, 0.4],
    ]);
    expect(typeof r.body.versions[0].createdAt).toBe('string');
    // Before any send: every version, all zero.
    const before = await admin.req(
      'GET',
      `/api/templates/${f.templates[T0].id}/performance?${q({ from: '2026-01-01', to: '2026-01-31' })}`,
    );
    expect(before.body.versions.map((v: { sent: number }) => v.sent)).toEqual([0, 0]);

    const list = await admin.req(
      'GET',
      `/api/reports/template-performance?${q({ from: '2026-03-01', to: '2026-03-31', search: 'template' })}`,
    );
    expect(
      list.body.rows.map((x: { name: string; sent: number; versions: number }) => [
        x.name,
        x.sent,
        x.versions,
      ]),
    ).toEqual([
      ['Template 0', 60, 2],
      ['Template 1', 2, 1],
    ]);
    // the clerk sees contacts' templates only
    const mine = await clerk.req(
      'GET',
      `/api/reports/template-performance?${q({ from: '2026-03-01', to: '2026-03-31' })}`,
    );
    expect(mine.body.rows.map((x: { name: string; sent: number }) => [x.name, x.sent])).toEqual([[EVIL, 5]]);
    const csv = await admin.req(
      'GET',
      `/api/templates/${f.templates[T0].id}/performance?${q({ from: '2026-03-01', to: '2026-03-31', format: 'csv' })}`,
    );
    expect(csv.text.split('\n')[2]).toMatch(/^2,[^,]+,,shorter subject,20,20,16,8,80,40$/);
  });
});
