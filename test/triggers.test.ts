import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EmailEventKind } from '../src/db/schema.ts';
import { buildApp } from '../src/http/app.ts';
import { fireTriggers } from '../src/sending/triggers.ts';
import { recordEvents } from '../src/tracking/events.ts';
import { type Client, createTestOrg, insertTemplate, login, type TestOrg, testDeps } from './support/app.ts';

const deps = testDeps();
let app: FastifyInstance;
let org: TestOrg;
let admin: Client;
let leadsId: string;
let templateId: string;

beforeAll(async () => {
  app = await buildApp(deps);
  org = await createTestOrg(deps, { edition: 'enterprise' });
  admin = await login(app, org.adminEmail, org.adminPassword);
  leadsId = (
    await deps.db
      .selectFrom('modules')
      .select('id')
      .where('org_id', '=', org.orgId)
      .where('api_name', '=', 'leads')
      .executeTakeFirstOrThrow()
  ).id;
  templateId = await insertTemplate(deps, org.orgId, 'leads', {
    subject: 'Hi',
    html: '<p>Hi</p>',
    text: 'Hi',
  });
});
afterAll(async () => {
  await app.close();
  await deps.close();
});

async function massEmail(
  name: string,
  createdBy = org.adminId,
  o = org,
  moduleId = leadsId,
  tpl = templateId,
) {
  return (
    await deps.db
      .insertInto('mass_emails')
      .values({
        org_id: o.orgId,
        module_id: moduleId,
        created_by: createdBy,
        name,
        template_id: tpl,
        from_choice: JSON.stringify({ kind: 'user' }),
        audience: JSON.stringify({ kind: 'ids', ids: [] }),
        status: 'sent',
      })
      .returning('id')
      .executeTakeFirstOrThrow()
  ).id;
}

async function recipient(massId: string, lastName: string) {
  const rec = await deps.db
    .insertInto('records')
    .values({
      org_id: org.orgId,
      module_id: leadsId,
      owner_id: org.adminId,
      data: JSON.stringify({
        last_name: lastName,
        email: `${lastName.toLowerCase()}@rcpt.example`,
        lead_status: 'Not Contacted',
      }),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const msg = await deps.db
    .insertInto('messages')
    .values({
      org_id: org.orgId,
      kind: 'mass',
      module_id: leadsId,
      record_id: rec.id,
      mass_email_id: massId,
      from_address: 'me@sender.example',
      to_address: `${lastName.toLowerCase()}@rcpt.example`,
      subject: 'Hi',
      message_id_header: `<${randomBytes(8).toString('hex')}@sender.example>`,
      transport: 'relay',
      status: 'sent',
      sent_at: new Date(),
      expires_at: new Date(Date.now() + 86400e3),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { recordId: rec.id, messageId: msg.id };
}

async function event(
  massId: string,
  r: { recordId: string; messageId: string },
  kind: EmailEventKind,
  human = true,
) {
  await recordEvents(deps.db, [
    {
      orgId: org.orgId,
      messageId: r.messageId,
      recordId: r.recordId,
      massEmailId: massId,
      kind,
      human,
      at: new Date(),
    },
  ]);
}

/** Fires until the feed is drained (the cursor may be busy a moment in another process). */
async function drain() {
  for (let i = 0; i < 200; i++) {
    const n = await fireTriggers(deps);
    if (n === 0) return;
  }
  throw new Error('trigger feed not drained');
}

async function related(module: 'tasks' | 'calls', recordId: string) {
  return deps.db
    .selectFrom('records as r')
    .innerJoin('modules as m', 'm.id', 'r.module_id')
    .select(['r.id', 'r.data', 'r.owner_id'])
    .where('r.org_id', '=', org.orgId)
    .where('m.api_name', '=', module)
    .where(sql<boolean>`r.data ->> 'lead_id' = ${recordId}`)
    .execute();
}

const leadData = async (id: string) =>
  (await deps.db.selectFrom('records').select('data').where('id', '=', id).executeTakeFirstOrThrow()).data;

const good = {
  opened: {
    fieldUpdates: [{ field: 'lead_status', value: 'contacted' }],
    tasks: [
      {
        subject: 'Call back',
        dueInDays: 2,
        status: 'Not Started',
        priority: 'High',
        assignee: 'record_owner',
      },
    ],
    calls: [{ subject: 'Intro call', owner: 'creator', startInDays: 1, startTime: '10:30' }],
  },
  bounced: { fieldUpdates: [{ field: 'lead_status', value: 'Junk Lead' }] },
};

describe('trigger actions', () => {
  it('refuses what goes over the limits or names unknown fields, with the place of each error', async () => {
    const id = await massEmail('Limits');
    const put = (body: unknown) => admin.req('PUT', `/api/mass-emails/${id}/triggers`, body);
    const four = ['lead_status', 'rating', 'industry', 'city'].map((field) => ({ field, value: 'x' }));
    let r = await put({ opened: { fieldUpdates: four } });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/At most 3 field updates when opened; 4 given/);
    const task = { subject: 'T', dueInDays: 1, assignee: 'record_owner' };
    r = await put({ clicked: { tasks: [task, task, task] } });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/At most 2 tasks/);
    const call = { subject: 'C', owner: 'creator', startInDays: 0, startTime: '09:00' };
    r = await put({ opened: { calls: [call, call, call] } });
    expect(r.body.error.message).toMatch(/At most 2 calls/);
    r = await put({ bounced: { tasks: [task] } });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/only field updates/);
    r = await put({
      opened: {
        fieldUpdates: [
          { field: 'nope', value: 1 },
          { field: 'lead_status', value: 'Bogus' },
        ],
      },
    });
    expect(r.status).toBe(400);
    expect(r.body.error.details.map((d: { path: string }) => d.path)).toEqual([
      'opened.fieldUpdates.0',
      'opened.fieldUpdates.1',
    ]);
    r = await put({
      opened: {
        tasks: [{ ...task, dueInDays: 1.5, priority: 'Urgent', assignee: randomBytes(16).toString('hex') }],
      },
    });
    expect(r.status).toBe(400);
    expect(r.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(
      ['opened.tasks.0.assignee', 'opened.tasks.0.dueInDays', 'opened.tasks.0.priority'].sort(),
    );
    r = await put({ opened: { calls: [{ ...call, startTime: '25:00' }] } });
    expect(r.body.error.details[0].path).toBe('opened.calls.0.startTime');
    // Nothing was saved by the refused requests.
    const got = await admin.req('GET', `/api/mass-emails/${id}/triggers`);
    expect(got.body).toMatchObject({ opened: null, clicked: null, bounced: null, canEdit: true });
  });

  it('may be edited by the creator only, and are invisible to other organizations', async () => {
    const id = await massEmail('Creator only');
    const other = await deps.db
      .insertInto('users')
      .values({
        org_id: org.orgId,
        profile_id: (
          await deps.db
            .selectFrom('profiles')
            .select('id')
            .where('org_id', '=', org.orgId)
            .where('is_admin', '=', true)
            .executeTakeFirstOrThrow()
        ).id,
        email: `other-${randomBytes(4).toString('hex')}@test.example`,
        name: 'Other admin',
        status: 'active',
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const { AppError } = await import('../src/errors.ts');
    const { saveTriggers } = await import('../src/sending/triggers.ts');
    await expect(
      saveTriggers(
        deps,
        {
          orgId: org.orgId,
          userId: other.id,
          isAdmin: true,
          permissions: {},
          timeZone: 'UTC',
          locale: 'en-US',
        },
        id,
        good,
      ),
    ).rejects.toThrow(AppError);
    const stranger = await createTestOrg(deps);
    const s = await login(app, stranger.adminEmail, stranger.adminPassword);
    expect((await s.req('GET', `/api/mass-emails/${id}/triggers`)).status).toBe(404);
    expect((await s.req('PUT', `/api/mass-emails/${id}/triggers`, good)).status).toBe(404);
  });

  it('need the creator to be allowed what they do: edit the module, create tasks and calls', async () => {
    const profile = await deps.db
      .insertInto('profiles')
      .values({
        org_id: org.orgId,
        name: `Mailer ${randomBytes(3).toString('hex')}`,
        permissions: JSON.stringify({
          modules: { leads: { read: true, edit: true, mass_email: true }, tasks: { read: true } },
        }),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const user = await deps.db
      .insertInto('users')
      .values({
        org_id: org.orgId,
        profile_id: profile.id,
        email: `mailer-${randomBytes(4).toString('hex')}@test.example`,
        name: 'Mailer',
        status: 'active',
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const id = await massEmail('Mailer', user.id);
    const { saveTriggers } = await import('../src/sending/triggers.ts');
    const actor = {
      orgId: org.orgId,
      userId: user.id,
      isAdmin: false,
      permissions: {
        modules: { leads: { read: true, edit: true, mass_email: true }, tasks: { read: true } },
      },
      timeZone: 'UTC',
      locale: 'en-US',
    };
    await expect(
      saveTriggers(deps, actor, id, {
        opened: { tasks: [{ subject: 'T', dueInDays: 1, assignee: 'record_owner' }] },
      }),
    ).rejects.toThrow(/create/);
    const ok = await saveTriggers(deps, actor, id, {
      opened: { fieldUpdates: [{ field: 'rating', value: 'Active' }] },
    });
    expect(ok.opened?.fieldUpdates).toEqual([{ field: 'rating', value: 'Active' }]);
  });

  it('fire once per recipient on a human open; a second open and machine opens do not', async () => {
    const id = await massEmail('Spring offer');
    const r = await admin.req('PUT', `/api/mass-emails/${id}/triggers`, good);
    expect(r.status).toBe(200);
    expect(r.body.opened.fieldUpdates).toEqual([{ field: 'lead_status', value: 'Contacted' }]);
    const ann = await recipient(id, 'Ann');
    const bob = await recipient(id, 'Bob');
    await event(id, bob, 'opened', false); // Apple's proxy fetching on delivery
    await event(id, ann, 'opened');
    await event(id, ann, 'opened');
    await event(id, ann, 'clicked');
    await drain();

    expect((await leadData(ann.recordId)).lead_status).toBe('Contacted');
    const tasks = await related('tasks', ann.recordId);
    expect(tasks).toHaveLength(1);
    expect(tasks[0].data).toMatchObject({ subject: 'Call back', status: 'Not Started', priority: 'High' });
    expect(tasks[0].owner_id).toBe(org.adminId);
    const due = new Date(Date.now() + 2 * 86400e3).toISOString().slice(0, 10);
    expect(tasks[0].data.due_date).toBe(due);
    const calls = await related('calls', ann.recordId);
    expect(calls).toHaveLength(1);
    expect(calls[0].data).toMatchObject({ subject: 'Intro call', call_type: 'Outbound' });
    expect(String(calls[0].data.call_start_time)).toMatch(/T10:30:00\.000Z$/); // the creator's zone is UTC

    // The machine open fired nothing for Bob.
    expect((await leadData(bob.recordId)).lead_status).toBe('Not Contacted');
    expect(await related('tasks', bob.recordId)).toHaveLength(0);

    const h = await admin.req('GET', `/api/modules/leads/records/${ann.recordId}/history`);
    expect(h.status).toBe(200);
    expect(h.body.history).toHaveLength(1);
    expect(h.body.history[0]).toMatchObject({ source: 'trigger', massEmailId: id });
    expect(h.body.history[0].summary).toContain('Spring offer');
    expect(h.body.history[0].summary).toContain('Lead Status');

    // A later human open by Bob fires for him, once.
    await event(id, bob, 'opened');
    await event(id, bob, 'opened');
    await drain();
    expect(await related('tasks', bob.recordId)).toHaveLength(1);
    expect((await leadData(bob.recordId)).lead_status).toBe('Contacted');
  });

  it("fire for a follow-up's own recipients with the follow-up's own actions", async () => {
    const parent = await massEmail('Parent');
    const followup = (
      await deps.db
        .insertInto('mass_emails')
        .values({
          org_id: org.orgId,
          module_id: leadsId,
          parent_id: parent,
          position: 1,
          created_by: org.adminId,
          name: 'Parent (follow-up 1)',
          template_id: templateId,
          from_choice: JSON.stringify({ kind: 'user' }),
          followup_audience: 'not_opened',
          followup_days: 3,
          status: 'sent',
        })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
    const put = await admin.req('PUT', `/api/mass-emails/${followup}/triggers`, {
      opened: { fieldUpdates: [{ field: 'rating', value: 'Active' }] },
    });
    expect(put.status).toBe(200);
    const fay = await recipient(followup, 'Fay');
    const gus = await recipient(parent, 'Gus');
    await event(followup, fay, 'opened');
    await event(parent, gus, 'opened'); // the parent has no actions
    await drain();
    expect((await leadData(fay.recordId)).rating).toBe('Active');
    expect((await leadData(gus.recordId)).rating).toBeUndefined();
    const h = await admin.req('GET', `/api/modules/leads/records/${fay.recordId}/history`);
    expect(h.body.history[0].summary).toContain('Parent (follow-up 1)');
  });

  it('one firing that fails does not hold up the others, and the record history says so', async () => {
    const id = await massEmail('Fragile');
    const put = await admin.req('PUT', `/api/mass-emails/${id}/triggers`, {
      opened: { tasks: [{ subject: 'explode', dueInDays: 0, assignee: 'record_owner' }] },
    });
    expect(put.status).toBe(200);
    const other = await massEmail('Sturdy');
    await admin.req('PUT', `/api/mass-emails/${other}/triggers`, {
      opened: { tasks: [{ subject: 'Fine', dueInDays: 0, assignee: 'record_owner' }] },
    });
    const hal = await recipient(id, 'Hal');
    const ivy = await recipient(other, 'Ivy');
    // The database refuses this one task (as it might refuse a record for any reason).
    const name = `no_explode_${randomBytes(3).toString('hex')}`;
    await sql`ALTER TABLE records ADD CONSTRAINT ${sql.id(name)} CHECK (data ->> 'subject' IS DISTINCT FROM 'explode') NOT VALID`.execute(
      deps.db,
    );
    try {
      await event(id, hal, 'opened');
      await event(other, ivy, 'opened');
      await drain();
    } finally {
      await sql`ALTER TABLE records DROP CONSTRAINT ${sql.id(name)}`.execute(deps.db);
    }
    expect(await related('tasks', hal.recordId)).toHaveLength(0);
    expect(await related('tasks', ivy.recordId)).toHaveLength(1);
    const h = await admin.req('GET', `/api/modules/leads/records/${hal.recordId}/history`);
    expect(h.body.history[0].summary).toContain('could not run');
    // Marked as fired: a later open does not try again.
    await event(id, hal, 'opened');
    await drain();
    expect(
      (await admin.req('GET', `/api/modules/leads/records/${hal.recordId}/history`)).body.history,
    ).toHaveLength(1);
  });

  it('fire field updates only on a bounce', async () => {
    const id = await massEmail('Bouncy');
    expect((await admin.req('PUT', `/api/mass-emails/${id}/triggers`, good)).status).toBe(200);
    const cy = await recipient(id, 'Cy');
    await event(id, cy, 'bounced');
    await drain();
    expect((await leadData(cy.recordId)).lead_status).toBe('Junk Lead');
    expect(await related('tasks', cy.recordId)).toHaveLength(0);
    expect(await related('calls', cy.recordId)).toHaveLength(0);
  });

  it('fire on clicks only when set for clicks, and not twice when the feed is read again', async () => {
    const id = await massEmail('Clicks');
    const put = await admin.req('PUT', `/api/mass-emails/${id}/triggers`, {
      clicked: { tasks: [{ subject: 'Clicked!', dueInDays: 0, assignee: org.adminId }] },
    });
    expect(put.status).toBe(200);
    const di = await recipient(id, 'Di');
    const ed = await recipient(id, 'Ed');
    await event(id, di, 'opened');
    await event(id, ed, 'clicked');
    await event(id, ed, 'clicked', false);
    await drain();
    expect(await related('tasks', di.recordId)).toHaveLength(0);
    expect(await related('tasks', ed.recordId)).toHaveLength(1);
    // Replaying the whole feed (a cursor reset, a second worker) fires nothing again.
    await sql`UPDATE feed_cursors SET txid = '0', event_id = 0 WHERE name = 'triggers'`.execute(deps.db);
    const racers = Array.from({ length: 3 }, () => testDeps());
    try {
      for (let i = 0; i < 50; i++) {
        const n = await Promise.all(racers.map((d) => fireTriggers(d)));
        if (n.every((x) => x <= 0)) break;
      }
    } finally {
      await Promise.all(racers.map((d) => d.close()));
    }
    expect(await related('tasks', ed.recordId)).toHaveLength(1);
    const history = await deps.db
      .selectFrom('record_history')
      .select('id')
      .where('record_id', '=', ed.recordId)
      .execute();
    expect(history).toHaveLength(1);
  });
});
