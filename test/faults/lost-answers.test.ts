import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Deps, systemClock } from '../../src/deps.ts';
import { closeSignPool, deliverDue } from '../../src/sending/delivery.ts';
import { BOUNCE_GUARD_MIN, guardBounces } from '../../src/sending/mass-launch.ts';
import { messageInfoCache } from '../../src/tracking/hits/message-info.ts';
import { createHitRecorder } from '../../src/tracking/hits/recorder.ts';
import { deliverDueWebhooks } from '../../src/webhooks/dispatcher.ts';
import { createEndpoint, sendTestEvent } from '../../src/webhooks/service.ts';
import {
  adminActor,
  createTestOrg,
  insertTemplate,
  moduleId,
  queueMessage,
  type TestOrg,
  testDeps,
} from '../support/app.ts';
import { type PgProxy, startPgProxy } from '../support/pg-proxy.ts';

// A statement that commits but whose answer never reaches Parley: PostgreSQL crashed, or the
// connection broke, right after the commit. The worker cannot tell that from a statement that never
// ran, so what it does next must be right either way.

const deps = testDeps();
let proxy: PgProxy;
let proxied: Deps & { close(): Promise<void> };

beforeAll(async () => {
  proxy = await startPgProxy(inject('dbUrl'));
  proxied = testDeps(systemClock, proxy.url);
});
afterAll(async () => {
  await closeSignPool(proxied);
  await closeSignPool(deps);
  await proxied.close();
  await proxy.close();
  await deps.close();
});

describe('answers lost after the commit', () => {
  it('a claim whose answer was lost goes back to the queue at once; the next run sends each message once', async () => {
    const org = await createTestOrg(deps);
    const queued = [
      await queueMessage(deps, org),
      await queueMessage(deps, org),
      await queueMessage(deps, org),
    ];
    const deferred = await queueMessage(deps, org, { status: 'deferred', attempts: 1 });
    const ids = [...queued, deferred];

    const lost = proxy.loseAnswerTo("SET status = 'sending'");
    await expect(deliverDue(proxied, { orgId: org.orgId })).rejects.toThrow(/terminated/i);
    await lost;
    const rows = await deps.db
      .selectFrom('messages')
      .select(['id', 'status', 'claim_id', 'attempts'])
      .where('id', 'in', ids)
      .execute();
    // The claim did commit (every row carries its id), and it was put back: nothing waits in
    // 'sending' for the stuck-message recovery, ten minutes later.
    expect(rows.every((r) => r.claim_id !== null && r.claim_id === rows[0].claim_id)).toBe(true);
    expect(Object.fromEntries(rows.map((r) => [r.id, [r.status, r.attempts]]))).toEqual({
      [queued[0]]: ['queued', 0],
      [queued[1]]: ['queued', 0],
      [queued[2]]: ['queued', 0],
      [deferred]: ['deferred', 1],
    });

    expect(await deliverDue(deps, { orgId: org.orgId })).toMatchObject({ claimed: 4, sent: 4 });
    const stored = await sql<{ n: number }>`SELECT count(*)::int AS n FROM outbox
      WHERE message_id = ANY(${ids}::uuid[])`.execute(deps.db);
    expect(stored.rows[0].n).toBe(4);
  });

  it('a slice of hits whose commit answer was lost is not written, or counted, twice', async () => {
    const org = await createTestOrg(deps);
    const sentAt = new Date(Date.now() - 86_400_000);
    const id = await queueMessage(deps, org, {
      html: '<p>Hi</p>',
      status: 'sent',
      tracked: true,
      sent_at: sentAt,
      transport: 'outbox',
    });
    // A long flush interval: the test says when to write.
    const recorder = createHitRecorder(proxied, messageInfoCache(proxied), { flushMs: 600_000 });
    try {
      for (let i = 0; i < 3; i++)
        recorder.record({
          at: new Date(Date.now() - i * 60_000),
          messageId: id,
          kind: 'open',
          link: null,
          method: 'GET',
          ip: '203.0.113.9',
          userAgent:
            'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36',
          headers: {},
        });
      const lost = proxy.loseAnswerTo('commit');
      await expect(recorder.flush()).rejects.toThrow(/terminated|connection error/i);
      await lost;
      // It did commit: the three hits are there …
      const hits = async () =>
        (
          await sql<{
            n: number;
          }>`SELECT count(*)::int AS n FROM tracking_hits WHERE message_id = ${id}`.execute(deps.db)
        ).rows[0].n;
      expect(await hits()).toBe(3);
      // … and the retry, which cannot know that, adds nothing.
      await recorder.flush();
      expect(await hits()).toBe(3);
      const m = await deps.db
        .selectFrom('messages')
        .select(['open_count', 'machine_open_count'])
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      expect(m).toEqual({ open_count: 3, machine_open_count: 0 });
      const opened = await deps.db
        .selectFrom('email_events')
        .select((e) => e.fn.countAll<number>().as('n'))
        .where('message_id', '=', id)
        .where('kind', '=', 'opened')
        .executeTakeFirstOrThrow();
      expect(Number(opened.n)).toBe(1);
      expect(recorder.stats).toMatchObject({ received: 3, written: 3, dropped: 0 });
    } finally {
      await recorder.close();
    }
  });

  /** A send past the bounce guard's threshold, with 10 recipients still queued. */
  async function bouncingSend(org: TestOrg): Promise<string> {
    const tpl = await insertTemplate(deps, org.orgId, 'contacts', {
      subject: 'S',
      html: '<p>x</p>',
      text: 'x',
    });
    const now = new Date();
    const mass = (
      await sql<{ id: string }>`
        INSERT INTO mass_emails (org_id, module_id, created_by, name, template_id, from_choice, audience, status, started_at, send_at)
        VALUES (${org.orgId}, ${await moduleId(deps, org.orgId, 'contacts')}, ${org.adminId}, 'Bouncing', ${tpl},
          '{"kind":"user"}', '{"kind":"ids","ids":[]}', 'sending', ${now}, ${now})
        RETURNING id`.execute(deps.db)
    ).rows[0].id;
    const n = BOUNCE_GUARD_MIN + 10;
    await sql`
      INSERT INTO messages (org_id, kind, mass_email_id, from_address, to_address, subject, message_id_header,
        transport, status, sent_at, bounce_kind, next_attempt_at, expires_at)
      SELECT ${org.orgId}, 'mass', ${mass}, 'a@parley.test', 'r' || g || '@bulk.example', 'S',
        '<' || ${mass} || '.' || g || '@parley.test>', 'relay',
        CASE WHEN g > ${n} THEN 'queued' ELSE 'sent' END,
        CASE WHEN g > ${n} THEN NULL ELSE ${now}::timestamptz END,
        CASE WHEN g <= ${n / 10} THEN 'hard' END,
        ${now}, ${new Date(now.getTime() + 86_400_000)}
      FROM generate_series(1, ${n + 10}) g`.execute(deps.db);
    return mass;
  }
  /** What the guard did: the send's state, its queued rows still due, the emails telling its creator. */
  async function pauseState(org: TestOrg, mass: string) {
    const me = await deps.db
      .selectFrom('mass_emails')
      .select(['status', 'stop_reason'])
      .where('id', '=', mass)
      .executeTakeFirstOrThrow();
    const due = await sql<{ n: number }>`SELECT count(*)::int AS n FROM messages
      WHERE mass_email_id = ${mass} AND status = 'queued' AND next_attempt_at <> 'infinity'`.execute(deps.db);
    const told = await sql<{ n: number }>`SELECT count(*)::int AS n FROM messages
      WHERE org_id = ${org.orgId} AND kind = 'system' AND subject LIKE '%"Bouncing" was paused%'`.execute(
      deps.db,
    );
    return { ...me, due: due.rows[0].n, told: told.rows[0].n };
  }
  const paused = { status: 'stopped', stop_reason: 'bounce_rate_too_high', due: 0, told: 1 };

  it('the bounce guard pauses a send all at once: a lost answer leaves it all done or none of it', async () => {
    // The stop's own answer lost: nothing of the pause may stay, or its retry would skip the rest.
    const org = await createTestOrg(deps);
    const first = await bouncingSend(org);
    const lostStop = proxy.loseAnswerTo('bounce_rate_too_high');
    await expect(guardBounces(proxied, org.orgId)).rejects.toThrow(/terminated|connection error/i);
    await lostStop;
    expect(await guardBounces(deps, org.orgId)).toEqual([first]);
    expect(await pauseState(org, first)).toEqual(paused);

    // The commit's answer lost: all of it done, and a retry does nothing more.
    const org2 = await createTestOrg(deps);
    const second = await bouncingSend(org2);
    const lostCommit = proxy.loseAnswerTo('commit');
    await expect(guardBounces(proxied, org2.orgId)).rejects.toThrow(/terminated|connection error/i);
    await lostCommit;
    expect(await pauseState(org2, second)).toEqual(paused);
    expect(await guardBounces(deps, org2.orgId)).toEqual([]);
    expect(await pauseState(org2, second)).toEqual(paused);
  });

  it('webhook deliveries whose claim answer was lost go back at once, the attempt not counted', async () => {
    const got: string[] = [];
    const receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        got.push(String(req.headers['parley-delivery']));
        res.end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    // the receiver is on 127.0.0.1: the operator setting that allows private targets
    const allow = <T extends Deps>(d: T): T => ({
      ...d,
      config: { ...d.config, webhooksAllowPrivate: true },
    });
    try {
      const org = await createTestOrg(deps);
      const admin = adminActor(org);
      const { endpoint } = await createEndpoint(allow(deps), admin, {
        url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
        events: ['opened'],
      });
      const { deliveryId } = await sendTestEvent(deps, admin, endpoint.id);
      const row = () =>
        deps.db
          .selectFrom('webhook_deliveries')
          .select(['status', 'attempts', 'claim_id'])
          .where('id', '=', deliveryId)
          .executeTakeFirstOrThrow();

      const lost = proxy.loseAnswerTo("SET status = 'delivering'");
      await expect(deliverDueWebhooks(allow(proxied), { timeoutMs: 3000 })).rejects.toThrow(
        /terminated|connection error/i,
      );
      await lost;
      // claimed (it carries the claim's id), put back, and no attempt counted for the POST never made
      expect(await row()).toMatchObject({ status: 'pending', attempts: 0, claim_id: expect.any(String) });
      expect(got).toEqual([]);

      await deliverDueWebhooks(allow(deps), { timeoutMs: 3000 });
      expect(got).toEqual([deliveryId]);
      expect(await row()).toMatchObject({ status: 'delivered', attempts: 1 });
    } finally {
      await new Promise((r) => receiver.close(r));
    }
  });
});
