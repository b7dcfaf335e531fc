// ResponseWatch with a fake clock: at the due time without a reply the user gets one notification
// and one task even when two workers check at once; a reply before then settles it as replied.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Actor, acceptInvite, actorForUser, createRecord, inviteUser } from '../src/crm/index.ts';
import type { Clock } from '../src/deps.ts';
import { checkResponseWatches, createWatch } from '../src/mailbox/inbox/watches.ts';
import { type Box, deliver, mailbox } from './salesinbox-fixtures.ts';
import { type Client, login, startTestApp, type TestOrg, testDeps } from './support/app.ts';

let now = new Date();
const clock: Clock = { now: () => now };
const advance = (ms: number) => {
  now = new Date(now.getTime() + ms);
};
const HOUR = 3_600_000;
const BULK = 20;

let t: Awaited<ReturnType<typeof startTestApp>>;
let second: ReturnType<typeof testDeps>; // another worker's connection pool
let org: TestOrg;
let ann: Actor;
let bob: Actor;
let annClient: Client;
let box: Box;
let leadId: string;
const lead = `buyer-${randomBytes(3).toString('hex')}@buyer.example`;

beforeAll(async () => {
  t = await startTestApp(clock);
  second = testDeps(clock);
  org = await t.createOrg();
  ann = (await actorForUser(t.deps, { userId: org.adminId })) as Actor;
  const bobEmail = `bob-${randomBytes(3).toString('hex')}@acme.example`;
  const inv = await inviteUser(t.deps, ann, {
    email: bobEmail,
    name: 'Bob',
    profileId: org.standardProfileId,
  });
  await acceptInvite(t.deps, { token: inv.inviteToken, password: 'bob-password-123' });
  bob = (await actorForUser(t.deps, { userId: inv.user.id })) as Actor;
  leadId = (await createRecord(t.deps, ann, 'leads', { data: { last_name: 'Buyer', email: lead } })).id;
  box = await mailbox(t.deps, org.orgId, org.adminId, `ann-${randomBytes(3).toString('hex')}@acme.example`);
  annClient = await login(t.app, org.adminEmail, org.adminPassword);
});
afterAll(async () => {
  await second.close();
  await t.stop();
});

const sent = (subject: string) =>
  deliver(t.deps, org.orgId, box, { from: box.address, to: [lead], subject, date: now });
const headerOf = async (mailId: string) =>
  (
    await t.deps.db
      .selectFrom('mail_messages')
      .select('message_id_header')
      .where('id', '=', mailId)
      .executeTakeFirstOrThrow()
  ).message_id_header as string;
const watch = (id: string) =>
  t.deps.db.selectFrom('response_watches').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const notificationsOf = (userId: string) =>
  t.deps.db
    .selectFrom('notifications')
    .selectAll()
    .where('user_id', '=', userId)
    .orderBy('created_at')
    .execute();
const tasksOf = async (userId: string) =>
  t.deps.db
    .selectFrom('records as r')
    .innerJoin('modules as m', 'm.id', 'r.module_id')
    .select(['r.id', 'r.data', 'r.owner_id'])
    .where('r.org_id', '=', org.orgId)
    .where('m.api_name', '=', 'tasks')
    .where('r.owner_id', '=', userId)
    .execute();

async function parleyMessage(subject: string) {
  const mod = await t.deps.db
    .selectFrom('modules')
    .select('id')
    .where('org_id', '=', org.orgId)
    .where('api_name', '=', 'leads')
    .executeTakeFirstOrThrow();
  return t.deps.db
    .insertInto('messages')
    .values({
      org_id: org.orgId,
      kind: 'individual',
      sender_id: org.adminId,
      module_id: mod.id,
      record_id: leadId,
      from_address: box.address,
      to_address: lead,
      subject,
      text: 'Hello',
      message_id_header: `<rw.${randomBytes(6).toString('hex')}@parley.test>`,
      transport: 'relay',
      status: 'sent',
      sent_at: now,
      expires_at: new Date(now.getTime() + 86_400_000),
    })
    .returning(['id', 'message_id_header'])
    .executeTakeFirstOrThrow();
}

describe('ResponseWatch', () => {
  it('reminds once, with a notification and a task, when no reply came in time', async () => {
    const mailId = await sent('Our offer');
    const w = await createWatch(t.deps, ann, { mailId, amount: 1, unit: 'days' });
    expect(w.state).toBe('waiting');
    // More due at the same time, so that concurrent workers overlap for a while.
    for (let i = 0; i < BULK; i++)
      await createWatch(t.deps, ann, { mailId: await sent(`Bulk ${i}`), amount: 1, unit: 'days' });
    // A follow-up of Ann's own in the thread is no reply.
    await deliver(t.deps, org.orgId, box, {
      from: box.address,
      to: [lead],
      subject: 'Re: Our offer',
      inReplyTo: await headerOf(mailId),
      date: now,
    });
    advance(23 * HOUR);
    await checkResponseWatches(t.deps);
    expect((await watch(w.id)).state).toBe('waiting');
    expect(await notificationsOf(org.adminId)).toEqual([]);

    advance(2 * HOUR);
    // Three workers at the same moment: each watch is claimed by one of them.
    await Promise.all([
      checkResponseWatches(t.deps),
      checkResponseWatches(second),
      checkResponseWatches(second),
    ]);
    await checkResponseWatches(second);
    const after = await watch(w.id);
    expect(after).toMatchObject({ state: 'reminded', reminded_at: now });
    const notes = await notificationsOf(org.adminId);
    expect(notes).toHaveLength(BULK + 1);
    expect(notes.filter((n) => n.title === 'No reply: Our offer')).toMatchObject([
      { kind: 'response_watch', link: `/inbox?mail=${mailId}` },
    ]);
    const tasks = await tasksOf(org.adminId);
    expect(tasks).toHaveLength(BULK + 1);
    const task = tasks.find((x) => x.id === after.task_id);
    expect(task?.data).toMatchObject({
      subject: 'No reply: Our offer',
      due_date: now.toISOString().slice(0, 10),
      lead_id: leadId,
      status: 'Not Started',
    });
  });

  it('a reply before the due time settles it as replied; nothing is created', async () => {
    const mailId = await sent('Meeting next week?');
    const w = await createWatch(t.deps, ann, { mailId, amount: 3, unit: 'hours' });
    const before = (await notificationsOf(org.adminId)).length;
    advance(HOUR);
    await deliver(t.deps, org.orgId, box, {
      from: lead,
      to: [box.address],
      subject: 'Re: Meeting next week?',
      references: ['<older@x.example>', await headerOf(mailId)],
      inReplyTo: '<other@x.example>',
      date: now,
    });
    advance(5 * HOUR);
    await Promise.all([checkResponseWatches(t.deps), checkResponseWatches(second)]);
    expect(await watch(w.id)).toMatchObject({ state: 'replied', task_id: null, reminded_at: null });
    expect(await notificationsOf(org.adminId)).toHaveLength(before);
    // The inbox shows the watch's state on the sent email.
    const r = await annClient.req('POST', '/api/inbox/query', { tab: 'all', subject: 'Meeting next week' });
    expect(r.body.items.find((i: { id: string }) => i.id === mailId).watch).toMatchObject({
      state: 'replied',
    });
  });

  it('a reply threaded by subject alone counts; a colleague writing in the thread does not', async () => {
    const mailId = await sent('Samples for Q3');
    const w = await createWatch(t.deps, ann, { mailId, amount: 2, unit: 'hours' });
    const bobEmail = (
      await t.deps.db
        .selectFrom('users')
        .select('email')
        .where('id', '=', bob.userId)
        .executeTakeFirstOrThrow()
    ).email;
    advance(10 * 60_000);
    await deliver(t.deps, org.orgId, box, {
      from: bobEmail,
      to: [box.address, lead],
      subject: 'Re: Samples for Q3',
      inReplyTo: await headerOf(mailId),
      date: now,
    });
    await checkResponseWatches(t.deps);
    expect((await watch(w.id)).state).toBe('waiting');
    advance(10 * 60_000);
    // No In-Reply-To or References: ingest threads it by subject and participants.
    await deliver(t.deps, org.orgId, box, {
      from: lead,
      to: [box.address],
      subject: 'RE: Samples for Q3',
      references: [],
      date: now,
    });
    await checkResponseWatches(t.deps);
    expect((await watch(w.id)).state).toBe('replied');
  });

  it('on an email Parley sent: replied_at settles it; without it a task related to the record', async () => {
    const answered = await parleyMessage('Quote');
    const silent = await parleyMessage('Brochure');
    const r1 = await annClient.req('POST', '/api/inbox/watches', {
      messageId: answered.id,
      amount: 2,
      unit: 'hours',
    });
    const r2 = await annClient.req('POST', '/api/inbox/watches', {
      messageId: silent.id,
      amount: 2,
      unit: 'hours',
    });
    expect([r1.status, r2.status]).toEqual([201, 201]);
    expect(
      (await annClient.req('POST', '/api/inbox/watches', { messageId: silent.id, amount: 1, unit: 'days' }))
        .status,
    ).toBe(409);
    await t.deps.db.updateTable('messages').set({ replied_at: now }).where('id', '=', answered.id).execute();
    advance(3 * HOUR);
    await checkResponseWatches(t.deps);
    expect((await watch(r1.body.id)).state).toBe('replied');
    const w2 = await watch(r2.body.id);
    expect(w2.state).toBe('reminded');
    const note = (await notificationsOf(org.adminId)).at(-1);
    expect(note).toMatchObject({ title: 'No reply: Brochure', link: `/m/leads/${leadId}` });
    const task = (await tasksOf(org.adminId)).find((x) => x.id === w2.task_id);
    expect(task?.data).toMatchObject({ subject: 'No reply: Brochure', lead_id: leadId });
    // Listed on the message, as the record's Emails list asks.
    const list = await annClient.req('GET', `/api/inbox/watches?messageId=${silent.id}`);
    expect(list.body.watches).toMatchObject([{ state: 'reminded', taskId: w2.task_id }]);
  });

  it('a cancelled watch never reminds; others cannot watch or cancel your mail', async () => {
    const mailId = await sent('Cancel me');
    const w = await createWatch(t.deps, ann, { mailId, amount: 1, unit: 'hours' });
    await expect(createWatch(t.deps, bob, { mailId, amount: 1, unit: 'hours' })).rejects.toMatchObject({
      code: 'not_found',
    });
    const msg = await parleyMessage('Not Bob’s');
    await expect(
      createWatch(t.deps, bob, { messageId: msg.id, amount: 1, unit: 'hours' }),
    ).rejects.toMatchObject({
      code: 'not_found',
    });
    // Incoming mail is not "sent mail".
    const incoming = await deliver(t.deps, org.orgId, box, {
      from: lead,
      to: [box.address],
      subject: 'Hi',
      date: now,
    });
    await expect(
      createWatch(t.deps, ann, { mailId: incoming, amount: 1, unit: 'hours' }),
    ).rejects.toMatchObject({
      code: 'not_found',
    });
    const bobClient = await login(
      t.app,
      (
        await t.deps.db
          .selectFrom('users')
          .select('email')
          .where('id', '=', bob.userId)
          .executeTakeFirstOrThrow()
      ).email,
      'bob-password-123',
    );
    expect((await bobClient.req('POST', `/api/inbox/watches/${w.id}/cancel`)).status).toBe(404);
    const c = await annClient.req('POST', `/api/inbox/watches/${w.id}/cancel`);
    expect(c.body.state).toBe('cancelled');
    const before = (await notificationsOf(org.adminId)).length;
    advance(2 * HOUR);
    await checkResponseWatches(t.deps);
    expect((await watch(w.id)).state).toBe('cancelled');
    expect(await notificationsOf(org.adminId)).toHaveLength(before);
    expect(
      (await annClient.req('POST', '/api/inbox/watches', { mailId, amount: 91, unit: 'days' })).status,
    ).toBe(400);
  });

  it('notifications: list, unread count, mark read, only your own', async () => {
    const count = await annClient.req('GET', '/api/notifications/unread-count');
    expect(count.body.unread).toBe(BULK + 2);
    const list = await annClient.req('GET', '/api/notifications?limit=3');
    expect(list.body.items).toHaveLength(3);
    expect(list.body.items[0].title).toBe('No reply: Brochure');
    const bobClient = await login(
      t.app,
      (
        await t.deps.db
          .selectFrom('users')
          .select('email')
          .where('id', '=', bob.userId)
          .executeTakeFirstOrThrow()
      ).email,
      'bob-password-123',
    );
    expect((await bobClient.req('GET', '/api/notifications')).body.items).toEqual([]);
    expect(
      (await bobClient.req('POST', '/api/notifications/read', { ids: [list.body.items[0].id] })).status,
    ).toBe(404);
    const read = await annClient.req('POST', '/api/notifications/read', { ids: [list.body.items[0].id] });
    expect(read.body).toEqual({ unread: BULK + 1 });
    expect((await annClient.req('POST', '/api/notifications/read', { ids: 'all' })).body).toEqual({
      unread: 0,
    });
  });
});
