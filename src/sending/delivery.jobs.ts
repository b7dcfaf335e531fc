// The delivery worker: loops over deliverDue when woken (NOTIFY on DELIVERY_CHANNEL, sent by
// wakeDelivery after messages are queued) and every few seconds for retries that came due; marks
// messages of dead workers unknown once a minute. Any number of processes may run it: claims use
// SKIP LOCKED and the recovery is one idempotent UPDATE.
import pg from 'pg';
import type { Deps } from '../deps.ts';
import {
  closeSignPool,
  DELIVERY_CHANNEL,
  type DeliveryRenderer,
  deliverDue,
  recoverStuck,
} from './delivery.ts';
import { closeRelayTransports } from './transport.ts';

export interface DeliveryWorkerOptions {
  connectionString: string;
  /** Look for due messages at least this often (retries, a missed NOTIFY). */
  pollMs?: number;
  /** Messages claimed per deliverDue call (200: what is rendered and signed at once stays small in
   * memory, measured at no cost in throughput against 500). */
  batchSize?: number;
  /** deliverDue loops running at once in this process (one batch can wait on SMTP while another is claimed). */
  loops?: number;
  recoverEveryMs?: number;
  render?: DeliveryRenderer;
  /** Only this org's messages (tests share one database). */
  orgId?: string;
  isStopping?: () => boolean;
}

export interface DeliveryWorker {
  /** Runs deliverDue soon (what a NOTIFY does). */
  wake(): void;
  /** Finishes the batches in flight, then closes connections and signing threads. */
  stop(): Promise<void>;
}

export function startDeliveryWorker(deps: Deps, opts: DeliveryWorkerOptions): DeliveryWorker {
  const pollMs = opts.pollMs ?? 5000;
  const batchSize = opts.batchSize ?? 200;
  const loops = Math.max(1, opts.loops ?? 2);
  let stopped = false;
  let wakeups: (() => void)[] = [];
  let woken = false;

  const wake = () => {
    woken = true;
    const w = wakeups;
    wakeups = [];
    for (const f of w) f();
  };

  const idle = (ms: number) =>
    new Promise<void>((resolve) => {
      if (woken || stopped) {
        woken = false;
        resolve();
        return;
      }
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      wakeups.push(done);
    });

  async function loop() {
    while (!stopped) {
      let full = false;
      try {
        const c = await deliverDue(deps, { limit: batchSize, render: opts.render, orgId: opts.orgId });
        // Released messages (beyond this worker's share of a relay's rate) are not more work now.
        full = c.claimed - c.released >= batchSize;
        if (c.claimed) deps.log.debug({ delivery: c }, 'delivery batch');
      } catch (err) {
        if (!opts.isStopping?.()) deps.log.error({ err }, 'delivery batch failed');
      }
      // A full batch means more are due: go on at once. The wait is jittered (±20 %) so that the
      // loops of several workers never settle into a fixed order of who polls first.
      if (!full) await idle(pollMs * (0.8 + 0.4 * Math.random()));
      woken = false;
    }
  }

  // LISTEN on a connection of its own; re-established after a loss (polling covers the gap). A
  // loss is only worth a warning when it lasts: on Ctrl-C the embedded Postgres drops connections
  // a moment before this process hears the signal itself.
  let listener: pg.Client | null = null;
  let relisten: NodeJS.Timeout | null = null;
  let failures = 0;
  const retry = (err: Error) => {
    failures++;
    const log = failures >= 3 && !opts.isStopping?.() ? deps.log.warn : deps.log.debug;
    log.call(
      deps.log,
      { err: { message: err.message }, failures },
      'delivery LISTEN connection lost; retrying',
    );
    if (!stopped) relisten = setTimeout(() => void listen(), 2000);
  };
  async function listen() {
    if (stopped) return;
    const client = new pg.Client({ connectionString: opts.connectionString });
    client.on('notification', (n) => {
      if (n.channel === DELIVERY_CHANNEL) wake();
    });
    client.on('error', (err) => {
      client.end().catch(() => {});
      if (listener === client) listener = null;
      if (!stopped) retry(err);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${DELIVERY_CHANNEL}`);
      listener = client;
      failures = 0;
      wake(); // anything queued while not listening
    } catch (err) {
      client.end().catch(() => {});
      if (!stopped) retry(err as Error);
    }
  }
  void listen();

  const recoverTimer = setInterval(() => {
    recoverStuck(deps)
      .then(
        (n) => n && deps.log.warn({ count: n }, 'messages left sending by a stopped worker marked unknown'),
      )
      .catch((err) => {
        if (!opts.isStopping?.()) deps.log.error({ err }, 'delivery recovery failed');
      });
  }, opts.recoverEveryMs ?? 60_000);
  recoverTimer.unref();

  const running = Array.from({ length: loops }, () => loop());

  return {
    wake,
    async stop() {
      stopped = true;
      clearInterval(recoverTimer);
      if (relisten) clearTimeout(relisten);
      wake();
      await Promise.all(running);
      await listener?.end().catch(() => {});
      await closeRelayTransports(deps);
      await closeSignPool(deps);
    },
  };
}
