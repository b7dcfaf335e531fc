// The mailbox sync worker. Accounts are claimed with a lease (SKIP LOCKED, renewed while held), so
// any number of workers share them and never sync one account at once; a worker that dies lets
// its lease lapse and another takes over from the stored cursor. After a sync an IMAP account whose
// server offers IDLE stays connected on its Inbox (new mail is synced as it arrives, and the
// whole account again every poll interval); otherwise it is polled.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { ImapFlow } from 'imapflow';
import { type Selectable, sql } from 'kysely';
import type { MailboxAccountsTable } from '../../db/schema.ts';
import type { Deps } from '../../deps.ts';
import { decryptSecret } from '../../sending/secrets.ts';
import { type MailboxSettings, openImap, openPop3, secretContext } from './connect.ts';
import { backoffMs, SyncError, toSyncError } from './errors.ts';
import { type SyncAccount, type SyncStats, syncImap } from './imap.ts';
import { syncPop3 } from './pop3.ts';

type AccountRow = Selectable<MailboxAccountsTable>;

export interface MailboxSyncOptions {
  workerId?: string;
  /** Seconds between syncs of an account (and full re-syncs of one held in IDLE). */
  pollSeconds?: number;
  /** How often due accounts are looked for. */
  tickMs?: number;
  /** How often a held (IDLE) account renews its lease and checks for "sync now", pause or removal. */
  checkMs?: number;
  leaseSeconds?: number;
  /** Accounts this worker syncs or holds at once. */
  maxSessions?: number;
  /** Stay connected with IDLE where the server offers it. */
  idle?: boolean;
  batchSize?: number;
  isStopping?: () => boolean;
  /** Called after every sync of an account (tests, metrics). */
  onSynced?: (accountId: string, stats: SyncStats) => void;
}

export function settingsOf(deps: Deps, row: AccountRow): MailboxSettings {
  return {
    protocol: row.protocol,
    host: row.host,
    port: row.port,
    security: row.security,
    username: row.username,
    auth: row.auth,
    secret: decryptSecret(deps.config, row.secret_enc, secretContext(row.id)),
  };
}

/** Takes a due account (or the given one, due or not) under a lease for this worker. */
export async function claimAccount(
  deps: Deps,
  workerId: string,
  leaseSeconds: number,
  accountId?: string,
): Promise<AccountRow | null> {
  const r = await sql<AccountRow>`
    UPDATE mailbox_accounts a
    SET lease_owner = ${workerId}, lease_until = now() + make_interval(secs => ${leaseSeconds})
    WHERE a.id = (
      SELECT id FROM mailbox_accounts
      WHERE state = 'active' AND (lease_until IS NULL OR lease_until < now())
        AND ${
          accountId
            ? sql`id = ${accountId}`
            : // A lapsed lease (its worker died holding the account, maybe in IDLE) is taken over at
              // once: waiting for next_sync_at would leave new mail unseen for a poll interval.
              sql`(next_sync_at <= now() OR lease_until < now())`
        }
      ORDER BY next_sync_at
      LIMIT 1
      FOR UPDATE SKIP LOCKED)
    RETURNING a.*`.execute(deps.db);
  return r.rows[0] ?? null;
}

/** Extends the lease; answers null when the lease was lost (or the account paused or removed). */
async function renewLease(deps: Deps, id: string, workerId: string, leaseSeconds: number) {
  const r = await sql<{ due: boolean }>`
    UPDATE mailbox_accounts SET lease_until = now() + make_interval(secs => ${leaseSeconds})
    WHERE id = ${id} AND lease_owner = ${workerId} AND state = 'active'
    RETURNING next_sync_at <= now() AS due`.execute(deps.db);
  return r.rows[0] ?? null;
}

async function releaseLease(deps: Deps, id: string, workerId: string) {
  await sql`UPDATE mailbox_accounts SET lease_owner = NULL, lease_until = NULL
    WHERE id = ${id} AND lease_owner = ${workerId}`.execute(deps.db);
}

async function recordSuccess(deps: Deps, id: string, workerId: string, pollSeconds: number) {
  await sql`UPDATE mailbox_accounts
    SET last_sync_at = now(), next_sync_at = now() + make_interval(secs => ${pollSeconds}), failures = 0,
      error_code = NULL, error_message = NULL, error_at = NULL, backfill_done = true, updated_at = now()
    WHERE id = ${id} AND lease_owner = ${workerId}`.execute(deps.db);
}

/** auth: the account is paused and the user told why; anything else is retried after a backoff. */
async function recordFailure(deps: Deps, row: AccountRow, workerId: string, err: SyncError) {
  const failures = row.failures + 1;
  await sql`UPDATE mailbox_accounts
    SET failures = ${failures}, error_code = ${err.code},
      error_message = ${err.detail ? `${err.message} (${err.detail})` : err.message}, error_at = now(),
      state = ${err.temporary ? row.state : 'paused'},
      next_sync_at = now() + make_interval(secs => ${backoffMs(failures) / 1000}), updated_at = now()
    WHERE id = ${row.id} AND lease_owner = ${workerId}`.execute(deps.db);
}

interface SessionControl {
  workerId: string;
  leaseSeconds: number;
  pollSeconds: number;
  checkMs: number;
  hold: boolean;
  batchSize?: number;
  stopping: () => boolean;
  onSynced?: MailboxSyncOptions['onSynced'];
  /** Set by the session: wakes a held session (stop). */
  poke?: () => void;
}

/** Syncs a claimed account, then holds it in IDLE when allowed; always gives the lease back. */
async function runSession(deps: Deps, row: AccountRow, ctl: SessionControl): Promise<SyncStats | null> {
  const acc: SyncAccount = row;
  let lost = false;
  let client: ImapFlow | null = null;
  const renewTimer = setInterval(
    () => {
      renewLease(deps, row.id, ctl.workerId, ctl.leaseSeconds)
        .then((ok) => {
          if (!ok) {
            // Another worker may take the account now: stop touching it.
            lost = true;
            client?.close();
          }
        })
        .catch(() => {});
    },
    (ctl.leaseSeconds * 1000) / 3,
  );
  let stats: SyncStats | null = null;
  try {
    const settings = settingsOf(deps, row);
    if (settings.protocol === 'pop3') {
      const pop = await openPop3(settings);
      try {
        stats = await syncPop3(deps, acc, pop);
      } finally {
        await pop.quit();
      }
      await recordSuccess(deps, row.id, ctl.workerId, ctl.pollSeconds);
      ctl.onSynced?.(row.id, stats);
      return stats;
    }
    client = await openImap(settings);
    const first = await syncImap(deps, acc, client, { batchSize: ctl.batchSize });
    stats = first;
    await recordSuccess(deps, row.id, ctl.workerId, ctl.pollSeconds);
    ctl.onSynced?.(row.id, first);
    if (!ctl.hold || !client.capabilities.has('IDLE')) return stats;
    await holdIdle(deps, acc, client, first.inbox, ctl, () => lost);
    return stats;
  } catch (err) {
    if (!lost && !ctl.stopping())
      await recordFailure(deps, row, ctl.workerId, toSyncError(err)).catch(() => {});
    deps.log.warn({ account: row.id, code: toSyncError(err).code }, 'mailbox sync failed');
    return stats;
  } finally {
    clearInterval(renewTimer);
    if (client) await client.logout().catch(() => client?.close());
    await releaseLease(deps, row.id, ctl.workerId).catch(() => {});
  }
}

async function holdIdle(
  deps: Deps,
  acc: SyncAccount,
  client: ImapFlow,
  inbox: string,
  ctl: SessionControl,
  lost: () => boolean,
) {
  let newMail = false;
  let wake: (() => void) | null = null;
  const poke = () => wake?.();
  ctl.poke = poke;
  client.on('exists', () => {
    newMail = true;
    poke();
  });
  client.on('close', poke);
  let lastFull = Date.now();
  while (!ctl.stopping() && !lost() && client.usable) {
    // A sync leaves the last folder (Sent) selected; IDLE watches the Inbox.
    if (client.mailbox === false || client.mailbox.path !== inbox)
      await client.mailboxOpen(inbox, { readOnly: true });
    if (!client.idling) client.idle().catch(() => {}); // ends when the next command is sent
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ctl.checkMs);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    wake = null;
    if (ctl.stopping() || lost()) return;
    // The server or network dropped the held connection: sync again soon on a new one.
    if (!client.usable) throw new SyncError('network', 'The connection held for new mail was closed');
    const lease = await renewLease(deps, acc.id, ctl.workerId, ctl.leaseSeconds);
    if (!lease) return; // paused, removed, or taken over
    if (newMail || lease.due || Date.now() - lastFull >= ctl.pollSeconds * 1000) {
      newMail = false;
      const stats = await syncImap(deps, acc, client, { batchSize: ctl.batchSize });
      await recordSuccess(deps, acc.id, ctl.workerId, ctl.pollSeconds);
      lastFull = Date.now();
      ctl.onSynced?.(acc.id, stats);
    }
  }
}

/**
 * One sync of one account now, outside the worker loop (tests, the benchmark, the CLI): claims it
 * under a lease (null when another worker holds it or it is paused), syncs, releases.
 */
export async function syncAccountOnce(
  deps: Deps,
  accountId: string,
  opts: { workerId?: string; batchSize?: number; pollSeconds?: number } = {},
): Promise<SyncStats | null> {
  const workerId = opts.workerId ?? `once-${randomUUID()}`;
  const row = await claimAccount(deps, workerId, 120, accountId);
  if (!row) return null;
  return runSession(deps, row, {
    workerId,
    leaseSeconds: 120,
    pollSeconds: opts.pollSeconds ?? deps.config.mailboxPollSeconds,
    checkMs: 5000,
    hold: false,
    batchSize: opts.batchSize,
    stopping: () => false,
  });
}

export function startMailboxSync(deps: Deps, opts: MailboxSyncOptions = {}) {
  const workerId = opts.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const tickMs = opts.tickMs ?? 2000;
  const maxSessions = opts.maxSessions ?? 10;
  let stopped = false;
  const stopping = () => stopped || (opts.isStopping?.() ?? false);
  const sessions = new Map<string, { done: Promise<unknown>; ctl: SessionControl }>();
  let wakeLoop: (() => void) | null = null;

  const loop = (async () => {
    while (!stopping()) {
      try {
        while (sessions.size < maxSessions && !stopping()) {
          const row = await claimAccount(deps, workerId, opts.leaseSeconds ?? 90);
          if (!row) break;
          const ctl: SessionControl = {
            workerId,
            leaseSeconds: opts.leaseSeconds ?? 90,
            pollSeconds: opts.pollSeconds ?? deps.config.mailboxPollSeconds,
            checkMs: opts.checkMs ?? 5000,
            hold: opts.idle ?? true,
            batchSize: opts.batchSize,
            stopping,
            onSynced: opts.onSynced,
          };
          const done = runSession(deps, row, ctl).finally(() => {
            sessions.delete(row.id);
            wakeLoop?.();
          });
          sessions.set(row.id, { done, ctl });
        }
      } catch (err) {
        if (!stopping()) deps.log.error({ err }, 'mailbox sync worker');
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, tickMs);
        wakeLoop = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wakeLoop = null;
    }
  })();

  return {
    workerId,
    /** Accounts this worker is syncing or holding now. */
    held: () => [...sessions.keys()],
    /** Looks for due accounts now (e.g. after "sync now"). */
    wake: () => wakeLoop?.(),
    async stop() {
      stopped = true;
      wakeLoop?.();
      for (const s of sessions.values()) s.ctl.poke?.();
      await loop;
      await Promise.all([...sessions.values()].map((s) => s.done));
    },
  };
}
