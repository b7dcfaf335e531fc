// Raw tracking hits are kept 100 days (issue 5), then deleted by a daily job; the per-message totals
// on messages (open_count, clicked_at, …) stay. Deleted in slices so no single transaction holds
// millions of rows.
import { sql } from 'kysely';
import type PgBoss from 'pg-boss';
import type { Deps } from '../deps.ts';
import { createQueue } from '../jobs/queues.ts';

export const PURGE_HITS = 'tracking.purge-hits';
export const HIT_RETENTION_DAYS = 100;
const SLICE = 10_000;

/** Deletes raw hits older than the retention period (of every org) and spent slice ids; returns how many hits. */
export async function purgeOldHits(deps: Deps): Promise<number> {
  const cutoff = new Date(deps.clock.now().getTime() - HIT_RETENTION_DAYS * 86_400_000);
  let total = 0;
  for (;;) {
    const r = await sql`
      DELETE FROM tracking_hits WHERE id IN (
        SELECT id FROM tracking_hits WHERE at < ${cutoff.toISOString()}::timestamptz LIMIT ${SLICE})`.execute(
      deps.db,
    );
    const n = Number(r.numAffectedRows ?? 0);
    total += n;
    if (n < SLICE) break;
  }
  // The recorder's slice ids only matter while a slice may still be retried (minutes at most).
  await sql`DELETE FROM tracking_batches WHERE written_at < ${deps.clock.now()}::timestamptz - interval '1 day'`.execute(
    deps.db,
  );
  return total;
}

/** The daily purge, once across all workers (pg-boss schedules fire once). */
export async function schedulePurgeOldHits(boss: PgBoss, deps: Deps): Promise<void> {
  await createQueue(boss, PURGE_HITS);
  await boss.schedule(PURGE_HITS, '41 3 * * *');
  await boss.work(PURGE_HITS, async () => {
    const n = await purgeOldHits(deps);
    deps.log.info({ purged: n }, 'tracking hits older than 100 days purged');
  });
}
