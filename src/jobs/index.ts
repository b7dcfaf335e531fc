import PgBoss from 'pg-boss';
import { purgeExpiredSessions } from '../crm/index.ts';
import type { Deps } from '../deps.ts';
import { purgeLoginAttempts } from '../http/login-throttle.ts';
import { startResponseWatchWorker } from '../mailbox/inbox/watches.ts';
import { startMailboxSync } from '../mailbox/sync/worker.ts';
import { startReportsWorker } from '../reports/rollups.ts';
import { startDeliveryWorker } from '../sending/delivery.jobs.ts';
import { startMassScheduler } from '../sending/mass.jobs.ts';
import { renderTemplateRows } from '../sending/render-rows.ts';
import { closeRelayTransports } from '../sending/transport.ts';
import { startTriggerWorker } from '../sending/triggers.ts';
import { schedulePurgeOldHits } from '../tracking/retention.ts';
import { startWebhookDispatcher } from '../webhooks/dispatcher.ts';
import { startPresence } from './presence.ts';
import { createQueue } from './queues.ts';

export const PURGE_SESSIONS = 'crm.purge-sessions';

/**
 * The job queue (pg-boss on the same PostgreSQL). Any number of workers may run: pg-boss hands each
 * job to one of them (SKIP LOCKED) and fires each schedule once across all of them.
 */
export async function startWorker(
  deps: Deps,
  connectionString: string,
  isStopping: () => boolean = () => false,
  opts: { shared?: boolean } = {},
) {
  const boss = new PgBoss({ connectionString, schema: 'pgboss', max: 4 });
  // On Ctrl-C the embedded Postgres gets the signal too and drops connections: expected, not an error.
  boss.on('error', (err) => {
    if (!isStopping())
      deps.log.error(
        { err: { message: err.message, code: (err as { code?: string }).code } },
        'job queue error',
      );
  });
  await boss.start();
  await createQueue(boss, PURGE_SESSIONS);
  await boss.schedule(PURGE_SESSIONS, '17 * * * *');
  await boss.work(PURGE_SESSIONS, async () => {
    const n = await purgeExpiredSessions(deps);
    deps.log.info({ purged: n, loginWindows: await purgeLoginAttempts(deps) }, 'expired sessions purged');
  });
  await schedulePurgeOldHits(boss, deps);
  // On a shared database the live workers split each relay's limits (sending/relay-share.ts); a new
  // split closes the transports, and the next batches build them for their new share.
  const presence = opts.shared ? await startPresence(deps) : undefined;
  presence?.onChange(() => void closeRelayTransports(deps));
  // Email delivery: its own loop, woken by NOTIFY (wakeDelivery) and polling for retries.
  // Rows of mass sends are queued without content: the renderer merges them when claimed.
  const delivery = startDeliveryWorker(deps, { connectionString, isStopping, render: renderTemplateRows });
  const mass = startMassScheduler(deps, { isStopping, onLaunched: () => delivery.wake() });
  // Outgoing webhooks and trigger actions follow the email events feed (NOTIFY, then polling).
  const webhooks = startWebhookDispatcher(deps, { connectionString, isStopping });
  const triggers = startTriggerWorker(deps, { connectionString, isStopping });
  // Connected mailboxes: leased accounts, IMAP IDLE where offered, polling otherwise.
  const mailboxes = startMailboxSync(deps, { isStopping });
  // Report rollups follow sent messages and the events feed too.
  const reports = startReportsWorker(deps, { connectionString, isStopping });
  // ResponseWatch: reminders when a watched sent email got no reply in time.
  const watches = startResponseWatchWorker(deps, { connectionString, isStopping });
  return {
    boss,
    delivery,
    stop: async () => {
      await mass.stop();
      await webhooks.stop();
      await triggers.stop();
      await mailboxes.stop();
      await reports.stop();
      await watches.stop();
      await delivery.stop();
      await presence?.stop(); // after the last send: the others take its share only now
      await boss.stop({ graceful: true, timeout: 10_000 });
    },
  };
}
