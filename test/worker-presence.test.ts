import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { type Presence, presenceOf, startPresence } from '../src/jobs/presence.ts';
import { ownDatabase } from './support/app.ts';
import { until } from './support/mail-peers.ts';

// The live workers' register (relay limits are split between them): real PostgreSQL, short beats.
const own = await ownDatabase(); // a register of this file's own
const deps = own.deps;
const started: Presence[] = [];
afterAll(async () => {
  for (const p of started) await p.stop();
  await deps.close();
});

const INTERVAL = 300;
/** A second worker in the same database: a Deps with its own db key for the registry. */
const other = () => ({ ...deps, db: deps.db.withoutPlugins() });

describe('worker presence', () => {
  it('counts the live workers, makes a newcomer wait until the others have seen it, and forgets the dead', async () => {
    const a = await startPresence(deps, { intervalMs: INTERVAL });
    started.push(a);
    expect(a.view()).toEqual({ rank: 0, count: 1 }); // alone: the whole share at once
    expect(presenceOf(deps)).toBe(a);
    let changes = 0;
    a.onChange(() => changes++);

    const b = await startPresence(other(), { intervalMs: INTERVAL });
    started.push(b);
    expect(b.view()).toBeNull(); // `a` still thinks it is alone
    await until('a sees b', () => a.view()?.count === 2, 5_000);
    await until('b is settled', () => b.view() !== null, 5_000);
    expect(changes).toBe(1);
    const ranks = [a.view()?.rank, b.view()?.rank].sort();
    expect(ranks).toEqual([0, 1]);

    // A worker that died without a word: its row stops being refreshed, then it no longer counts.
    await sql`INSERT INTO worker_presence (id, seen_at) VALUES (gen_random_uuid(), now())`.execute(deps.db);
    await until('a counts the third', () => a.view()?.count === 3, 5_000);
    await until('the dead one is forgotten', () => a.view()?.count === 2, 10_000);

    // A clean stop leaves at once.
    await b.stop();
    await until('a is alone again', () => a.view()?.count === 1, 5_000);
    const rows = await deps.db.selectFrom('worker_presence').select('id').execute();
    expect(rows.map((r) => r.id)).toContain(a.id);
    expect(rows.map((r) => r.id)).not.toContain(b.id);
  });
});
