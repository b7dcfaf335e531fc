// The rollups equal plain SQL over messages and email_events after a random stream of sends, opens,
// clicks (human and machine), bounces, replies and received mail, interleaved, some duplicated,
// followed by two workers at once and by passes that crash after writing; and again after a
// rebuild of one org and of all.
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/pool.ts';
import type { Deps } from '../src/deps.ts';
import { applyFeedEvents, eventsPass, rebuildRollups, sentPass } from '../src/reports/rollups.ts';
import { type NewEmailEvent, recordEvents } from '../src/tracking/events.ts';
import { readEventFeed } from '../src/webhooks/feed.ts';
import { drain, expectRollupsEqualRaw, insertMessage, prng, reportFixture } from './reports-fixture.ts';
import { ownDatabase } from './support/app.ts';

// A database of its own: the cursors are global, and other files' workers and sends in the shared
// test database would move them under this file's backdated stream.
let own: Awaited<ReturnType<typeof ownDatabase>>;
let a: Deps & { close(): Promise<void> };
let b: Deps & { close(): Promise<void> };
/** Another pool on this file's database: a second worker process, as far as PostgreSQL can tell. */
function depsOn(url: string): Deps & { close(): Promise<void> } {
  const database = openDatabase(url, 5);
  return { ...own.deps, db: database.db, close: () => database.close() };
}
beforeAll(async () => {
  own = await ownDatabase();
  a = depsOn(own.url);
  b = depsOn(own.url);
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await own?.deps.close();
});

describe('report rollups', () => {
  it('equal the raw counts after a random stream, two workers, crashes and rebuilds', async () => {
    const f = await reportFixture(a);
    const rnd = prng(20261130);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)];
    // Send times move forward (as they do), over three days, in steps of up to ~20 minutes.
    let clock = Date.now() - 3 * 86_400_000;
    const sent: string[] = [];
    const queued: { id: string; tracked: boolean }[] = [];
    const past: NewEmailEvent[] = [];
    let crashes = 0;

    for (let step = 0; step < 600; step++) {
      const x = rnd();
      if (x < 0.22) {
        // a new message, some sent at once, some queued (sent later, or refused and bounced)
        const t = pick(f.templates);
        const useTemplate = rnd() < 0.8;
        const rec = pick(f.records);
        const tracked = rnd() < 0.7;
        clock += Math.floor(rnd() * 1_200_000);
        const now = rnd() < 0.7;
        const id = await insertMessage(a, f.orgId, {
          kind: rnd() < 0.05 ? 'test' : rnd() < 0.5 ? 'mass' : 'individual',
          senderId: pick(f.users),
          moduleId: useTemplate ? t.moduleId : rec.moduleId,
          recordId: rec.id,
          templateId: useTemplate ? t.id : null,
          version: useTemplate ? 1 + Math.floor(rnd() * t.versions) : null,
          tracked,
          sentAt: now ? new Date(clock) : null,
          createdAt: new Date(clock),
        });
        if (now) sent.push(id);
        else queued.push({ id, tracked });
      } else if (x < 0.3 && queued.length) {
        const q = queued.splice(Math.floor(rnd() * queued.length), 1)[0];
        if (rnd() < 0.7) {
          clock += Math.floor(rnd() * 600_000);
          await sql`UPDATE messages SET status = 'sent', sent_at = ${new Date(clock)} WHERE id = ${q.id}`.execute(
            a.db,
          );
          sent.push(q.id);
        } else {
          // refused while sending (5xx): failed, with a bounce, never sent
          await sql`UPDATE messages SET status = 'failed' WHERE id = ${q.id}`.execute(a.db);
          const e: NewEmailEvent = {
            orgId: f.orgId,
            messageId: q.id,
            recordId: null,
            massEmailId: null,
            kind: 'bounced',
            human: true,
            at: new Date(clock),
          };
          await recordEvents(a.db, [e]);
          past.push(e);
        }
      } else if (x < 0.75 && sent.length) {
        // events, written in small transactions like the recorder's, sometimes a duplicate
        const batch: NewEmailEvent[] = [];
        for (let i = 0, n = 1 + Math.floor(rnd() * 4); i < n; i++) {
          if (past.length && rnd() < 0.15) {
            batch.push(pick(past));
            continue;
          }
          const kind = pick([
            'opened',
            'opened',
            'clicked',
            'bounced',
            'replied',
            'received',
            'complained',
          ] as const);
          if (kind === 'received') {
            const rec = pick(f.records);
            batch.push({
              orgId: f.orgId,
              messageId: null,
              recordId: rec.id,
              massEmailId: null,
              kind,
              human: true,
              at: new Date(clock - Math.floor(rnd() * 86_400_000)),
              data: { mailId: randomUUID() },
            });
          } else
            batch.push({
              orgId: f.orgId,
              messageId: pick(sent),
              recordId: null,
              massEmailId: null,
              kind,
              human: kind === 'opened' || kind === 'clicked' ? rnd() < 0.6 : true,
              at: new Date(clock),
            });
        }
        await recordEvents(a.db, batch);
        past.push(...batch);
      } else if (x < 0.97) {
        // both workers at once
        await Promise.all([
          eventsPass(a, 1 + Math.floor(rnd() * 20)),
          eventsPass(b, 1 + Math.floor(rnd() * 20)),
          sentPass(a, { limit: 1 + Math.floor(rnd() * 10), lagMs: 0 }),
          sentPass(b, { limit: 1 + Math.floor(rnd() * 10), lagMs: 0 }),
        ]);
      } else {
        // a worker that dies after writing its counters, before committing: nothing of it stays
        let wrote = false;
        const out = await readEventFeed(a, 'reports:events', 10, async (trx, events) => {
          await applyFeedEvents(
            trx,
            events.map((e) => e.id),
          );
          wrote = true;
          throw new Error('crash');
        }).catch((e: Error) => e);
        if (wrote) {
          expect(out).toBeInstanceOf(Error);
          crashes++;
        }
      }
    }
    expect(crashes).toBeGreaterThan(0);
    await drain(a);
    await expectRollupsEqualRaw(a, f.orgId);

    // A rebuild of the org from raw data gives the same, and so does one of all orgs.
    await sql`UPDATE report_rollups SET sent = sent + 5 WHERE org_id = ${f.orgId}`.execute(a.db);
    await rebuildRollups(a, { orgId: f.orgId });
    await expectRollupsEqualRaw(a, f.orgId);
    await sql`UPDATE report_rollups SET opened = opened + 3 WHERE org_id = ${f.orgId}`.execute(a.db);
    await rebuildRollups(a, { lagMs: 0 });
    await expectRollupsEqualRaw(a, f.orgId);
    // … and the workers carry on from there without counting anything twice.
    const extra = await insertMessage(a, f.orgId, {
      senderId: f.users[0],
      moduleId: f.modules[0],
      recordId: null,
      templateId: null,
      version: null,
      tracked: true,
      sentAt: new Date(), // after the rebuild moved the cursor
    });
    // a send time with microseconds (as now() writes): the cursor must keep them, or it reads it again
    await sql`UPDATE messages SET sent_at = clock_timestamp() WHERE id = ${extra}`.execute(a.db);
    await recordEvents(a.db, [
      {
        orgId: f.orgId,
        messageId: extra,
        recordId: null,
        massEmailId: null,
        kind: 'opened',
        human: true,
        at: new Date(),
      },
    ]);
    await drain(b);
    await expectRollupsEqualRaw(a, f.orgId);
  });
});

describe('report rollups while mail streams in', () => {
  it('equal the raw counts after writers and two workers ran at once', async () => {
    const w = depsOn(own.url);
    try {
      const f = await reportFixture(a);
      const rnd = prng(20261201);
      // Transaction ids about to cross a power of ten while the workers read (ordered as text,
      // '1000' < '999', the feed once skipped events there and read others twice).
      const xid = Number(
        (await sql<{ x: string }>`SELECT pg_current_xact_id()::text AS x`.execute(a.db)).rows[0].x,
      );
      const burn = 10 ** String(xid).length - 150 - xid;
      if (burn > 0 && burn < 50_000)
        await sql`DO $$ BEGIN FOR i IN 1..${sql.lit(burn)} LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$`.execute(
          a.db,
        );
      const sent: string[] = [];
      const queued: string[] = [];
      let writing = true;
      const kinds = ['opened', 'opened', 'clicked', 'bounced', 'replied', 'received'] as const;
      // Many small transactions, some held open a moment (they keep the feed and the horizon back).
      const writer = async (seed: number) => {
        const r = prng(seed);
        for (let i = 0; i < 150; i++) {
          const mine: string[] = [];
          const later: string[] = [];
          await w.db.transaction().execute(async (trx) => {
            const x = r();
            if (x < 0.3 || !sent.length) {
              const t = f.templates[Math.floor(r() * f.templates.length)];
              const now = r() < 0.8;
              const id = (
                await sql<{ id: string }>`
                  INSERT INTO messages (org_id, kind, module_id, template_id, template_version, sender_id,
                    from_address, to_address, subject, message_id_header, transport, status, expires_at, tracked, sent_at)
                  VALUES (${f.orgId}, 'mass', ${t.moduleId}, ${t.id}, 1, ${f.users[Math.floor(r() * 3)]}, 'me@t.example',
                    'you@t.example', 's', ${`<${randomUUID()}@t.example>`}, 'relay', ${now ? 'sent' : 'queued'},
                    now() + interval '1 day', ${r() < 0.7}, ${now ? sql`now()` : null})
                  RETURNING id`.execute(trx)
              ).rows[0].id;
              (now ? mine : later).push(id);
            } else if (x < 0.4 && queued.length) {
              const id = queued.splice(Math.floor(r() * queued.length), 1)[0];
              await sql`UPDATE messages SET status = 'sent', sent_at = now() WHERE id = ${id}`.execute(trx);
              mine.push(id);
            }
            const known = [...sent, ...mine];
            if (known.length) {
              const batch: NewEmailEvent[] = [];
              for (let k = 0, n = 1 + Math.floor(r() * 6); k < n; k++) {
                const kind = kinds[Math.floor(r() * kinds.length)];
                batch.push(
                  kind === 'received'
                    ? {
                        orgId: f.orgId,
                        messageId: null,
                        recordId: f.records[Math.floor(r() * 3)].id,
                        massEmailId: null,
                        kind,
                        human: true,
                        at: new Date(),
                        data: { mailId: `m${Math.floor(r() * 20)}` },
                      }
                    : {
                        orgId: f.orgId,
                        // mostly recent messages, so twins land in transactions running at once
                        messageId: known[Math.max(0, known.length - 1 - Math.floor(r() * 8))],
                        recordId: null,
                        massEmailId: null,
                        kind,
                        human: kind === 'opened' || kind === 'clicked' ? r() < 0.6 : true,
                        at: new Date(),
                      },
                );
              }
              await recordEvents(trx, batch);
            }
            if (r() < 0.3) await sql`SELECT pg_sleep(${r() * 0.02})`.execute(trx);
          });
          sent.push(...mine);
          queued.push(...later);
        }
      };
      const worker = async (deps: typeof a) => {
        while (writing) {
          await eventsPass(deps, 1 + Math.floor(rnd() * 30));
          // a lag: a send time is taken when its transaction begins, before it holds an xid
          await sentPass(deps, { limit: 1 + Math.floor(rnd() * 10), lagMs: 500 });
        }
      };
      const workers = Promise.all([worker(a), worker(b)]);
      await Promise.all([writer(1), writer(2), writer(3)]);
      writing = false;
      await workers;
      await drain(a);
      await expectRollupsEqualRaw(a, f.orgId);
    } finally {
      await w.close();
    }
  }, 60_000);
});
