import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import type { Actor } from '../../src/crm/index.ts';
import { type EmbeddedDb, startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { migrate } from '../../src/db/migrate.ts';
import { openDatabase } from '../../src/db/pool.ts';
import { type Deps, systemClock } from '../../src/deps.ts';
import { createMassEmail } from '../../src/sending/mass.service.ts';
import { saveRelay } from '../../src/sending/relays.ts';
import { adminActor, createTestOrg, moduleId, type TestOrg } from '../support/app.ts';
import { type CaptureServer, startCaptureServer } from '../support/mail-peers.ts';
import { scaled } from '../support/mode.ts';
import { type ParleyProcess, startParley } from '../support/processes.ts';
import { recordFaults } from './tally.ts';

// PostgreSQL restarted in the middle of a send, under real `parley serve` and `parley worker`
// processes: a clean (fast) shutdown with the database away for a few seconds, and a crash
// (immediate shutdown, crash recovery on start) while batches are in flight. Nobody restarts the
// Parley processes: they must reconnect by themselves and finish the send, every recipient sent
// exactly once (the worker stays alive, so it knows every outcome: none may end unknown).

// A PostgreSQL of this file's own, in a temporary folder, so that it can be stopped and started.
let dir: string;
let pgdb: EmbeddedDb;
let port: number;
let deps: Deps & { close(): Promise<void> };
let smtp: CaptureServer;
let serve: ParleyProcess | undefined;
let worker: ParleyProcess | undefined;
let org: TestOrg;
let admin: Actor;
const secret = 'test-secret-0123456789-0123456789-abcdef';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'parley-pgrestart-'));
  chmodSync(dir, 0o755); // the postgres user must be able to enter it
  pgdb = await startEmbeddedPostgres({ dataDir: dir, database: 'parley' });
  port = pgdb.port;
  const database = openDatabase(pgdb.url, 5);
  await migrate(database.pool);
  deps = {
    db: database.db,
    clock: systemClock,
    log: pino({ level: 'silent' }),
    config: loadConfig({ PARLEY_DATABASE_URL: pgdb.url, PARLEY_LOG_LEVEL: 'silent', PARLEY_SECRET: secret }),
    close: () => database.close(),
  };
  smtp = await startCaptureServer();
  org = await createTestOrg(deps);
  admin = adminActor(org);
  await deps.db
    .updateTable('orgs')
    .set({ mass_email_addon: 1_000_000 })
    .where('id', '=', org.orgId)
    .execute();
  await deps.db
    .updateTable('edition_limits')
    .set({ mass_addon_max: 1_000_000 })
    .where('edition', '=', 'professional')
    .execute();
  // Paced, so that a send lasts long enough for the database to go away in its middle.
  await saveRelay(deps, admin, {
    host: '127.0.0.1',
    port: smtp.port,
    security: 'none',
    maxConnections: 4,
    maxPerSecond: scaled(400, 600),
  });
  const env = { databaseUrl: pgdb.url, secret };
  [serve, worker] = await Promise.all([startParley('serve', env), startParley('worker', env)]);
}, 180_000);

afterAll(async () => {
  await worker?.stop();
  await serve?.stop();
  await smtp?.stop();
  await deps?.close();
  await pgdb?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Stops PostgreSQL (fast: SIGINT, clean; immediate: SIGQUIT, a crash), keeps it away `downMs`, starts it. */
async function restartPostgres(mode: 'fast' | 'immediate', downMs: number, whileDown?: () => Promise<void>) {
  if (mode === 'fast') await pgdb.stop();
  else {
    const pid = Number(readFileSync(join(dir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(pid, 'SIGQUIT');
    const until = Date.now() + 30_000;
    for (;;) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      if (Date.now() > until) throw new Error('postgres did not stop on SIGQUIT');
      await sleep(20);
    }
  }
  // The outage itself: how long the database stays away is the point of the test, not a wait.
  const away = sleep(downMs);
  await whileDown?.();
  await away;
  pgdb = await startEmbeddedPostgres({ dataDir: dir, database: 'parley', port });
}

/** The test's own queries while the database may be away: retried until it answers. */
async function query<T>(f: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await f();
    } catch (e) {
      if (Date.now() > until) throw e;
      await sleep(200);
    }
  }
}

let sends = 0;
async function massSendOf(n: number): Promise<string> {
  const tag = `S${++sends}x`;
  const modId = await moduleId(deps, org.orgId, 'contacts');
  const t = await deps.db
    .insertInto('templates')
    .values({ org_id: org.orgId, module_id: modId, name: `Restart ${tag}`, created_by: org.adminId })
    .returning('id')
    .executeTakeFirstOrThrow();
  await deps.db
    .insertInto('template_versions')
    .values({
      org_id: org.orgId,
      template_id: t.id,
      version: 1,
      subject: 'Hi {{ contact.last_name }}',
      html_source: '<p>Hi {{ contact.last_name }}</p>',
      html: '<p>Hi {{ contact.last_name }}</p>',
      text: 'Hi {{ contact.last_name }}',
    })
    .execute();
  await sql`INSERT INTO records (org_id, module_id, owner_id, data)
    SELECT ${org.orgId}, ${modId}, ${org.adminId},
      jsonb_build_object('last_name', ${tag} || g, 'email', lower(${tag}) || g || '@sink.example')
    FROM generate_series(1, ${n}) g`.execute(deps.db);
  return createMassEmail(deps, admin, {
    module: 'contacts',
    name: `Restart ${tag}`,
    templateId: t.id,
    from: { kind: 'user' },
    audience: {
      kind: 'criteria',
      criteria: { conditions: [{ field: 'last_name', op: 'starts_with', value: tag }] },
    },
  });
}

const sentCount = (massId: string) =>
  query(
    async () =>
      (
        await sql<{ n: number }>`SELECT count(*)::int AS n FROM messages
          WHERE mass_email_id = ${massId} AND status = 'sent'`.execute(deps.db)
      ).rows[0].n,
  );

async function statusCounts(massId: string): Promise<Record<string, number>> {
  const r = await query(() =>
    sql<{ status: string; n: number }>`SELECT status, count(*)::int AS n FROM messages
      WHERE mass_email_id = ${massId} GROUP BY status`.execute(deps.db),
  );
  return Object.fromEntries(r.rows.map((x) => [x.status, x.n]));
}

/** Waits until the worker has sent `atLeast` of the send's messages. */
async function untilSent(massId: string, atLeast: number, timeoutMs = 120_000) {
  const until = Date.now() + timeoutMs;
  while ((await sentCount(massId)) < atLeast) {
    if (Date.now() > until) throw new Error(`fewer than ${atLeast} sent in ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Waits until the send is over (mass email 'sent': every row settled), or fails with the counts. */
async function untilFinished(massId: string, timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const m = await query(() =>
      deps.db.selectFrom('mass_emails').select('status').where('id', '=', massId).executeTakeFirstOrThrow(),
    );
    if (m.status === 'sent') return;
    if (Date.now() > until)
      expect({ mass: m.status, ...(await statusCounts(massId)) }).toEqual({ mass: 'sent' });
    await sleep(300);
  }
}

/** Every recipient sent, each message arrived exactly once; returns the tally's figures. */
async function check(massId: string, n: number) {
  const rows = (
    await sql<{ status: string; message_id_header: string }>`SELECT status, message_id_header
      FROM messages WHERE mass_email_id = ${massId}`.execute(deps.db)
  ).rows;
  const arrived = new Map<string, number>();
  for (const m of smtp.messages) {
    const mid = /^Message-ID:\s*(<[^>]+>)/im.exec(m.raw.toString('latin1'))?.[1] ?? '';
    arrived.set(mid, (arrived.get(mid) ?? 0) + 1);
  }
  const ours = rows.map((r) => arrived.get(r.message_id_header) ?? 0);
  const tally = {
    recipients: rows.length,
    lost: n - rows.length + ours.filter((c) => c === 0).length,
    duplicated: ours.filter((c) => c > 1).length,
    unknown: rows.filter((r) => r.status === 'unknown').length,
  };
  expect(await statusCounts(massId)).toEqual({ sent: n });
  expect(tally).toEqual({ recipients: n, lost: 0, duplicated: 0, unknown: 0 });
  return tally;
}

/** The processes are the same ones, still running, and serve answers requests that need the database. */
async function expectProcessesAlive() {
  expect({ serve: serve?.child.exitCode, worker: worker?.child.exitCode }).toEqual({
    serve: null,
    worker: null,
  });
  const res = await fetch(`${serve?.url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: org.adminEmail, password: org.adminPassword }),
  });
  expect(res.status).toBe(200);
}

/** Down for seconds, cleanly; serve meanwhile says why it cannot do what it is asked. */
const cleanRestart = () =>
  restartPostgres('fast', 3000, async () => {
    const res = await fetch(`${serve?.url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: org.adminEmail, password: org.adminPassword }),
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(
      /database cannot be reached/,
    );
  });
/** A crash (immediate shutdown) and a start at once: crash recovery, batches in flight. */
const crashRestart = () => restartPostgres('immediate', 0);

// Quick (npm test): one send through a clean restart and a crash. Full: longer sends, more of each.
const plans = scaled(
  [{ name: 'a clean restart, then a crash', n: 1500, restarts: [cleanRestart, crashRestart] }],
  [
    { name: 'three clean restarts', n: 6000, restarts: [cleanRestart, cleanRestart, cleanRestart] },
    { name: 'four crashes', n: 10_000, restarts: [crashRestart, crashRestart, crashRestart, crashRestart] },
  ],
);

describe('PostgreSQL restarted in the middle of a send', () => {
  for (const plan of plans)
    it(`${plan.name}: serve and worker reconnect by themselves and finish; nothing lost, nothing twice`, async () => {
      const N = plan.n;
      smtp.messages.length = 0;
      const massId = await massSendOf(N);
      for (const [i, restart] of plan.restarts.entries()) {
        // Right after a batch started going out: claimed rows, handover marks and results in flight.
        const before = await sentCount(massId);
        await untilSent(
          massId,
          Math.max(before + 50, Math.floor((N * (i + 1)) / (plan.restarts.length + 2))),
        );
        await restart();
      }
      await untilFinished(massId, 180_000);
      const t = await check(massId, N);
      await expectProcessesAlive();
      recordFaults(`postgres-restart: ${plan.name}`, { kills: plan.restarts.length, ...t });
    }, 360_000);
});
