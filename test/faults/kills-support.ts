// Shared by the kill tests (kills-*.test.ts): real `parley worker` processes on a database of the
// test's own, killed with SIGKILL at random moments; a mass send set up through the service; what
// the SMTP peer received, by Message-ID.
import { sql } from 'kysely';
import type { Actor } from '../../src/crm/index.ts';
import type { Deps } from '../../src/deps.ts';
import { recoverStuck } from '../../src/sending/delivery.ts';
import { createMassEmail, type MassEmailInput } from '../../src/sending/mass.service.ts';
import { saveRelay } from '../../src/sending/relays.ts';
import { adminActor, createTestOrg, insertTemplate, moduleId } from '../support/app.ts';
import type { CaptureServer } from '../support/mail-peers.ts';
import { type ParleyProcess, startParley } from '../support/processes.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A real worker process on the test's own database. */
export function startWorker(own: { url: string; deps: Deps }): Promise<ParleyProcess> {
  return startParley('worker', { databaseUrl: own.url, secret: own.deps.config.secret as string });
}

/** Polls `test` every 20 ms until it holds or `ms` pass; answers whether it held. */
export async function waitUntil(test: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await test()) return true;
    if (Date.now() >= end) return false;
    await sleep(20);
  }
}

/** Every process still running is killed (afterAll: a failed test must leave none behind). */
export async function killAll(ps: Iterable<ParleyProcess>): Promise<void> {
  await Promise.all([...ps].map((p) => p.stop('SIGKILL')));
}

export interface KillPlan {
  kills: number;
  /** How many workers run at once: a random count in [min, max], drawn anew after each kill. */
  parallel: [number, number];
  /**
   * Waits for the moment of the next kill (e.g. some progress of the work); by default a random
   * moment up to 1.5 s after a worker is up and the previous kill.
   */
  moment?: () => Promise<unknown>;
  /** Runs before each wait: gives the workers more to do when what they had is done. */
  feed?: () => Promise<void>;
  /** Runs after each kill (e.g. what the lapse of the dead worker's leases would do, at once). */
  afterKill?: (dead: ParleyProcess) => Promise<void>;
  deadlineMs: number;
}

/**
 * Worker processes (tracked in `live`, for afterAll) killed with SIGKILL one at a time at random
 * moments, each replaced at once, `plan.kills` times; replacements start while the others work, so
 * a slow start costs little. At the end every worker still running is killed too (counted).
 * Answers the number of kills; afterwards no worker of this plan runs.
 */
export async function killRandomly(
  own: { url: string; deps: Deps },
  live: Set<ParleyProcess>,
  plan: KillPlan,
): Promise<number> {
  const alive = new Set<ParleyProcess>();
  let starting = 0;
  const failed: Error[] = [];
  const spawnOne = () => {
    starting++;
    startWorker(own)
      .then((w) => {
        live.add(w);
        alive.add(w);
        w.child.once('exit', () => {
          alive.delete(w);
          live.delete(w);
        });
      })
      .catch((e: Error) => failed.push(e))
      .finally(() => starting--);
  };
  const end = Date.now() + plan.deadlineMs;
  const [min, max] = plan.parallel;
  let kills = 0;
  while (kills < plan.kills) {
    const want = min + Math.floor(Math.random() * (max - min + 1));
    while (alive.size + starting < want) spawnOne();
    await waitUntil(() => alive.size > 0 || failed.length > 0 || Date.now() > end, plan.deadlineMs);
    if (failed.length) throw failed[0];
    if (Date.now() > end) throw new Error(`only ${kills} of ${plan.kills} kills in ${plan.deadlineMs} ms`);
    await plan.feed?.();
    await (plan.moment ? plan.moment() : sleep(Math.random() * 1500));
    const victims = [...alive];
    if (!victims.length) throw new Error('every worker exited by itself (see its output above)');
    const victim = victims[Math.floor(Math.random() * victims.length)];
    await victim.stop('SIGKILL');
    kills++;
    await plan.afterKill?.(victim);
  }
  await waitUntil(() => starting === 0, 120_000);
  kills += alive.size;
  await killAll(alive);
  if (failed.length) throw failed[0];
  return kills;
}

export interface SendOrg {
  orgId: string;
  admin: Actor;
  contactsModuleId: string;
  templateId: string;
}

/** An enterprise org sending through `smtp`, with `n` contacts r1..rn@sink.example. */
export async function sendingOrg(deps: Deps, smtp: CaptureServer, n: number): Promise<SendOrg> {
  const o = await createTestOrg(deps, { edition: 'enterprise' });
  const admin = adminActor(o);
  // The test's own database: room for big sends and every follow-up.
  await deps.db.updateTable('orgs').set({ mass_email_addon: 1_000_000 }).where('id', '=', o.orgId).execute();
  await deps.db
    .updateTable('edition_limits')
    .set({ mass_addon_max: 1_000_000, followups_per_mass: 5 })
    .where('edition', '=', 'enterprise')
    .execute();
  await saveRelay(deps, admin, {
    host: '127.0.0.1',
    port: smtp.port,
    security: 'none',
    maxConnections: 4,
    maxPerSecond: 100_000,
  });
  const modId = await moduleId(deps, o.orgId, 'contacts');
  const templateId = await insertTemplate(deps, o.orgId, 'contacts', {
    name: 'Kill',
    subject: 'Hi {{ contact.last_name }}',
    html: '<p>Hi {{ contact.last_name }}</p>',
    text: 'Hi {{ contact.last_name }}',
    createdBy: o.adminId,
  });
  await sql`INSERT INTO records (org_id, module_id, owner_id, data)
    SELECT ${o.orgId}, ${modId}, ${o.adminId}, jsonb_build_object('last_name', 'R' || g, 'email', 'r' || g || '@sink.example')
    FROM generate_series(1, ${n}) g`.execute(deps.db);
  return { orgId: o.orgId, admin, contactsModuleId: modId, templateId };
}

/** A mass email to every contact of the org, sent now (follow-ups as given). */
export function massSend(deps: Deps, org: SendOrg, more: Partial<MassEmailInput> = {}): Promise<string> {
  return createMassEmail(deps, org.admin, {
    module: 'contacts',
    name: 'Kill test',
    templateId: org.templateId,
    from: { kind: 'user' },
    audience: {
      kind: 'criteria',
      criteria: { conditions: [{ field: 'last_name', op: 'starts_with', value: 'R' }] },
    },
    ...more,
  });
}

/**
 * Rows of these mass emails a worker may still take (queued or deferred; with `sending`, also those
 * claimed); a mass email not launched yet counts as infinitely many.
 */
export async function pending(deps: Deps, massIds: string[], sending = false): Promise<number> {
  if (!massIds.length) return 0;
  const r = await sql<{ unlaunched: number; n: number }>`
    SELECT (SELECT count(*)::int FROM mass_emails WHERE id = ANY(${massIds}::uuid[]) AND started_at IS NULL) AS unlaunched,
      (SELECT count(*)::int FROM messages WHERE mass_email_id = ANY(${massIds}::uuid[])
        AND status IN ('queued', 'deferred' ${sending ? sql`, 'sending'` : sql``})) AS n`.execute(deps.db);
  return r.rows[0].unlaunched ? Number.POSITIVE_INFINITY : r.rows[0].n;
}

/**
 * After the kills: what a live worker's recovery does 10 minutes on (no worker runs now, so at
 * once: rows never handed to SMTP go back to the queue, the rest become unknown), then workers
 * restarted finish the sends and stop cleanly (SIGTERM records what is in flight). Answers how many
 * rows were unknown once recovered (clean stops must add none).
 */
export async function restartAndFinish(
  own: { url: string; deps: Deps },
  live: Set<ParleyProcess>,
  massIds: string[],
  deadlineMs: number,
): Promise<{ unknownAfterRecovery: number }> {
  await recoverStuck(own.deps, 0);
  const unknownAfterRecovery = await statusCount(own.deps, massIds, 'unknown');
  const finishers = await Promise.all([startWorker(own), startWorker(own)]);
  for (const w of finishers) live.add(w);
  await waitUntil(async () => (await pending(own.deps, massIds, true)) === 0, deadlineMs);
  await Promise.all(finishers.map((w) => w.stop('SIGTERM')));
  for (const w of finishers) live.delete(w);
  return { unknownAfterRecovery };
}

export const statusCount = async (deps: Deps, massIds: string[], status: string) =>
  (
    await sql<{ n: number }>`SELECT count(*)::int AS n FROM messages
      WHERE mass_email_id = ANY(${massIds}::uuid[]) AND status = ${status}`.execute(deps.db)
  ).rows[0].n;

/** How many times each Message-ID reached the SMTP peer. */
export function arrivals(smtp: CaptureServer): Map<string, number> {
  const arrived = new Map<string, number>();
  for (const m of smtp.messages) {
    const mid = /^Message-ID:\s*(<[^>]+>)/im.exec(m.raw.toString('latin1'))?.[1] ?? '';
    arrived.set(mid, (arrived.get(mid) ?? 0) + 1);
  }
  return arrived;
}

export interface SendOutcome {
  /** Rows per status (sent and unknown are the only ones allowed at the end). */
  byStatus: Record<string, number>;
  sent: number;
  unknown: number;
  /** Unknown rows whose message never reached the peer: marked for handover, never handed over. */
  unknownNotArrived: number;
  /** Recipients (records) without a row, or whose row ended neither sent nor unknown, or sent but never arrived. */
  lost: number;
  /** Message-IDs that arrived more than once, and records with more than one row. */
  duplicated: number;
  /** Records the send should have reached. */
  recipients: number;
}

/**
 * Judges one mass email (or follow-up) once no worker runs: every expected record has exactly one
 * row, ending sent (arrived exactly once) or unknown (arrived at most once).
 */
export async function judgeSend(
  deps: Deps,
  massId: string,
  expectedRecords: readonly string[],
  arrived: Map<string, number>,
): Promise<SendOutcome> {
  const rows = (
    await sql<{ record_id: string; status: string; message_id_header: string }>`
      SELECT record_id, status, message_id_header FROM messages WHERE mass_email_id = ${massId}`.execute(
      deps.db,
    )
  ).rows;
  const perRecord = new Map<string, typeof rows>();
  for (const r of rows) perRecord.set(r.record_id, [...(perRecord.get(r.record_id) ?? []), r]);
  const byStatus: Record<string, number> = {};
  for (const r of rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  let lost = 0;
  let duplicated = 0;
  let unknownNotArrived = 0;
  for (const rec of expectedRecords) {
    const mine = perRecord.get(rec) ?? [];
    if (mine.length > 1) duplicated++;
    const r = mine[0];
    if (!r) {
      lost++;
      continue;
    }
    const n = arrived.get(r.message_id_header) ?? 0;
    if (n > 1) duplicated++;
    if (r.status === 'sent' && n === 0) lost++;
    else if (r.status === 'unknown' && n === 0) unknownNotArrived++;
    else if (r.status !== 'sent' && r.status !== 'unknown') lost++;
  }
  const expected = new Set(expectedRecords);
  // A row for a record the send should not have reached counts as a duplicate send.
  duplicated += [...perRecord.keys()].filter((k) => !expected.has(k)).length;
  return {
    byStatus,
    sent: byStatus.sent ?? 0,
    unknown: byStatus.unknown ?? 0,
    unknownNotArrived,
    lost,
    duplicated,
    recipients: expectedRecords.length,
  };
}
