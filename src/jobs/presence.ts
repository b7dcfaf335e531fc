// Which worker processes are alive, so that they can split what must hold across all of them (a
// relay's sending limits: sending/relay-share.ts). Each worker keeps its row's seen_at fresh; a
// row unseen for LIVE_MS is a dead worker's. Times are the database's own (now()), so the
// machines' clocks do not matter.
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Deps } from '../deps.ts';

export interface WorkerView {
  /** This worker's place among the live ones, ordered by id: 0 … count - 1. */
  rank: number;
  /** Live workers, this one included. */
  count: number;
}

export interface Presence {
  readonly id: string;
  /**
   * The live workers as last seen; null while this worker must not count on it: when it has just
   * joined (the others have not made room for it yet) or when its heartbeats fail (the others may
   * take it for dead and have taken its share).
   */
  view(): WorkerView | null;
  /** Called whenever view() changes (a worker joined or left, or this one's heartbeats failed). */
  onChange(listener: () => void): void;
  stop(): Promise<void>;
}

export interface PresenceOptions {
  /** How often the row is refreshed and the others read. */
  intervalMs?: number;
  /** A row not refreshed for this long is a dead worker's. */
  liveMs?: number;
}

const registry = new WeakMap<object, Presence>();
/** pg_advisory_xact_lock key of the presence table ("parley presence"). */
const PRESENCE_LOCK = 0x7061726c;

/** The presence of the worker running on these deps, if it keeps one (workers on a shared database). */
export function presenceOf(deps: Pick<Deps, 'db'>): Presence | undefined {
  return registry.get(deps.db);
}

export async function startPresence(deps: Deps, opts: PresenceOptions = {}): Promise<Presence> {
  const intervalMs = opts.intervalMs ?? 2_000;
  const liveMs = opts.liveMs ?? 4 * intervalMs;
  const id = randomUUID();
  let view: WorkerView | null = null;
  let lastOk = Number.NEGATIVE_INFINITY;
  let stopped = false;
  /** Counted by the others by now (once true, for good). */
  let settled = false;
  const listeners: (() => void)[] = [];
  let seen = 'none';
  // Lapsed two beats before the others would take this worker for dead, so that the listeners
  // (who run at the next beat) act before the others take its share.
  const current = () => (performance.now() - lastOk < liveMs - 2 * intervalMs ? view : null);
  // Listeners hear of every change of the view, including it lapsing while heartbeats fail.
  const keyOf = (v: WorkerView | null) => (v ? `${v.rank}/${v.count}` : 'none');
  const notify = () => {
    const key = keyOf(current());
    if (key === seen) return;
    seen = key;
    for (const l of listeners) l();
  };

  async function beat() {
    // The row refreshed (re-made if it was purged while this process was paused), the other live
    // rows, and how long ago this worker joined; under a lock, so that two workers joining at once
    // cannot both see themselves alone.
    const r = await deps.db.transaction().execute(async (tx) => {
      await sql`SELECT pg_advisory_xact_lock(${PRESENCE_LOCK}::bigint)`.execute(tx);
      return sql<{ others: string[]; age_ms: number }>`
      WITH me AS (
        INSERT INTO worker_presence (id) VALUES (${id})
        ON CONFLICT (id) DO UPDATE SET seen_at = now()
        RETURNING started_at)
      SELECT coalesce((SELECT array_agg(p.id::text) FROM worker_presence p
          WHERE p.seen_at > now() - make_interval(secs => ${liveMs / 1000}) AND p.id <> ${id}), '{}') AS others,
        (SELECT extract(epoch FROM now() - started_at) * 1000 FROM me)::float8 AS age_ms`.execute(tx);
    });
    const { others, age_ms } = r.rows[0];
    lastOk = performance.now();
    // The others read the table every interval: after that (and a margin) they count this worker.
    // Alone, it has nobody to wait for.
    settled ||= others.length === 0 || age_ms > intervalMs + 1_000;
    view = settled ? { rank: others.filter((o) => o < id).length, count: others.length + 1 } : null;
    if (!settled) setTimeout(() => void tick(), intervalMs + 1_100 - age_ms).unref();
    await sql`DELETE FROM worker_presence WHERE seen_at < now() - interval '1 hour'`.execute(deps.db);
  }
  async function tick() {
    if (stopped) return;
    await beat().catch((err) => deps.log.warn({ err }, 'worker presence: heartbeat failed'));
    notify();
  }

  await beat();
  seen = keyOf(current());
  const timer = setInterval(() => void tick(), intervalMs);
  timer.unref();
  const presence: Presence = {
    id,
    view: current,
    onChange: (listener) => void listeners.push(listener),
    async stop() {
      stopped = true;
      clearInterval(timer);
      registry.delete(deps.db);
      await deps.db
        .deleteFrom('worker_presence')
        .where('id', '=', id)
        .execute()
        .catch(() => {});
    },
  };
  registry.set(deps.db, presence);
  return presence;
}
