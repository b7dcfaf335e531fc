import { type ChildProcess, spawn } from 'node:child_process';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../src/crm/index.ts';
import { recoverStuck } from '../src/sending/delivery.ts';
import { createMassEmail } from '../src/sending/mass.service.ts';
import { saveRelay } from '../src/sending/relays.ts';
import { createTestOrg, insertTemplate, ownDatabase } from './support/app.ts';
import { type CaptureServer, startCaptureServer } from './support/mail-peers.ts';

// Real `parley worker` processes, killed with SIGKILL at random moments of a send, then restarted:
// every recipient must end sent or unknown, none may arrive twice, none may be lost. Then three
// workers at once on one database: each message exactly once.

// Workers take every org's due messages: this file gets a database of its own.
const own = await ownDatabase();
const deps = own.deps;
let smtp: CaptureServer;
afterAll(async () => {
  await smtp?.stop();
  await deps.close();
});
beforeAll(async () => {
  smtp = await startCaptureServer();
});

function startWorker(): ChildProcess {
  return spawn(process.execPath, ['bin/parley.mjs', 'worker'], {
    env: {
      ...process.env,
      PARLEY_DATABASE_URL: own.url,
      PARLEY_SECRET: deps.config.secret,
      PARLEY_LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}
const exited = (c: ChildProcess) =>
  c.exitCode !== null || c.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((r) => c.once('exit', () => r()));

async function massSendOf(n: number) {
  const o = await createTestOrg(deps);
  const admin: Actor = {
    orgId: o.orgId,
    userId: o.adminId,
    isAdmin: true,
    permissions: {},
    timeZone: 'UTC',
    locale: 'en-US',
  };
  await deps.db.updateTable('orgs').set({ mass_email_addon: 1_000_000 }).where('id', '=', o.orgId).execute();
  await deps.db
    .updateTable('edition_limits')
    .set({ mass_addon_max: 1_000_000 })
    .where('edition', '=', 'professional')
    .execute();
  await saveRelay(deps, admin, {
    host: '127.0.0.1',
    port: smtp.port,
    security: 'none',
    maxConnections: 4,
    maxPerSecond: 100_000,
  });
  const mod = await deps.db
    .selectFrom('modules')
    .select('id')
    .where('org_id', '=', o.orgId)
    .where('api_name', '=', 'contacts')
    .executeTakeFirstOrThrow();
  const t = {
    id: await insertTemplate(deps, o.orgId, 'contacts', {
      name: 'Crash',
      subject: 'Hi {{ contact.last_name }}',
      html: '<p>Hi {{ contact.last_name }}</p>',
      text: 'Hi {{ contact.last_name }}',
      createdBy: o.adminId,
    }),
  };
  await sql`INSERT INTO records (org_id, module_id, owner_id, data)
    SELECT ${o.orgId}, ${mod.id}, ${o.adminId}, jsonb_build_object('last_name', 'R' || g, 'email', 'r' || g || '@sink.example')
    FROM generate_series(1, ${n}) g`.execute(deps.db);
  const id = await createMassEmail(deps, admin, {
    module: 'contacts',
    name: 'Crash test',
    templateId: t.id,
    from: { kind: 'user' },
    audience: {
      kind: 'criteria',
      criteria: { conditions: [{ field: 'last_name', op: 'starts_with', value: 'R' }] },
    },
  });
  return id;
}

const sentCount = async (massId: string) =>
  (
    await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM messages WHERE mass_email_id = ${massId} AND status = 'sent'`.execute(
      deps.db,
    )
  ).rows[0].n;

/** For failure messages: how many rows are in each status, with one reply of each. */
async function statusCounts(massId: string) {
  const r = await sql<{ status: string; n: number; why: string | null }>`SELECT status, count(*)::int AS n,
      min(smtp_response) AS why FROM messages WHERE mass_email_id = ${massId} GROUP BY status`.execute(
    deps.db,
  );
  return Object.fromEntries(r.rows.map((x) => [x.status, `${x.n}${x.why ? `: ${x.why}` : ''}`]));
}

/** Messages still to go; a send not launched yet counts as all of them. */
async function pending(massId: string) {
  const m = await deps.db
    .selectFrom('mass_emails')
    .select('started_at')
    .where('id', '=', massId)
    .executeTakeFirstOrThrow();
  if (!m.started_at) return Number.POSITIVE_INFINITY;
  return (
    await sql<{ n: number }>`SELECT count(*)::int AS n FROM messages
      WHERE mass_email_id = ${massId} AND status IN ('queued', 'deferred')`.execute(deps.db)
  ).rows[0].n;
}

async function finalCheck(massId: string, n: number) {
  await recoverStuck(deps, 0); // no worker runs now: what is still 'sending' was cut off by a kill
  const rows = (
    await sql<{
      status: string;
      message_id_header: string;
    }>`SELECT status, message_id_header FROM messages WHERE mass_email_id = ${massId}`.execute(deps.db)
  ).rows;
  const arrived = new Map<string, number>();
  for (const m of smtp.messages) {
    const mid = /^Message-ID:\s*(<[^>]+>)/im.exec(m.raw.toString('latin1'))?.[1] ?? '';
    arrived.set(mid, (arrived.get(mid) ?? 0) + 1);
  }
  expect(rows).toHaveLength(n); // none lost
  const byStatus: Record<string, typeof rows> = {};
  for (const r of rows) {
    byStatus[r.status] ??= [];
    byStatus[r.status].push(r);
  }
  expect(Object.keys(byStatus).filter((s) => s !== 'sent' && s !== 'unknown')).toEqual([]);
  const dupes = [...arrived.values()].filter((c) => c > 1);
  expect(dupes).toEqual([]); // none twice
  for (const r of byStatus.sent ?? []) expect(arrived.get(r.message_id_header)).toBe(1);
  return { sent: byStatus.sent?.length ?? 0, unknown: byStatus.unknown?.length ?? 0 };
}

describe('crashes and many workers', () => {
  it('a send survives workers killed at random moments: every recipient sent or unknown, none twice', async () => {
    smtp.messages.length = 0;
    const N = 10_000;
    const massId = await massSendOf(N);
    let kills = 0;
    const deadline = Date.now() + 120_000;
    while ((await pending(massId)) > 0 && Date.now() < deadline) {
      const w = startWorker();
      if (kills < 6) {
        // Kill it in the middle of sending: once it has sent something, at a random moment after.
        const before = await sentCount(massId);
        const until = Date.now() + 20_000;
        while ((await sentCount(massId)) === before && Date.now() < until)
          await new Promise((r) => setTimeout(r, 20));
        await new Promise((r) => setTimeout(r, Math.random() * 700));
        w.kill('SIGKILL');
        kills++;
        await exited(w);
        // What a live worker's recovery does (after 10 minutes; no other worker runs here, so now):
        // rows it never handed to SMTP go back to the queue, the rest become unknown.
        await recoverStuck(deps, 0);
      } else {
        // The last worker runs until nothing is left to claim, then stops cleanly (SIGTERM: it
        // finishes and records the messages in flight).
        while ((await pending(massId)) > 0 && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 300));
        w.kill('SIGTERM');
        await exited(w);
      }
    }
    expect({ pending: await pending(massId), ...(await statusCounts(massId)) }).toMatchObject({ pending: 0 });
    const r = await finalCheck(massId, N);
    console.info(`crash test: ${kills} workers killed; ${r.sent} sent, ${r.unknown} unknown`);
    expect(r.sent + r.unknown).toBe(N);
    expect(r.sent).toBeGreaterThan(N * 0.9);
    expect(r.unknown).toBeGreaterThan(0); // the kills did cut sends short
  }, 180_000);

  it('three workers on one database send each message exactly once', async () => {
    smtp.messages.length = 0;
    const N = 30_000;
    const massId = await massSendOf(N);
    const workers = [startWorker(), startWorker(), startWorker()];
    const deadline = Date.now() + 150_000;
    while ((await pending(massId)) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map(exited));
    const r = await finalCheck(massId, N);
    expect(r).toEqual({ sent: N, unknown: 0 }); // graceful stops leave nothing unknown
    expect(smtp.messages).toHaveLength(N);
  }, 200_000);
});
