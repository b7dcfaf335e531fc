import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../src/crm/index.ts';
import type { Clock } from '../src/deps.ts';
import {
  createMassEmail,
  deleteMassEmail,
  getMassEmail,
  listMassEmails,
  startMassEmail,
  stopMassEmail,
  updateMassEmail,
} from '../src/sending/mass.service.ts';
import { launchDue } from '../src/sending/mass-launch.ts';
import { adminActor, createTestOrg, insertTemplate, testDeps } from './support/app.ts';

// A clock the tests move by hand: schedules, the 15-minute rule and GMT days depend on it.
let now = new Date('2026-06-10T08:00:00Z');
const clock: Clock = { now: () => new Date(now) };
const deps = testDeps(clock);
afterAll(() => deps.close());

interface Org {
  admin: Actor;
  other: Actor;
  templateId: string;
}

async function newOrg(edition: 'standard' | 'enterprise' | 'free', contacts: number): Promise<Org> {
  const o = await createTestOrg(deps, { edition: edition as 'enterprise' });
  if (edition !== 'enterprise')
    await deps.db.updateTable('orgs').set({ edition }).where('id', '=', o.orgId).execute();
  const admin: Actor = adminActor(o);
  const other = await deps.db
    .insertInto('users')
    .values({
      org_id: o.orgId,
      profile_id: (
        await deps.db
          .selectFrom('profiles')
          .select('id')
          .where('org_id', '=', o.orgId)
          .where('is_admin', '=', true)
          .executeTakeFirstOrThrow()
      ).id,
      email: `other-${randomBytes(4).toString('hex')}@test.example`,
      name: 'Other Admin',
      status: 'active',
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const mod = await deps.db
    .selectFrom('modules')
    .select('id')
    .where('org_id', '=', o.orgId)
    .where('api_name', '=', 'contacts')
    .executeTakeFirstOrThrow();
  const t = {
    id: await insertTemplate(deps, o.orgId, 'contacts', {
      name: 'Hello',
      subject: 'Hi {{ contact.first_name }}',
      html: '<p>Hi</p>',
      text: 'Hi',
      createdBy: o.adminId,
    }),
  };
  await sql`
    INSERT INTO records (org_id, module_id, owner_id, data)
    SELECT ${o.orgId}, ${mod.id}, ${o.adminId}, jsonb_build_object('last_name', 'C' || g, 'email', 'c' || g || '@x.example', 'email_opt_out', g % 10 = 0)
    FROM generate_series(1, ${contacts}) g`.execute(deps.db);
  return { admin, other: { ...admin, userId: other.id }, templateId: t.id };
}

const everyone = {
  kind: 'criteria' as const,
  criteria: { conditions: [{ field: 'last_name', op: 'is_not_empty' }] },
};
const base = (o: Org) => ({
  module: 'contacts',
  name: 'News',
  templateId: o.templateId,
  from: { kind: 'user' as const },
  audience: everyone,
});

const rows = async (massId: string) =>
  (
    await sql<{ status: string; parked: boolean; day: string }>`
      SELECT status, next_attempt_at = 'infinity' AS parked, to_char(next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day
      FROM messages WHERE mass_email_id = ${massId}`.execute(deps.db)
  ).rows;

describe('mass email lifecycle', () => {
  let ent: Org;
  beforeAll(async () => {
    ent = await newOrg('enterprise', 50);
  });

  it('sends now: one queued message per recipient, exclusions with reasons, usage counted', async () => {
    const id = await createMassEmail(deps, ent.admin, base(ent));
    expect(await launchDue(deps, { orgId: ent.admin.orgId })).toBeGreaterThanOrEqual(1);
    const m = await getMassEmail(deps, ent.admin, id);
    expect(m.status).toBe('sending');
    expect(m.recipients).toBe(45);
    expect(m.excluded).toBe(5);
    const r = await rows(id);
    expect(r).toHaveLength(45);
    expect(r.every((x) => x.status === 'queued' && !x.parked)).toBe(true);
    const ex = await deps.db
      .selectFrom('mass_email_exclusions')
      .select('reason')
      .where('mass_email_id', '=', id)
      .execute();
    expect(ex.map((e) => e.reason)).toEqual(Array(5).fill('opted_out'));
    // Launching again does nothing: each mass email is launched once.
    await launchDue(deps, { orgId: ent.admin.orgId });
    expect(await rows(id)).toHaveLength(45);
    const usage = await deps.db
      .selectFrom('daily_usage')
      .select('used')
      .where('org_id', '=', ent.admin.orgId)
      .where('kind', '=', 'mass')
      .executeTakeFirstOrThrow();
    expect(usage.used).toBe(45);
  });

  it('allows 5 per module per time slot and refuses the sixth', async () => {
    const at = '2026-06-11T10:00:00Z';
    for (let i = 0; i < 5; i++) await createMassEmail(deps, ent.admin, { ...base(ent), sendAt: at });
    await expect(createMassEmail(deps, ent.admin, { ...base(ent), sendAt: at })).rejects.toThrow(
      /5 mass emails/,
    );
    await createMassEmail(deps, ent.admin, { ...base(ent), sendAt: '2026-06-11T10:01:00Z' });
    const scheduled = await listMassEmails(deps, ent.admin, 'scheduled');
    expect(scheduled.length).toBeGreaterThanOrEqual(6);
  });

  it('moves a late edit to Stopped; only the creator edits, stops or starts; others may delete', async () => {
    const id = await createMassEmail(deps, ent.admin, { ...base(ent), sendAt: '2026-06-10T09:00:00Z' });
    const early = await updateMassEmail(deps, ent.admin, id, { name: 'Renamed' });
    expect(early.status).toBe('scheduled');
    await expect(updateMassEmail(deps, ent.other, id, { name: 'Mine now' })).rejects.toThrow(
      /Only the person/,
    );
    await expect(stopMassEmail(deps, ent.other, id)).rejects.toThrow(/Only the person/);
    now = new Date('2026-06-10T08:50:00Z');
    const late = await updateMassEmail(deps, ent.admin, id, { name: 'Too late' });
    expect(late).toMatchObject({ status: 'stopped', stoppedBecauseEditedLate: true });
    now = new Date('2026-06-10T09:05:00Z');
    await launchDue(deps, { orgId: ent.admin.orgId });
    expect((await getMassEmail(deps, ent.admin, id)).started_at).toBeNull(); // a stopped one never fires
    await startMassEmail(deps, ent.admin, id); // its time has passed: it sends now
    await launchDue(deps, { orgId: ent.admin.orgId });
    expect((await rows(id)).length).toBe(45);
    await deleteMassEmail(deps, ent.other, id);
    await expect(getMassEmail(deps, ent.admin, id)).rejects.toThrow(/not found/);
    now = new Date('2026-06-10T08:00:00Z');
  });

  it('stops a send in progress (the rest waits) and resumes it', async () => {
    now = new Date('2026-06-10T12:00:00Z');
    const id = await createMassEmail(deps, ent.admin, base(ent));
    await launchDue(deps, { orgId: ent.admin.orgId });
    await sql`UPDATE messages SET status = 'sent' WHERE id IN (SELECT id FROM messages WHERE mass_email_id = ${id} ORDER BY id LIMIT 10)`.execute(
      deps.db,
    );
    await stopMassEmail(deps, ent.admin, id);
    let r = await rows(id);
    expect(r.filter((x) => x.status === 'sent')).toHaveLength(10);
    expect(r.filter((x) => x.parked)).toHaveLength(35);
    await startMassEmail(deps, ent.admin, id);
    r = await rows(id);
    expect(r.filter((x) => x.parked)).toHaveLength(0);
    expect(r.filter((x) => x.status === 'queued')).toHaveLength(35);
    now = new Date('2026-06-10T08:00:00Z');
  });
});

describe('mass email limits', () => {
  it('refuses a send larger than the day allows, or lets the remainder wait for the next GMT day', async () => {
    now = new Date('2026-07-01T22:00:00Z');
    const std = await newOrg('standard', 330); // 297 can receive; Standard allows 250 a day
    await expect(createMassEmail(deps, std.admin, base(std))).rejects.toThrow(/297 recipients but only 250/);
    const id = await createMassEmail(deps, std.admin, { ...base(std), allowWait: true });
    await launchDue(deps, { orgId: std.admin.orgId });
    const r = await rows(id);
    expect(r.filter((x) => x.day === '2026-07-01')).toHaveLength(250);
    expect(r.filter((x) => x.day === '2026-07-02')).toHaveLength(47);
  });

  it('never passes the limit when several workers launch at once', async () => {
    now = new Date('2026-08-01T10:00:00Z');
    const std = await newOrg('standard', 110); // 99 recipients each
    for (let i = 0; i < 4; i++) await createMassEmail(deps, std.admin, { ...base(std), allowWait: true });
    await Promise.all([
      launchDue(deps, { orgId: std.admin.orgId }),
      launchDue(deps, { orgId: std.admin.orgId }),
      launchDue(deps, { orgId: std.admin.orgId }),
    ]);
    const today = (
      await sql<{
        n: number;
      }>`SELECT count(*)::int AS n FROM messages m JOIN mass_emails me ON me.id = m.mass_email_id
        WHERE me.org_id = ${std.admin.orgId} AND m.next_attempt_at < '2026-08-02'`.execute(deps.db)
    ).rows[0].n;
    expect(today).toBe(250);
    const total = (
      await sql<{
        n: number;
      }>`SELECT count(*)::int AS n FROM messages m JOIN mass_emails me ON me.id = m.mass_email_id
        WHERE me.org_id = ${std.admin.orgId}`.execute(deps.db)
    ).rows[0].n;
    expect(total).toBe(396);
  });

  it('has no mass email in Free, and follow-ups only where the edition allows', async () => {
    const free = await newOrg('free', 3);
    await expect(createMassEmail(deps, free.admin, base(free))).rejects.toThrow(
      /not available in your edition/,
    );
    const std = await newOrg('standard', 3);
    await expect(
      createMassEmail(deps, std.admin, {
        ...base(std),
        followups: [{ templateId: std.templateId, audience: 'not_opened', days: 2 }],
      }),
    ).rejects.toThrow(/does not include follow-up/);
  });
});

describe('follow-ups', () => {
  it('go N days after the previous send, to the chosen part of its recipients, minus ignored records', async () => {
    now = new Date('2026-09-01T10:00:00Z');
    const ent = await newOrg('enterprise', 20); // 18 recipients
    const id = await createMassEmail(deps, ent.admin, {
      ...base(ent),
      followups: [
        {
          templateId: ent.templateId,
          audience: 'not_opened',
          days: 3,
          ignoreCriteria: { conditions: [{ field: 'last_name', op: 'is', value: 'C2' }] },
        },
      ],
    });
    await launchDue(deps, { orgId: ent.admin.orgId });
    // Everything was delivered, tracked (so "not opened" can be known); three people opened it.
    await sql`UPDATE messages SET status = 'sent', tracked = true WHERE mass_email_id = ${id}`.execute(
      deps.db,
    );
    await sql`UPDATE messages SET opened_at = now() WHERE id IN (SELECT id FROM messages WHERE mass_email_id = ${id} ORDER BY id LIMIT 3)`.execute(
      deps.db,
    );
    now = new Date('2026-09-03T10:00:00Z');
    await launchDue(deps, { orgId: ent.admin.orgId });
    const f = (await getMassEmail(deps, ent.admin, id)).followups[0];
    expect(f.started_at).toBeNull();
    expect(new Date(f.send_at as Date).toISOString()).toBe('2026-09-04T10:00:00.000Z');
    now = new Date('2026-09-04T10:01:00Z');
    await launchDue(deps, { orgId: ent.admin.orgId });
    const fr = await rows(f.id);
    const opened = (
      await sql<{
        record_id: string;
      }>`SELECT record_id FROM messages WHERE mass_email_id = ${id} AND opened_at IS NOT NULL`.execute(
        deps.db,
      )
    ).rows.map((r) => r.record_id);
    const got = (
      await sql<{ record_id: string; last: string }>`
      SELECT m.record_id, r.data ->> 'last_name' AS last FROM messages m JOIN records r ON r.id = m.record_id
      WHERE m.mass_email_id = ${f.id}`.execute(deps.db)
    ).rows;
    expect(got.some((g) => opened.includes(g.record_id))).toBe(false);
    expect(got.some((g) => g.last === 'C2')).toBe(false);
    const c2 = (
      await sql<{
        id: string;
      }>`SELECT id FROM records WHERE org_id = ${ent.admin.orgId} AND data ->> 'last_name' = 'C2'`.execute(
        deps.db,
      )
    ).rows[0].id;
    expect(fr.length).toBe(18 - 3 - (opened.includes(c2) ? 0 : 1));
  });
});

describe('bounce-rate guard', () => {
  it('pauses a send whose first 500+ outcomes bounce hard more than 5 %, and tells its creator', async () => {
    now = new Date('2026-10-01T10:00:00Z');
    const ent = await newOrg('enterprise', 700); // 630 recipients
    const id = await createMassEmail(deps, ent.admin, base(ent));
    await launchDue(deps, { orgId: ent.admin.orgId });
    const ids = (
      await sql<{ id: string }>`SELECT id FROM messages WHERE mass_email_id = ${id} ORDER BY id`.execute(
        deps.db,
      )
    ).rows.map((r) => r.id);
    await sql`UPDATE messages SET status = 'sent' WHERE id = ANY(${ids.slice(0, 480)}::uuid[])`.execute(
      deps.db,
    );
    await sql`UPDATE messages SET status = 'failed', smtp_code = 550 WHERE id = ANY(${ids.slice(480, 500)}::uuid[])`.execute(
      deps.db,
    );
    await launchDue(deps, { orgId: ent.admin.orgId }); // 20 of 500 = 4 %: goes on
    expect((await getMassEmail(deps, ent.admin, id)).status).toBe('sending');
    await sql`UPDATE messages SET status = 'failed', smtp_code = 550 WHERE id = ANY(${ids.slice(500, 520)}::uuid[])`.execute(
      deps.db,
    );
    await launchDue(deps, { orgId: ent.admin.orgId }); // 40 of 520 = 7.7 %: paused
    const m = await getMassEmail(deps, ent.admin, id);
    expect(m).toMatchObject({ status: 'stopped', stop_reason: 'bounce_rate_too_high' });
    const r = await rows(id);
    expect(r.filter((x) => x.parked)).toHaveLength(110);
    const note = await deps.db
      .selectFrom('messages')
      .select(['subject', 'text', 'kind'])
      .where('org_id', '=', ent.admin.orgId)
      .where('kind', '=', 'system')
      .executeTakeFirstOrThrow();
    expect(note.subject).toMatch(/paused/);
    expect(note.text).toMatch(/40 of its first 520/);
  });
});
