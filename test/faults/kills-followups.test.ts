import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ownDatabase } from '../support/app.ts';
import { type CaptureServer, startCaptureServer } from '../support/mail-peers.ts';
import { scaled } from '../support/mode.ts';
import type { ParleyProcess } from '../support/processes.ts';
import {
  arrivals,
  judgeSend,
  killAll,
  killRandomly,
  massSend,
  pending,
  restartAndFinish,
  type SendOrg,
  sendingOrg,
  sleep,
  waitUntil,
} from './kills-support.ts';
import { recordFaults } from './tally.ts';

// A mass email's follow-up rounds launched and sent by real `parley worker` processes that are
// killed with SIGKILL at random moments (in a launch, a claim, mid-SMTP) and replaced. Each round
// must reach exactly the part of the first send's recipients it is for: every one of them sent or
// unknown, none twice, nobody else. The first sends are written straight to the table (the sends
// themselves are what kills-sends.test.ts kills), so each round's audience is known in advance.

// Workers take every org's due work: this file gets a database of its own.
const own = await ownDatabase();
const deps = own.deps;
let smtp: CaptureServer;
const live = new Set<ParleyProcess>();
beforeAll(async () => {
  smtp = await startCaptureServer();
});
afterAll(async () => {
  await killAll(live);
  await smtp?.stop();
  await deps.close();
});

/** Who each follow-up is for, as the FOLLOWUP_FILTER of its audience reads the first send's rows. */
const AUDIENCE = {
  received: sql`status = 'sent' AND bounced_at IS NULL`,
  not_opened: sql`status = 'sent' AND tracked AND bounced_at IS NULL AND opened_at IS NULL`,
};

/**
 * A mass email whose first send is over (rows written as sent, unknown, bounced, opened: a spread
 * the audiences tell apart) and whose two follow-ups are due now. Answers the follow-ups with the
 * records each must reach.
 */
async function dueFollowups(org: SendOrg, k: number) {
  const parent = await massSend(deps, org, {
    sendAt: new Date(Date.now() + 86_400_000 + k * 60_000).toISOString(),
    followups: [
      { templateId: org.templateId, audience: 'received', days: 1 },
      { templateId: org.templateId, audience: 'not_opened', days: 2 },
    ],
  });
  await sql`
    INSERT INTO messages (org_id, kind, module_id, record_id, template_id, template_version, sender_id,
      mass_email_id, from_address, to_address, subject, message_id_header, transport, status, expires_at,
      tracked, sent_at, bounced_at, opened_at)
    SELECT r.org_id, 'mass', r.module_id, r.id, ${org.templateId}, 1, ${org.admin.userId}, ${parent},
      'me@kill.example', r.data->>'email', 'Hi', '<' || gen_random_uuid() || '@kill.example>', 'relay',
      CASE WHEN x.v < 0.1 THEN 'unknown' ELSE 'sent' END, now() + interval '1 day', true, now(),
      CASE WHEN x.v >= 0.1 AND x.v < 0.15 THEN now() END, CASE WHEN x.v > 0.75 THEN now() END
    FROM records r CROSS JOIN LATERAL (SELECT random() AS v) x WHERE r.org_id = ${org.orgId}`.execute(
    deps.db,
  );
  await sql`UPDATE mass_emails SET status = 'sent', started_at = now(), finished_at = now(),
      recipients = (SELECT count(*) FROM messages WHERE mass_email_id = ${parent}) WHERE id = ${parent}`.execute(
    deps.db,
  );
  await sql`UPDATE mass_emails SET send_at = now() WHERE parent_id = ${parent}`.execute(deps.db);
  const rounds = await sql<{ id: string; followup_audience: keyof typeof AUDIENCE }>`
    SELECT id, followup_audience FROM mass_emails WHERE parent_id = ${parent} ORDER BY position`.execute(
    deps.db,
  );
  const out: { id: string; records: string[] }[] = [];
  for (const f of rounds.rows) {
    const r = await sql<{ record_id: string }>`SELECT record_id FROM messages
      WHERE mass_email_id = ${parent} AND ${AUDIENCE[f.followup_audience]}`.execute(deps.db);
    out.push({ id: f.id, records: r.rows.map((x) => x.record_id) });
  }
  return out;
}

it('follow-up rounds survive workers killed at random moments: each reaches its audience once', async () => {
  const N = scaled(1_500, 6_000);
  const KILLS = scaled(6, 16);
  const org = await sendingOrg(deps, smtp, N);
  const rounds: { id: string; records: string[] }[] = [];
  const ids = () => rounds.map((r) => r.id);
  const sent = async () =>
    (
      await sql<{ n: number }>`SELECT count(*)::int AS n FROM messages
        WHERE mass_email_id = ANY(${ids()}::uuid[]) AND status = 'sent'`.execute(deps.db)
    ).rows[0].n;
  const kills = await killRandomly(own, live, {
    kills: KILLS,
    parallel: [1, 3],
    // New rounds when the last ones have nothing left to take (their launch included).
    feed: async () => {
      if ((await pending(deps, ids().slice(-2))) === 0)
        rounds.push(...(await dueFollowups(org, rounds.length)));
    },
    moment: async () => {
      if (Math.random() < 0.25) {
        await sleep(Math.random() * 1000);
        return;
      }
      const target = (await sent()) + 1 + Math.floor((Math.random() * 2 * N) / (KILLS + 2));
      await waitUntil(async () => (await sent()) >= target, 30_000);
      await sleep(Math.random() * 30);
    },
    deadlineMs: scaled(240_000, 480_000),
  });
  const { unknownAfterRecovery } = await restartAndFinish(own, live, ids(), scaled(120_000, 300_000));

  const arrived = arrivals(smtp);
  const t = { kills, recipients: 0, lost: 0, duplicated: 0, unknown: 0 };
  for (const f of rounds) {
    const r = await judgeSend(deps, f.id, f.records, arrived);
    expect(Object.keys(r.byStatus).filter((s) => s !== 'sent' && s !== 'unknown')).toEqual([]);
    t.recipients += r.recipients;
    t.lost += r.lost;
    t.duplicated += r.duplicated;
    t.unknown += r.unknown;
  }
  console.info(`kills-followups: ${rounds.length} rounds, ${JSON.stringify(t)}`);
  recordFaults('kills-followups', t);
  expect({ lost: t.lost, duplicated: t.duplicated }).toEqual({ lost: 0, duplicated: 0 });
  expect(t.unknown).toBe(unknownAfterRecovery); // clean stops leave nothing unknown
}, 900_000);
