// Fixtures of the reports tests: an org with users, templates and records; messages written
// straight to the table; draining the rollup worker; the rollups compared with plain SQL over the
// raw tables.
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { expect } from 'vitest';
import type { Deps } from '../src/deps.ts';
import { eventsPass, sentPass } from '../src/reports/rollups.ts';
import { createTestOrg, insertTemplate, type TestOrg } from './support/app.ts';

/** A small deterministic PRNG (mulberry32), so a failing stream can be replayed by its seed. */
export function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Fixture {
  org: TestOrg;
  orgId: string;
  users: string[];
  modules: string[];
  templates: { id: string; moduleId: string; versions: number }[];
  records: { id: string; moduleId: string }[];
}

/** An org with two more users, three templates (one with two versions) and records in two modules. */
export async function reportFixture(deps: Deps): Promise<Fixture> {
  const org = await createTestOrg(deps);
  const users = [org.adminId];
  for (const n of ['Bea', 'Cal']) {
    const u = await sql<{ id: string }>`
      INSERT INTO users (org_id, profile_id, email, name, status)
      VALUES (${org.orgId}, ${org.standardProfileId}, ${`${n}-${randomUUID()}@t.example`}, ${n}, 'active')
      RETURNING id`.execute(deps.db);
    users.push(u.rows[0].id);
  }
  const mods = await sql<{ id: string; api_name: string }>`
    SELECT id, api_name FROM modules WHERE org_id = ${org.orgId} AND api_name IN ('leads', 'contacts')
    ORDER BY api_name DESC`.execute(deps.db);
  const templates: Fixture['templates'] = [];
  for (const [i, m] of [mods.rows[0], mods.rows[0], mods.rows[1]].entries()) {
    const id = await insertTemplate(deps, org.orgId, m.api_name, {
      name: `Template ${i}`,
      subject: 's',
      html: 'h',
      text: 'h',
    });
    templates.push({ id, moduleId: m.id, versions: 1 });
  }
  await sql`INSERT INTO template_versions (org_id, template_id, version, subject, html_source, html, text, comment)
    VALUES (${org.orgId}, ${templates[0].id}, 2, 's2', 'h2', 'h2', 'h2', 'shorter subject')`.execute(deps.db);
  await sql`UPDATE templates SET current_version = 2 WHERE id = ${templates[0].id}`.execute(deps.db);
  templates[0].versions = 2;
  const records: Fixture['records'] = [];
  for (let i = 0; i < 8; i++) {
    const m = mods.rows[i % 2];
    const r = await sql<{ id: string }>`
      INSERT INTO records (org_id, module_id, owner_id, data) VALUES (${org.orgId}, ${m.id}, ${users[i % 3]}, '{}')
      RETURNING id`.execute(deps.db);
    records.push({ id: r.rows[0].id, moduleId: m.id });
  }
  return { org, orgId: org.orgId, users, modules: mods.rows.map((m) => m.id), templates, records };
}

export interface NewMessage {
  kind?: 'individual' | 'mass' | 'test';
  senderId: string;
  moduleId: string | null;
  recordId: string | null;
  templateId: string | null;
  version: number | null;
  tracked: boolean;
  sentAt: Date | null;
  createdAt?: Date;
}

export async function insertMessage(deps: Deps, orgId: string, m: NewMessage): Promise<string> {
  const r = await sql<{ id: string }>`
    INSERT INTO messages (org_id, kind, module_id, record_id, template_id, template_version, sender_id,
      from_address, to_address, subject, message_id_header, transport, status, expires_at, tracked, sent_at, created_at)
    VALUES (${orgId}, ${m.kind ?? 'individual'}, ${m.moduleId}, ${m.recordId}, ${m.templateId}, ${m.version},
      ${m.senderId}, 'me@t.example', 'you@t.example', 's', ${`<${randomUUID()}@t.example>`}, 'relay',
      ${m.sentAt ? 'sent' : 'queued'}, now() + interval '1 day', ${m.tracked}, ${m.sentAt},
      ${m.createdAt ?? m.sentAt ?? new Date()})
    RETURNING id`.execute(deps.db);
  return r.rows[0].id;
}

/** Runs passes of both kinds until nothing is left. */
export async function drain(deps: Deps) {
  for (;;) {
    const e = await eventsPass(deps);
    const s = await sentPass(deps, { lagMs: 0 });
    // -1: another worker holds a cursor (its batch is not ours to skip): try again.
    if (e === 0 && s === 0) return;
  }
}

const COUNTERS = [
  'sent',
  'bounced',
  'tracked',
  'bounced_tracked',
  'opened',
  'opened_machine',
  'clicked',
  'clicked_machine',
  'received',
  'replied',
] as const;

/** The counters straight from the raw tables, per 15 minutes, sender, module, template and version. */
export async function raw(deps: Deps, orgId: string) {
  const r = await sql<Record<string, string | number | null>>`
    WITH ev AS (
      SELECT message_id,
        bool_or(kind = 'bounced') AS b, bool_or(kind = 'opened' AND human) AS o,
        bool_or(kind = 'opened' AND NOT human) AS om, bool_or(kind = 'clicked' AND human) AS c,
        bool_or(kind = 'clicked' AND NOT human) AS cm, bool_or(kind = 'replied') AS r
      FROM email_events WHERE org_id = ${orgId} AND message_id IS NOT NULL GROUP BY message_id
    ), facts AS (
      SELECT coalesce(m.sent_at, m.created_at) AS at, m.sender_id AS u, m.module_id AS mo, m.template_id AS t,
        m.template_version AS v, (m.sent_at IS NOT NULL)::int AS sent, coalesce(ev.b, false)::int AS bounced,
        (m.sent_at IS NOT NULL AND m.tracked)::int AS tracked, (coalesce(ev.b, false) AND m.tracked)::int AS bounced_tracked,
        coalesce(ev.o, false)::int AS opened, coalesce(ev.om, false)::int AS opened_machine,
        coalesce(ev.c, false)::int AS clicked, coalesce(ev.cm, false)::int AS clicked_machine,
        0 AS received, coalesce(ev.r, false)::int AS replied
      FROM messages m LEFT JOIN ev ON ev.message_id = m.id
      WHERE m.org_id = ${orgId} AND m.kind <> 'test'
      UNION ALL
      SELECT min(e.at), r.owner_id, r.module_id, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0
      FROM email_events e JOIN records r ON r.id = e.record_id
      WHERE e.org_id = ${orgId} AND e.kind = 'received'
      GROUP BY e.record_id, e.data->>'mailId', r.owner_id, r.module_id
    )
    SELECT date_bin('15 minutes', at, timestamptz '2000-01-01 00:00+00')::text AS bucket, u::text, mo::text, t::text, v,
      ${sql.join(
        COUNTERS.map((c) => sql`sum(${sql.ref(c)})::int AS ${sql.ref(c)}`),
        sql`, `,
      )}
    FROM facts GROUP BY 1, 2, 3, 4, 5
    HAVING ${sql.join(
      COUNTERS.map((c) => sql`sum(${sql.ref(c)}) <> 0`),
      sql` OR `,
    )}
    ORDER BY 1, 2, 3, 4, 5`.execute(deps.db);
  return r.rows;
}

async function rollups(deps: Deps, orgId: string, level: number, grain: 'q' | 'd' | 'm') {
  return (
    await sql<Record<string, string | number | null>>`
      SELECT bucket::text AS bucket, user_id::text AS u, module_id::text AS mo, template_id::text AS t,
        template_version AS v, ${sql.join(
          COUNTERS.map((c) => sql`${sql.ref(c)}::int AS ${sql.ref(c)}`),
          sql`, `,
        )}
      FROM report_rollups WHERE org_id = ${orgId} AND level = ${level} AND grain = ${grain}
        AND (${sql.join(
          COUNTERS.map((c) => sql`${sql.ref(c)} <> 0`),
          sql` OR `,
        )})
      ORDER BY 1, 2, 3, 4, 5`.execute(deps.db)
  ).rows;
}

const total = (rows: Record<string, unknown>[]) =>
  Object.fromEntries(COUNTERS.map((c) => [c, rows.reduce((s, r) => s + Number(r[c]), 0)]));

/** Level 3 at 15 minutes equals raw row by row; every other level and grain adds up to the same. */
export async function expectRollupsEqualRaw(deps: Deps, orgId: string) {
  const want = await raw(deps, orgId);
  expect(want.length).toBeGreaterThan(0);
  expect(await rollups(deps, orgId, 3, 'q')).toEqual(want);
  for (const level of [0, 1, 2, 3])
    for (const grain of ['q', 'd', 'm'] as const)
      expect({ level, grain, ...total(await rollups(deps, orgId, level, grain)) }).toEqual({
        level,
        grain,
        ...total(want),
      });
}
