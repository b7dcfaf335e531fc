import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, expect, it } from 'vitest';
import { EVENTS_CURSOR, SENT_CURSOR } from '../../src/reports/rollups.ts';
import { type NewEmailEvent, recordEvents } from '../../src/tracking/events.ts';
import { drain, expectRollupsEqualRaw, raw, reportFixture } from '../reports-fixture.ts';
import { ownDatabase } from '../support/app.ts';
import { scaled } from '../support/mode.ts';
import type { ParleyProcess } from '../support/processes.ts';
import { killAll, killRandomly, sleep, startWorker, waitUntil } from './kills-support.ts';
import { recordFaults } from './tally.ts';

// Report rollups kept by real `parley worker` processes killed with SIGKILL at random moments: the
// first one in its build from raw data (history written before any worker ran), the others while
// they follow the sent and events cursors, and mail keeps being sent, opened, clicked, bounced and
// answered meanwhile. Afterwards a restarted worker catches up, and the rollups equal the raw counts.

// The cursors are global: this file gets a database of its own.
const own = await ownDatabase();
const deps = own.deps;
const live = new Set<ParleyProcess>();
afterAll(async () => {
  await killAll(live);
  await deps.close();
});

const COUNTERS = [
  'sent',
  'bounced',
  'tracked',
  'opened',
  'opened_machine',
  'clicked',
  'clicked_machine',
  'received',
  'replied',
];

it('rollups equal the raw counts after workers were killed at random moments', async () => {
  const f = await reportFixture(deps);
  const H = scaled(20_000, 100_000);
  const templates = f.templates.map((t) => t.id);
  // History over three days: sends (some failed, never sent), and about one event per message.
  await sql`
    INSERT INTO messages (org_id, kind, module_id, record_id, template_id, template_version, sender_id, from_address,
      to_address, subject, message_id_header, transport, status, expires_at, tracked, sent_at, created_at)
    SELECT ${f.orgId}, CASE WHEN g % 2 = 0 THEN 'mass' ELSE 'individual' END, t.module_id, ${f.records[0].id}::uuid,
      t.id, 1, (${f.users}::uuid[])[1 + g % 3], 'me@t.example', 'you@t.example', 's', '<h' || g || '-' || gen_random_uuid() || '@t.example>',
      'relay', CASE WHEN g % 20 = 0 THEN 'failed' ELSE 'sent' END, now() + interval '1 day', g % 3 <> 0,
      CASE WHEN g % 20 = 0 THEN NULL ELSE now() - interval '3 days' + g * (interval '3 days' / ${H}) END,
      now() - interval '3 days' + g * (interval '3 days' / ${H})
    FROM generate_series(1, ${H}) g JOIN templates t ON t.id = (${templates}::uuid[])[1 + g % 3]`.execute(
    deps.db,
  );
  await sql`
    INSERT INTO email_events (org_id, message_id, kind, human, at)
    SELECT m.org_id, m.id, (ARRAY['opened', 'opened', 'clicked', 'bounced', 'replied'])[1 + floor(random() * 5)::int],
      random() < 0.7, coalesce(m.sent_at, m.created_at) + interval '1 minute'
    FROM messages m CROSS JOIN generate_series(1, 2) d WHERE m.org_id = ${f.orgId} AND random() < 0.5`.execute(
    deps.db,
  );
  await sql`
    INSERT INTO email_events (org_id, record_id, kind, at, data)
    SELECT ${f.orgId}, (${f.records.map((r) => r.id)}::uuid[])[1 + g % 8], 'received', now() - interval '2 days',
      jsonb_build_object('mailId', 'm' || (g % 500))
    FROM generate_series(1, ${Math.floor(H / 20)}) g`.execute(deps.db);

  // Meanwhile mail keeps going out and being read: small transactions of sends and events.
  let writing = true;
  const recent: string[] = [];
  const writer = (async () => {
    while (writing) {
      await deps.db.transaction().execute(async (trx) => {
        const t = f.templates[Math.floor(Math.random() * f.templates.length)];
        const id = (
          await sql<{ id: string }>`
            INSERT INTO messages (org_id, kind, module_id, template_id, template_version, sender_id, from_address,
              to_address, subject, message_id_header, transport, status, expires_at, tracked, sent_at)
            VALUES (${f.orgId}, 'mass', ${t.moduleId}, ${t.id}, 1, ${f.users[Math.floor(Math.random() * 3)]},
              'me@t.example', 'you@t.example', 's', ${`<${randomUUID()}@t.example>`}, 'relay', 'sent',
              now() + interval '1 day', ${Math.random() < 0.7}, now())
            RETURNING id`.execute(trx)
        ).rows[0].id;
        recent.push(id);
        const events: NewEmailEvent[] = [];
        for (let k = Math.floor(Math.random() * 4); k > 0; k--) {
          const kind = (['opened', 'clicked', 'bounced', 'replied', 'received'] as const)[
            Math.floor(Math.random() * 5)
          ];
          events.push({
            orgId: f.orgId,
            messageId:
              kind === 'received'
                ? null
                : recent[Math.max(0, recent.length - 1 - Math.floor(Math.random() * 20))],
            recordId: kind === 'received' ? f.records[Math.floor(Math.random() * 8)].id : null,
            massEmailId: null,
            kind,
            human: Math.random() < 0.6,
            at: new Date(),
            data: kind === 'received' ? { mailId: `live${Math.floor(Math.random() * 50)}` } : {},
          });
        }
        await recordEvents(trx, events);
      });
      await sleep(Math.random() * 20);
    }
  })();

  let kills: number;
  try {
    kills = await killRandomly(own, live, {
      kills: scaled(5, 15),
      parallel: [1, 2],
      // Passes are short transactions every couple of seconds (at once when woken): any moment.
      moment: () => sleep(Math.random() * 2500),
      deadlineMs: scaled(240_000, 480_000),
    });
  } finally {
    writing = false;
    await writer;
  }

  // Restart: a worker catches up with every event and with every send older than its lag (30 s).
  const w = await startWorker(own);
  live.add(w);
  const caughtUp = await waitUntil(
    async () => {
      const r = await sql<{ behind: boolean }>`
      SELECT EXISTS (SELECT 1 FROM email_events e, feed_cursors c WHERE c.name = ${EVENTS_CURSOR}
          AND (e.txid, e.id) > (c.txid, c.event_id))
        OR EXISTS (SELECT 1 FROM messages m, feed_cursors c WHERE c.name = ${SENT_CURSOR}
          AND m.sent_at < now() - interval '31 seconds'
          AND (m.sent_at, m.id) > (coalesce(c.at, '-infinity'), coalesce(c.message_id, '00000000-0000-0000-0000-000000000000'))) AS behind`.execute(
        deps.db,
      );
      return !r.rows[0].behind;
    },
    scaled(120_000, 300_000),
  );
  await w.stop('SIGTERM');
  live.delete(w);
  // The sends of the last 30 s (the worker's lag), counted here with none.
  await drain(deps);

  const want = await raw(deps, f.orgId);
  const got = (
    await sql<Record<string, number>>`SELECT ${sql.join(
      COUNTERS.map((c) => sql`coalesce(sum(${sql.ref(c)}), 0)::int AS ${sql.ref(c)}`),
      sql`, `,
    )} FROM report_rollups WHERE org_id = ${f.orgId} AND level = 3 AND grain = 'q'`.execute(deps.db)
  ).rows[0];
  let lost = 0;
  let duplicated = 0;
  for (const c of COUNTERS) {
    const n = want.reduce((s, r) => s + Number(r[c]), 0);
    lost += Math.max(0, n - got[c]);
    duplicated += Math.max(0, got[c] - n);
  }
  const messages = (
    await sql<{ n: number }>`SELECT count(*)::int AS n FROM messages WHERE org_id = ${f.orgId}`.execute(
      deps.db,
    )
  ).rows[0].n;
  console.info(`kills-rollups: ${kills} kills, ${messages} messages, counts ${JSON.stringify(got)}`);
  recordFaults('kills-rollups', { kills, recipients: messages, lost, duplicated, unknown: 0 });
  expect({ caughtUp, lost, duplicated }).toEqual({ caughtUp: true, lost: 0, duplicated: 0 });
  await expectRollupsEqualRaw(deps, f.orgId);
}, 900_000);
