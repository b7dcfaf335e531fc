import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/db/pool.ts';
import { type Deps, systemClock } from '../../src/deps.ts';
import { closeSignPool, deliverDue } from '../../src/sending/delivery.ts';
import { createTestOrg, queueMessage, testDeps } from '../support/app.ts';
import { type PgProxy, startPgProxy } from '../support/pg-proxy.ts';

// A statement that commits but whose answer never reaches Parley: PostgreSQL crashed, or the
// connection broke, right after the commit. The worker cannot tell that from a statement that never
// ran, so what it does next must be right either way.

const deps = testDeps();
let proxy: PgProxy;
let proxied: Deps & { close(): Promise<void> };

beforeAll(async () => {
  proxy = await startPgProxy(inject('dbUrl'));
  const database = openDatabase(proxy.url, 2);
  proxied = {
    ...deps,
    db: database.db,
    log: pino({ level: 'silent' }),
    config: loadConfig({
      PARLEY_DATABASE_URL: proxy.url,
      PARLEY_LOG_LEVEL: 'silent',
      PARLEY_SECRET: 'test-secret-0123456789-0123456789-abcdef',
    }),
    clock: systemClock,
    close: () => database.close(),
  };
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
});
