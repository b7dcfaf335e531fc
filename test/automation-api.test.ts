// The automations API as the Automations page uses it: list with names, detail, create, edit,
// switch on and off, delete, admins only, one org's rules only, and clear 400s for bad input.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptInvite, inviteUser } from '../src/crm/index.ts';
import {
  adminActor,
  type Client,
  createTestOrg,
  insertTemplate,
  login,
  startTestApp,
  type TestOrg,
} from './support/app.ts';

let app: Awaited<ReturnType<typeof startTestApp>>;
let org: TestOrg;
let admin: Client;
let leadTpl: string;
let contactTpl: string;

beforeAll(async () => {
  app = await startTestApp();
  org = await createTestOrg(app.deps);
  admin = await login(app.app, org.adminEmail, org.adminPassword);
  leadTpl = await insertTemplate(app.deps, org.orgId, 'leads', {
    name: 'Lead welcome',
    subject: 'Hi',
    html: 'Hi',
    text: 'Hi',
  });
  contactTpl = await insertTemplate(app.deps, org.orgId, 'contacts', {
    name: 'Contact hello',
    subject: 'Hi',
    html: 'Hi',
    text: 'Hi',
  });
});
afterAll(() => app?.stop());

const criteria = { conditions: [{ field: 'lead_source', op: 'is', value: 'Web Download' }] };
const autoresponder = (over: object = {}) => ({
  module: 'leads',
  name: 'Two days on',
  templateId: leadTpl,
  criteria,
  days: 2,
  from: { kind: 'user' },
  ...over,
});
const workflow = (over: object = {}) => ({
  module: 'leads',
  name: 'Hot lead',
  onCreate: true,
  onEdit: false,
  templateId: leadTpl,
  toRecord: true,
  from: { kind: 'owner' },
  ...over,
});

describe('automations API', () => {
  it('creates, lists with names, shows, edits, switches and deletes an autoresponder', async () => {
    const c = await admin.req('POST', '/api/automations/autoresponders', autoresponder());
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({
      name: 'Two days on',
      module: 'leads',
      moduleLabel: 'Leads',
      templateId: leadTpl,
      templateName: 'Lead welcome',
      templateDeleted: false,
      anchorField: 'created_at',
      days: 2,
      criteria,
      from: { kind: 'user' },
      active: true,
      createdBy: org.adminId,
    });
    const id = c.body.id as string;
    const list = await admin.req('GET', '/api/automations');
    expect(list.status).toBe(200);
    expect(list.body.autoresponders.map((a: { id: string }) => a.id)).toContain(id);
    expect((await admin.req('GET', `/api/automations/autoresponder/${id}`)).body).toEqual(c.body);

    const sinceOf = async () =>
      (
        await app.deps.db
          .selectFrom('autoresponders')
          .select('active_since')
          .where('id', '=', id)
          .executeTakeFirstOrThrow()
      ).active_since.getTime();
    const since0 = await sinceOf();
    // A rename keeps the schedule; a new timing starts from the moment of the edit.
    const renamed = await admin.req(
      'PUT',
      `/api/automations/autoresponders/${id}`,
      autoresponder({ name: 'Renamed' }),
    );
    expect(renamed.status).toBe(200);
    expect(renamed.body.name).toBe('Renamed');
    expect(await sinceOf()).toBe(since0);
    const retimed = await admin.req(
      'PUT',
      `/api/automations/autoresponders/${id}`,
      autoresponder({ name: 'Renamed', days: 5 }),
    );
    expect(retimed.body.days).toBe(5);
    expect(await sinceOf()).toBeGreaterThan(since0);

    expect(
      (await admin.req('POST', `/api/automations/autoresponder/${id}/active`, { active: false })).status,
    ).toBe(204);
    expect((await admin.req('GET', `/api/automations/autoresponder/${id}`)).body.active).toBe(false);
    expect((await admin.req('DELETE', `/api/automations/autoresponder/${id}`)).status).toBe(204);
    expect((await admin.req('GET', `/api/automations/autoresponder/${id}`)).status).toBe(404);
    expect((await admin.req('DELETE', `/api/automations/autoresponder/${id}`)).status).toBe(404);
  });

  it('edits a workflow rule, restarting its stream only when it changes module', async () => {
    const c = await admin.req(
      'POST',
      '/api/automations/workflow-rules',
      workflow({ toUserIds: [org.adminId] }),
    );
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({ onCreate: true, onEdit: false, toRecord: true, toUserIds: [org.adminId] });
    const id = c.body.id as string;
    await sql`UPDATE workflow_rules SET checked_until = now() - interval '1 hour' WHERE id = ${id}`.execute(
      app.deps.db,
    );
    const checked = async () =>
      (
        await app.deps.db
          .selectFrom('workflow_rules')
          .select('checked_until')
          .where('id', '=', id)
          .executeTakeFirstOrThrow()
      ).checked_until.getTime();
    const before = await checked();
    const e = await admin.req('PUT', `/api/automations/workflow-rules/${id}`, workflow({ onEdit: true }));
    expect(e.status).toBe(200);
    expect(e.body).toMatchObject({ onEdit: true, toUserIds: [] });
    expect(await checked()).toBe(before);
    const moved = await admin.req(
      'PUT',
      `/api/automations/workflow-rules/${id}`,
      workflow({ module: 'contacts', templateId: contactTpl }),
    );
    expect(moved.body).toMatchObject({ module: 'contacts', templateName: 'Contact hello' });
    expect(await checked()).toBeGreaterThan(before);
  });

  it('answers bad input with a 400 naming the field, and never writes it', async () => {
    const bad = async (path: string, body: object, field: string) => {
      const r = await admin.req('POST', path, body);
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      expect(r.body.error.message).toBeTruthy();
      expect(r.body.error.details.map((d: { path?: string }) => d.path)).toContain(field);
    };
    await bad('/api/automations/autoresponders', autoresponder({ templateId: contactTpl }), 'templateId');
    await bad('/api/automations/autoresponders', autoresponder({ name: '  ' }), 'name');
    await bad('/api/automations/autoresponders', autoresponder({ days: 4000 }), 'days');
    await bad('/api/automations/autoresponders', autoresponder({ anchorField: 'last_name' }), 'anchorField');
    await bad('/api/automations/workflow-rules', workflow({ onCreate: false }), 'onCreate');
    await bad('/api/automations/workflow-rules', workflow({ toRecord: false }), 'toRecord');
    const unknownCriteria = await admin.req(
      'POST',
      '/api/automations/workflow-rules',
      workflow({ criteria: { conditions: [{ field: 'no_such_field', op: 'is', value: 'x' }] } }),
    );
    expect(unknownCriteria.status).toBe(400);
    const other = await createTestOrg(app.deps);
    await bad('/api/automations/workflow-rules', workflow({ toUserIds: [other.adminId] }), 'toUserIds');
    const list = await admin.req('GET', '/api/automations');
    expect(list.body.workflowRules.every((w: { name: string }) => w.name === 'Hot lead')).toBe(true);
  });

  it('is for admins of the same org only', async () => {
    const mine = await admin.req('POST', '/api/automations/workflow-rules', workflow({ name: 'Mine' }));
    const other = await createTestOrg(app.deps);
    const stranger = await login(app.app, other.adminEmail, other.adminPassword);
    const id = mine.body.id as string;
    expect((await stranger.req('GET', `/api/automations/workflow/${id}`)).status).toBe(404);
    expect((await stranger.req('PUT', `/api/automations/workflow-rules/${id}`, workflow())).status).toBe(400);
    expect(
      (await stranger.req('POST', `/api/automations/workflow/${id}/active`, { active: false })).status,
    ).toBe(404);
    expect((await stranger.req('DELETE', `/api/automations/workflow/${id}`)).status).toBe(404);
    expect((await stranger.req('GET', '/api/automations')).body.workflowRules).toEqual([]);

    const actor = adminActor(org);
    const email = `std-${Date.now()}@test.example`;
    const { inviteToken } = await inviteUser(app.deps, actor, {
      email,
      name: 'Sam Standard',
      profileId: org.standardProfileId,
    });
    await acceptInvite(app.deps, { token: inviteToken, password: 'user-password-123' });
    const user = await login(app.app, email, 'user-password-123');
    expect((await user.req('GET', '/api/automations')).status).toBe(403);
    expect((await user.req('GET', `/api/automations/workflow/${id}`)).status).toBe(403);
    expect((await user.req('PUT', `/api/automations/workflow-rules/${id}`, workflow())).status).toBe(403);
    expect((await admin.req('GET', `/api/automations/workflow/${id}`)).body.name).toBe('Mine');
  });
});
