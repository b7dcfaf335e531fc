import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Actor, createRecord, updateRecord } from '../src/crm/index.ts';
import type { Clock } from '../src/deps.ts';
import {
  createAutoresponder,
  createWorkflowRule,
  runAutomations,
  setAutomationActive,
} from '../src/sending/automation.service.ts';
import { adminActor, createTestOrg, insertTemplate, testDeps } from './support/app.ts';

let now = new Date('2026-05-01T09:00:00Z');
const clock: Clock = { now: () => new Date(now) };
const deps = testDeps(clock);
let admin: Actor;
let leadTemplate: string;
afterAll(() => deps.close());

beforeAll(async () => {
  const o = await createTestOrg(deps);
  admin = adminActor(o);
  leadTemplate = await insertTemplate(deps, o.orgId, 'leads', {
    name: 'Welcome',
    subject: 'Welcome',
    html: 'W',
    text: 'W',
    createdBy: o.adminId,
  });
});

const sentTo = async (column: 'autoresponder_id' | 'workflow_rule_id', id: string) =>
  (
    await sql<{
      to_address: string;
    }>`SELECT to_address FROM messages WHERE ${sql.ref(column)} = ${id} ORDER BY to_address`.execute(deps.db)
  ).rows.map((r) => r.to_address);

// Records get created_at from the database clock; the test clock is moved relative to it.
const backdate = (id: string, at: Date) =>
  sql`UPDATE records SET created_at = ${at}, updated_at = ${at} WHERE id = ${id}`.execute(deps.db);

describe('autoresponders', () => {
  it('send N days after creation, once per record, only to matching records created after switch-on', async () => {
    const a = await createAutoresponder(deps, admin, {
      module: 'leads',
      name: 'Day 2',
      templateId: leadTemplate,
      criteria: { conditions: [{ field: 'lead_source', op: 'is', value: 'Web Download' }] },
      days: 2,
      from: { kind: 'user' },
    });
    await sql`UPDATE autoresponders SET active_since = ${now} WHERE id = ${a.id}`.execute(deps.db);
    const old = await createRecord(deps, admin, 'leads', {
      data: { last_name: 'Old', email: 'old@x.example', lead_source: 'Web Download' },
    });
    await backdate(old.id, new Date('2026-04-01T09:00:00Z'));
    const web = await createRecord(deps, admin, 'leads', {
      data: { last_name: 'Web', email: 'web@x.example', lead_source: 'Web Download' },
    });
    await backdate(web.id, new Date('2026-05-01T10:00:00Z'));
    const fair = await createRecord(deps, admin, 'leads', {
      data: { last_name: 'Fair', email: 'fair@x.example', lead_source: 'Trade Show' },
    });
    await backdate(fair.id, new Date('2026-05-01T10:00:00Z'));
    now = new Date('2026-05-03T09:59:00Z');
    await runAutomations(deps, { orgId: admin.orgId });
    expect(await sentTo('autoresponder_id', a.id)).toEqual([]);
    now = new Date('2026-05-03T10:01:00Z');
    await runAutomations(deps, { orgId: admin.orgId });
    await runAutomations(deps, { orgId: admin.orgId });
    expect(await sentTo('autoresponder_id', a.id)).toEqual(['web@x.example']);
    const usage = await deps.db
      .selectFrom('daily_usage')
      .select('used')
      .where('org_id', '=', admin.orgId)
      .where('kind', '=', 'mass')
      .executeTakeFirstOrThrow();
    expect(usage.used).toBe(1);
  });
});

describe('workflow email rules', () => {
  it('send on create and on edit of matching records, to the record and to chosen users', async () => {
    const T0 = new Date('2026-05-10T00:00:00Z').getTime();
    const at = (min: number) => new Date(T0 + min * 60_000);
    const touch = (id: string, min: number) =>
      sql`UPDATE records SET updated_at = ${at(min)} WHERE id = ${id}`.execute(deps.db);
    const w = await createWorkflowRule(deps, admin, {
      module: 'leads',
      name: 'Active lead',
      onCreate: true,
      onEdit: true,
      criteria: { conditions: [{ field: 'rating', op: 'is', value: 'Active' }] },
      templateId: leadTemplate,
      toRecord: true,
      toUserIds: [admin.userId],
      from: { kind: 'user' },
    });
    await sql`UPDATE workflow_rules SET checked_until = ${at(0)} WHERE id = ${w.id}`.execute(deps.db);
    const hot = await createRecord(deps, admin, 'leads', {
      data: { last_name: 'Hot', email: 'hot@x.example', rating: 'Active' },
    });
    const cold = await createRecord(deps, admin, 'leads', {
      data: { last_name: 'Cold', email: 'cold@x.example', rating: 'Shut Down' },
    });
    await backdate(hot.id, at(1));
    await backdate(cold.id, at(1));
    now = at(2);
    await runAutomations(deps, { orgId: admin.orgId });
    const adminEmail = (
      await deps.db
        .selectFrom('users')
        .select('email')
        .where('id', '=', admin.userId)
        .executeTakeFirstOrThrow()
    ).email.toLowerCase();
    expect(await sentTo('workflow_rule_id', w.id)).toEqual([adminEmail, 'hot@x.example'].sort());
    await updateRecord(deps, admin, 'leads', cold.id, { data: { rating: 'Active' } });
    await touch(cold.id, 3);
    now = at(4);
    await runAutomations(deps, { orgId: admin.orgId });
    await runAutomations(deps, { orgId: admin.orgId });
    expect((await sentTo('workflow_rule_id', w.id)).filter((x) => x === 'cold@x.example')).toHaveLength(1);
    expect(await sentTo('workflow_rule_id', w.id)).toHaveLength(4);
    await setAutomationActive(deps, admin, 'workflow', w.id, false);
    await updateRecord(deps, admin, 'leads', hot.id, { data: { last_name: 'Hotter' } });
    await touch(hot.id, 5);
    now = at(6);
    await runAutomations(deps, { orgId: admin.orgId });
    expect(await sentTo('workflow_rule_id', w.id)).toHaveLength(4);
  });
});
