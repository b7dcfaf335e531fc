import { spawnSync } from 'node:child_process';
import { type RawBuilder, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMassEmail } from '../../src/sending/mass.service.ts';
import { saveRelay } from '../../src/sending/relays.ts';
import { trackingToken } from '../../src/tracking/tokens.ts';
import { recordFaults } from '../faults/tally.ts';
import { adminActor, createTestOrg, insertTemplate, moduleId, ownDatabase } from '../support/app.ts';
import { type SmtpSink, startSmtpSink } from '../support/mail-peers.ts';
import { scaled } from '../support/mode.ts';
import { type ParleyProcess, startParley } from '../support/processes.ts';

// "Nothing depends on being the only process" (issue 8), with real processes: 2 `parley serve` and
// 3 `parley worker` on one PostgreSQL. A 30,000-recipient mass email, scheduled, is launched by
// whichever worker gets it first and sent by all three; opens and clicks arrive on both serve
// processes while it sends. One worker is restarted midway, and one serve between hits (their
// in-memory caches are lost). Checked: each message arrives exactly once, every hit is counted once (totals on the
// message, raw hits, first-open/first-click events), three sends racing for one daily limit take
// exactly the limit, and pg-boss's recurring jobs fire once per minute across the three workers.

// 30,000 in full; 10,000 inside `npm test` (30,000 with three workers, two serves and the hits does
// not fit its ~90 s on a shared 2-core machine).
const N = scaled(10_000, 30_000);
// Enterprise: 1,000 mass emails a day. Three sends of 400 race for it.
const LIMIT = 1_000;
const RACERS = 3;
const RACER_SIZE = 400;
const LINK = 'https://www.example.com/offer';
// A person's browser: the hit judge counts these as human.
const BROWSER =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
// The click judge refuses clicks in the first 10 s after sending (scanners click at once).
const CLICK_AFTER_MS = 11_000;

const own = await ownDatabase(); // workers take every org's work: a database of this file's own
const deps = own.deps;
const secret = deps.config.secret as string;
const env = { databaseUrl: own.url, secret };
// Postfix's smtp-sink (a child process in C): receiving 30,000 messages costs the test process nothing.
let smtp: SmtpSink;
const serves: ParleyProcess[] = [];
const workers: ParleyProcess[] = [];

beforeAll(async () => {
  smtp = await startSmtpSink();
  // Rebuild the server bundle once if a source changed, so five processes do not all build it.
  spawnSync(process.execPath, ['bin/parley.mjs', '--version'], { stdio: 'ignore' });
});
afterAll(async () => {
  await Promise.all([...serves, ...workers].map((p) => p.stop('SIGKILL')));
  await smtp?.stop();
  await deps.close();
});

/** An org with a relay to the capture server, `n` contacts and a mass email to them, scheduled an hour out. */
async function scheduledSend(
  edition: 'professional' | 'enterprise',
  n: number,
  tag: string,
  minutes: number,
) {
  const o = await createTestOrg(deps, { edition });
  const admin = adminActor(o);
  await saveRelay(deps, admin, {
    host: '127.0.0.1',
    port: smtp.port,
    security: 'none',
    maxConnections: 4,
    maxPerSecond: 100_000,
  });
  const modId = await moduleId(deps, o.orgId, 'contacts');
  const templateId = await insertTemplate(deps, o.orgId, 'contacts', {
    subject: 'Offer for {{ contact.last_name }}',
    html: `<p>Hi {{ contact.last_name }}, <a href="${LINK}">see the offer</a></p>`,
    text: 'Hi {{ contact.last_name }}',
    createdBy: o.adminId,
  });
  await sql`INSERT INTO records (org_id, module_id, owner_id, data)
    SELECT ${o.orgId}, ${modId}, ${o.adminId},
      jsonb_build_object('last_name', ${tag} || g, 'email', ${tag} || g || '@sink.example')
    FROM generate_series(1, ${n}) g`.execute(deps.db);
  if (edition === 'professional') {
    // room for the big send (enterprise keeps its 1,000 a day)
    await deps.db
      .updateTable('edition_limits')
      .set({ mass_addon_max: 1_000_000 })
      .where('edition', '=', 'professional')
      .execute();
    await deps.db
      .updateTable('orgs')
      .set({ mass_email_addon: 1_000_000 })
      .where('id', '=', o.orgId)
      .execute();
  }
  const sendAt = new Date(Date.now() + minutes * 60_000).toISOString();
  const ids: string[] = [];
  for (let k = 0; k < (edition === 'enterprise' ? RACERS : 1); k++)
    ids.push(
      await createMassEmail(deps, admin, {
        module: 'contacts',
        name: `${tag} ${k}`,
        templateId,
        from: { kind: 'user' },
        sendAt,
        audience: {
          kind: 'criteria',
          criteria: { conditions: [{ field: 'last_name', op: 'starts_with', value: tag }] },
        },
      }),
    );
  return { org: o, ids };
}

/** A replacement process; a start that timed out on a busy machine is tried again (twice at most). */
async function startAgain(role: 'serve' | 'worker'): Promise<ParleyProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startParley(role, env);
    } catch (e) {
      if (attempt === 3) throw e;
    }
  }
}

const count = async (q: RawBuilder<{ n: number }>) => (await q.execute(deps.db)).rows[0].n;

/** Tracking hits over HTTP, each serve process with its own queue and a few requests in flight. */
function hitQueue(serve: () => ParleyProcess, inFlight: number) {
  const jobs: { path: string; click: boolean }[] = [];
  let paused: Promise<void> | null = null;
  let busy = 0;
  let sent = 0;
  const errors: string[] = [];
  let wake: (() => void) | null = null;
  let done = false;
  async function runner() {
    for (;;) {
      if (paused) await paused;
      const job = jobs.shift();
      if (!job) {
        if (done) return;
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 100);
        });
        continue;
      }
      busy++;
      try {
        const res = await fetch(`${serve().url}${job.path}`, {
          redirect: 'manual',
          headers: { 'user-agent': BROWSER, accept: job.click ? 'text/html' : 'image/avif,image/webp,*/*' },
        });
        await res.arrayBuffer();
        const ok = job.click
          ? res.status === 302 && res.headers.get('location') === LINK
          : res.status === 200;
        if (ok) sent++;
        else errors.push(`${job.path}: ${res.status}`);
      } catch (e) {
        errors.push(`${job.path}: ${(e as Error).message}`); // neither counted nor not: a failure
      } finally {
        busy--;
      }
    }
  }
  const runners = Array.from({ length: inFlight }, runner);
  return {
    push(path: string, click: boolean) {
      jobs.push({ path, click });
      wake?.();
    },
    get sent() {
      return sent;
    },
    errors,
    get pending() {
      return jobs.length + busy;
    },
    /** Stops taking jobs until resume(); resolves once nothing is in flight. */
    async pause(): Promise<() => void> {
      let resume = () => {};
      paused = new Promise<void>((r) => {
        resume = () => {
          paused = null;
          r();
        };
      });
      while (busy > 0) await new Promise((r) => setTimeout(r, 20));
      return resume;
    },
    async finish() {
      done = true;
      await Promise.all(runners);
    },
  };
}

describe('scale-out: 2 serve and 3 worker processes on one PostgreSQL', () => {
  it('serve and worker on a shared database refuse to start without PARLEY_SECRET (one per machine would not match)', () => {
    const { PARLEY_SECRET: _, ...rest } = process.env;
    for (const role of ['serve', 'worker']) {
      const r = spawnSync(process.execPath, ['bin/parley.mjs', role], {
        env: { ...rest, PARLEY_DATABASE_URL: own.url, PARLEY_DATA_DIR: '/nonexistent/parley' },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect({ status: r.status, stderr: r.stderr }).toMatchObject({
        status: 2,
        stderr: expect.stringMatching(/PARLEY_SECRET must be set/),
      });
    }
  }, 130_000);

  it(`a ${N}-recipient send goes out exactly once and every open and click on either serve counts once`, async () => {
    const t0 = Date.now();
    // ---- data: the big send, and three sends racing for one daily limit (all scheduled) ----------
    const big = await scheduledSend('professional', N, 'R', 60);
    const race = await scheduledSend('enterprise', RACER_SIZE, 'L', 61); // three sends to the same 400
    const limitOrg = race.org.orgId;
    const bigId = big.ids[0];

    // ---- processes ----------------------------------------------------------------------------------
    // One after the other: on a busy machine five cold starts at once can each take over a minute.
    for (let k = 0; k < 2; k++) serves.push(await startParley('serve', env));
    for (let k = 0; k < 3; k++) workers.push(await startParley('worker', env));
    // Recurring jobs every minute from now on (pg-boss: each firing once across all workers).
    const jobNames = ['crm.purge-sessions', 'tracking.purge-hits'];
    const cronFrom = new Date();
    // Again after a worker restarts: its start schedules the jobs anew, at their real times.
    const everyMinute = () =>
      sql`UPDATE pgboss.schedule SET cron = '* * * * *' WHERE name = ANY(${jobNames})`.execute(deps.db);
    await everyMinute();
    // All four sends come due together, two seconds from now: three workers race for each.
    await sql`UPDATE mass_emails SET send_at = now() + interval '2 seconds'
      WHERE id = ANY(${[bigId, ...race.ids]}::uuid[])`.execute(deps.db);
    console.info(`multi-process: setup and start ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // ---- hits while it sends -------------------------------------------------------------------------
    const launchBy = Date.now() + 60_000;
    while (
      !(
        await deps.db
          .selectFrom('mass_emails')
          .select('started_at')
          .where('id', '=', bigId)
          .executeTakeFirst()
      )?.started_at
    ) {
      if (Date.now() > launchBy) throw new Error('the send was not launched');
      await new Promise((r) => setTimeout(r, 100));
    }
    const ids = (
      await sql<{ id: string }>`SELECT id FROM messages WHERE mass_email_id = ${bigId} ORDER BY id`.execute(
        deps.db,
      )
    ).rows.map((r) => r.id);
    expect(ids).toHaveLength(N);
    // The plan, by position: opens on serve 0 (every 5th) and serve 1 (every 10th), clicks on serve 1
    // (i % 10 = 5) and serve 0 (every 20th). A click also counts as an open.
    const want = new Map<string, { opens: number; clicks: number }>();
    const openPlan: [string, number][] = [];
    const clickPlan: [string, number][] = [];
    ids.forEach((id, i) => {
      if (i % 5 === 0) openPlan.push([id, 0]);
      if (i % 10 === 0) openPlan.push([id, 1]);
      if (i % 10 === 5) clickPlan.push([id, 1]);
      if (i % 20 === 0) clickPlan.push([id, 0]);
    });
    for (const [id] of openPlan) want.set(id, { opens: (want.get(id)?.opens ?? 0) + 1, clicks: 0 });
    for (const [id] of clickPlan) {
      const w = want.get(id) ?? { opens: 0, clicks: 0 };
      want.set(id, { opens: w.opens + 1, clicks: w.clicks + 1 });
    }
    const queues = [hitQueue(() => serves[0], 6), hitQueue(() => serves[1], 6)];
    const planned = openPlan.length + clickPlan.length;
    // Plan entries by message, and when each message was seen sent (polled, only the unseen ones).
    const unseen = new Set([...openPlan, ...clickPlan].map(([id]) => id));
    const sentSeen = new Map<string, number>();
    let opensLeft = openPlan;
    let clicksLeft = clickPlan;
    let hitsBeforeDone = 0;
    let restartedWorker = false;
    let restartedServe = false;
    let sentCount = 0;
    const restarts: Promise<void>[] = [];
    const restart = (p: Promise<void>) => {
      p.catch(() => {}); // observed here, thrown where all are awaited
      restarts.push(p);
    };
    const sendBy = Date.now() + scaled(300_000, 600_000); // fail-safes, far above a normal run
    for (;;) {
      sentCount = await count(
        sql`SELECT count(*)::int AS n FROM messages WHERE mass_email_id = ${bigId} AND status = 'sent'`,
      );
      if (unseen.size) {
        const now = Date.now();
        for (const r of (
          await sql<{ id: string }>`SELECT id FROM messages
            WHERE id = ANY(${[...unseen]}::uuid[]) AND status = 'sent'`.execute(deps.db)
        ).rows) {
          unseen.delete(r.id);
          sentSeen.set(r.id, now);
        }
      }
      opensLeft = opensLeft.filter(([id, s]) => {
        if (!sentSeen.has(id)) return true;
        queues[s].push(`/t/o/${trackingToken(secret, id, 'open')}.gif`, false);
        return false;
      });
      // Clicks only once the judge's 10 s "too soon after sending" window is surely over.
      const late = Date.now() - CLICK_AFTER_MS;
      clicksLeft = clicksLeft.filter(([id, s]) => {
        const at = sentSeen.get(id);
        if (at === undefined || at > late) return true;
        queues[s].push(`/t/c/${trackingToken(secret, id, 'click', 0)}`, true);
        return false;
      });
      if (sentCount < N) hitsBeforeDone = queues[0].sent + queues[1].sent;
      // One worker (halfway) and one serve are replaced by fresh ones: caches, transports, hit
      // buffers and message lookups lost; a graceful stop, as a deploy does it. In the background:
      // the polling and the other serve's hits go on meanwhile.
      if (!restartedWorker && sentCount >= N / 2) {
        restartedWorker = true;
        restart(
          (async () => {
            await workers[0].stop('SIGTERM');
            workers[0] = await startAgain('worker');
            await everyMinute();
          })(),
        );
      }
      // The serve once the send is over (its start competes with three sending workers for the
      // CPU, too slowly on a busy machine), while the last clicks are still to come.
      if (!restartedServe && sentCount === N) {
        restartedServe = true;
        restart(
          (async () => {
            const resume = await queues[1].pause();
            await serves[1].stop('SIGTERM'); // writes its buffered hits before it exits
            serves[1] = await startAgain('serve');
            resume();
          })(),
        );
      }
      if (!opensLeft.length && !clicksLeft.length && sentCount === N && restartedServe) break;
      if (Date.now() > sendBy)
        throw new Error(`not done in time: ${sentCount}/${N} sent, ${clicksLeft.length} clicks waiting`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    await Promise.all(restarts);
    const sentAt = Date.now();
    await Promise.all(queues.map((q) => q.finish()));
    expect([...queues[0].errors, ...queues[1].errors].slice(0, 5)).toEqual([]);
    expect(queues[0].sent + queues[1].sent).toBe(planned);
    expect(restartedServe && restartedWorker).toBe(true);
    console.info(
      `multi-process: ${N} sent and ${planned} hits (${hitsBeforeDone} while sending) by ${((sentAt - t0) / 1000).toFixed(1)} s`,
    );

    // ---- every message exactly once --------------------------------------------------------------------
    const rows = (
      await sql<{ status: string; message_id_header: string; record_id: string }>`
        SELECT status, message_id_header, record_id FROM messages WHERE mass_email_id = ${bigId}`.execute(
        deps.db,
      )
    ).rows;
    expect(rows.filter((r) => r.status !== 'sent')).toEqual([]);
    expect(new Set(rows.map((r) => r.record_id)).size).toBe(N); // launched once: one row per recipient
    const arrived = new Map<string, number>();
    for (const m of smtp.messages()) {
      const mid = /^Message-ID:\s*(<[^>]+>)/im.exec(m.raw.toString('latin1'))?.[1] ?? '';
      arrived.set(mid, (arrived.get(mid) ?? 0) + 1);
    }
    expect([...arrived].filter(([, c]) => c > 1)).toEqual([]); // none twice
    expect(rows.filter((r) => arrived.get(r.message_id_header) !== 1)).toEqual([]); // each once
    const bigMass = await deps.db
      .selectFrom('mass_emails')
      .select(['status', 'recipients'])
      .where('id', '=', bigId)
      .executeTakeFirstOrThrow();
    expect(bigMass).toEqual({ status: 'sent', recipients: N });
    // The daily budget was drawn once, not once per worker that saw the send due.
    expect(
      await count(sql`SELECT used AS n FROM daily_usage WHERE org_id = ${big.org.orgId} AND kind = 'mass'`),
    ).toBe(N);

    // ---- three sends racing for one daily limit: exactly the limit goes out ------------------------
    const racers = (
      await sql<{
        status: string;
        stop_reason: string | null;
        recipients: number;
        sent: number;
        parked: number;
      }>`
        SELECT me.status, me.stop_reason, me.recipients,
          count(*) FILTER (WHERE m.status = 'sent')::int AS sent,
          count(*) FILTER (WHERE m.status = 'queued' AND m.next_attempt_at = 'infinity')::int AS parked
        FROM mass_emails me LEFT JOIN messages m ON m.mass_email_id = me.id
        WHERE me.id = ANY(${race.ids}::uuid[]) GROUP BY me.id ORDER BY sent DESC`.execute(deps.db)
    ).rows;
    expect(racers.reduce((s, r) => s + r.sent, 0)).toBe(LIMIT);
    expect(racers.reduce((s, r) => s + r.sent + r.parked, 0)).toBe(RACERS * RACER_SIZE);
    expect(racers.filter((r) => r.stop_reason === 'daily_limit_reached')).toHaveLength(1);
    expect(
      await count(sql`SELECT used AS n FROM daily_usage WHERE org_id = ${limitOrg} AND kind = 'mass'`),
    ).toBe(LIMIT);

    // ---- every hit counted once (clicks are judged ~12 s after they arrive) --------------------------
    const judgedBy = Date.now() + 60_000;
    for (;;) {
      const h = (
        await sql<{ all: number; waiting: number }>`SELECT count(*)::int AS all,
          count(*) FILTER (WHERE verdict IS NULL)::int AS waiting FROM tracking_hits WHERE org_id = ${big.org.orgId}`.execute(
          deps.db,
        )
      ).rows[0];
      if (h.all >= planned && h.waiting === 0) break;
      if (Date.now() > judgedBy) throw new Error(`hits not all judged: ${JSON.stringify(h)} of ${planned}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const verdicts = (
      await sql<{ verdict: string; reason: string; n: number }>`SELECT verdict, reason, count(*)::int AS n
        FROM tracking_hits WHERE org_id = ${big.org.orgId} GROUP BY 1, 2`.execute(deps.db)
    ).rows;
    expect(verdicts).toEqual([{ verdict: 'human', reason: 'human', n: planned }]);
    const totals = (
      await sql<{ id: string; opens: number; clicks: number; machine: number }>`
        SELECT id, open_count AS opens, click_count AS clicks, machine_open_count + machine_click_count AS machine
        FROM messages WHERE mass_email_id = ${bigId}`.execute(deps.db)
    ).rows;
    const wrong = totals.filter((t) => {
      const w = want.get(t.id) ?? { opens: 0, clicks: 0 };
      return t.opens !== w.opens || t.clicks !== w.clicks || t.machine !== 0;
    });
    expect(wrong.slice(0, 5)).toEqual([]);
    const events = (
      await sql<{ kind: string; human: boolean; n: number; messages: number }>`
        SELECT kind, human, count(*)::int AS n, count(DISTINCT message_id)::int AS messages
        FROM email_events WHERE org_id = ${big.org.orgId} GROUP BY 1, 2 ORDER BY 1`.execute(deps.db)
    ).rows;
    const opened = [...want.values()].filter((w) => w.opens > 0).length;
    const clicked = [...want.values()].filter((w) => w.clicks > 0).length;
    expect(events).toEqual([
      { kind: 'clicked', human: true, n: clicked, messages: clicked },
      { kind: 'opened', human: true, n: opened, messages: opened },
    ]);

    // ---- recurring jobs: one run per minute across three workers --------------------------------------
    // pg-boss checks schedules every 30 s in each worker; without its once-per-minute guard three
    // workers would start ~6 runs a minute. Wait until every run so far has finished.
    const runs = async () =>
      (
        await sql<{ name: string; state: string; retry_count: number; created_on: Date }>`
          SELECT name, state, retry_count, created_on FROM pgboss.job WHERE name = ANY(${jobNames})
          UNION ALL
          SELECT name, state, retry_count, created_on FROM pgboss.archive WHERE name = ANY(${jobNames})`.execute(
          deps.db,
        )
      ).rows;
    const jobsBy = Date.now() + 90_000;
    let seen = await runs();
    while (
      jobNames.some((n) => !seen.some((j) => j.name === n)) ||
      seen.some((j) => j.state !== 'completed')
    ) {
      if (Date.now() > jobsBy) throw new Error(`recurring jobs: ${JSON.stringify(seen)}`);
      await new Promise((r) => setTimeout(r, 1000));
      seen = await runs();
    }
    const minutes = Math.ceil((Date.now() - cronFrom.getTime()) / 60_000);
    for (const name of jobNames) {
      const mine = seen.filter((j) => j.name === name);
      expect(mine.length).toBeGreaterThanOrEqual(1);
      expect(mine.length).toBeLessThanOrEqual(minutes + 1);
      expect(mine.every((j) => j.retry_count === 0)).toBe(true);
    }

    recordFaults('scale/multi-process', {
      kills: 0,
      recipients: N + RACERS * RACER_SIZE,
      lost: rows.filter((r) => !arrived.has(r.message_id_header)).length,
      duplicated: [...arrived.values()].filter((c) => c > 1).length,
      unknown: 0,
    });
    console.info(
      `multi-process: ${N} messages once each, ${planned} hits counted once, ${LIMIT} of ${RACERS * RACER_SIZE} within the daily limit, ` +
        `${seen.length} recurring runs in ${minutes} min; ${((Date.now() - t0) / 1000).toFixed(1)} s in all`,
    );
  }, 1_200_000);
});
