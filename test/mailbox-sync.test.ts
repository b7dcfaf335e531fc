// Mailbox sync against a real Dovecot (IMAP, POP3, LMTP) and a real PostgreSQL of its own (the
// workers started here take every due account of their database).
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../src/crm/access.ts';
import type { Deps } from '../src/deps.ts';
import { type AccountInput, createAccount } from '../src/mailbox/accounts.service.ts';
import { claimAccount, startMailboxSync, syncAccountOnce } from '../src/mailbox/sync/worker.ts';
import { createTestOrg, ownDatabase, type TestOrg } from './support/app.ts';
import { type Dovecot, rawMail, startDovecot, tcpProxy } from './support/dovecot.ts';

let dov: Dovecot;
let deps: Deps & { close(): Promise<void> };
let org: TestOrg;
let actor: Actor;
let n = 0;

beforeAll(async () => {
  const users = Array.from({ length: 16 }, (_, i) => ({ user: `u${i}@test.local`, password: `pw-${i}` }));
  dov = await startDovecot({ users });
  deps = (await ownDatabase()).deps;
  org = await createTestOrg(deps);
  actor = {
    orgId: org.orgId,
    userId: org.adminId,
    isAdmin: true,
    permissions: {} as Actor['permissions'],
    timeZone: 'UTC',
    locale: 'en',
  };
});

afterAll(async () => {
  await deps?.close();
  await dov?.stop();
});

/** A mailbox user of the Dovecot to itself, and a Parley account for it. */
async function account(over: Partial<AccountInput> = {}) {
  const i = n++;
  const user = dov.users[i].user;
  const a = await createAccount(deps, actor, {
    protocol: 'imap',
    host: '127.0.0.1',
    port: dov.imapPort,
    security: 'none',
    username: user,
    secret: dov.users[i].password,
    emailAddress: user,
    backfillDays: 30,
    ...over,
  });
  return { id: a.id, user };
}

const mail = (user: string, subject: string, extra: Partial<Parameters<typeof rawMail>[0]> = {}) =>
  rawMail({ from: 'customer@remote.example', to: user, subject, ...extra });

async function locations(accountId: string) {
  return (
    await sql<{
      folder: string;
      uid: number;
      uidl: string | null;
      direction: string;
      seen: boolean;
      subject: string;
    }>`
      SELECT l.folder, l.uid, l.uidl, l.direction, l.seen, m.subject
      FROM mail_locations l JOIN mail_messages m ON m.id = l.mail_id
      WHERE l.account_id = ${accountId} ORDER BY l.folder, l.uid, m.subject`.execute(deps.db)
  ).rows;
}

const accountRow = (id: string) =>
  deps.db.selectFrom('mailbox_accounts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

describe('IMAP sync', () => {
  it('backfills the window only, then fetches just what is new, marks Sent and own mail out', async () => {
    const a = await account();
    const old = new Date(Date.now() - 60 * 86_400_000);
    dov.writeMaildir(a.user, 'INBOX', [mail(a.user, 'too old', { date: old })], { receivedAt: old });
    dov.writeMaildir(a.user, 'INBOX', [mail(a.user, 'recent 1'), mail(a.user, 'recent 2')]);
    dov.writeMaildir(a.user, 'INBOX', [
      rawMail({ from: a.user, to: 'x@remote.example', subject: 'own copy' }),
    ]);
    dov.writeMaildir(
      a.user,
      'Sent',
      [rawMail({ from: 'Me <alias@test.local>', to: 'c@remote.example', subject: 'sent one' })],
      {
        seen: true,
      },
    );

    const first = await syncAccountOnce(deps, a.id);
    expect(first?.fetched).toBe(4);
    let locs = await locations(a.id);
    expect(locs.map((l) => [l.folder, l.subject, l.direction, l.seen])).toEqual([
      ['INBOX', 'recent 1', 'in', false],
      ['INBOX', 'recent 2', 'in', false],
      ['INBOX', 'own copy', 'out', false],
      ['Sent', 'sent one', 'out', true],
    ]);
    const row = await accountRow(a.id);
    expect(row).toMatchObject({ backfill_done: true, failures: 0, error_code: null, lease_owner: null });
    expect(row.last_sync_at).not.toBeNull();

    // Nothing new: nothing fetched.
    expect((await syncAccountOnce(deps, a.id))?.fetched).toBe(0);

    await dov.deliver(a.user, mail(a.user, 'new over LMTP'));
    const second = await syncAccountOnce(deps, a.id);
    expect(second?.fetched).toBe(1);
    locs = await locations(a.id);
    expect(locs.map((l) => l.subject)).toContain('new over LMTP');
    expect(locs).toHaveLength(5);
  });

  it('reads flag changes incrementally (CONDSTORE): seen on the server becomes seen here', async () => {
    const a = await account();
    dov.writeMaildir(a.user, 'INBOX', [mail(a.user, 'one'), mail(a.user, 'two')]);
    await syncAccountOnce(deps, a.id);
    expect((await locations(a.id)).map((l) => l.seen)).toEqual([false, false]);
    dov.doveadm(['flags', 'add', '-u', a.user, '\\Seen', 'mailbox', 'INBOX', 'uid', '2']);
    const s = await syncAccountOnce(deps, a.id);
    expect(s).toMatchObject({ fetched: 0, flagsRead: 1 });
    expect((await locations(a.id)).map((l) => [l.subject, l.seen])).toEqual([
      ['one', false],
      ['two', true],
    ]);
  });

  it('resyncs cleanly after a UIDVALIDITY change: new UIDs, no duplicates', async () => {
    const a = await account();
    dov.writeMaildir(a.user, 'INBOX', [
      mail(a.user, 'a'),
      mail(a.user, 'b'),
      mail(a.user, 'c', { messageId: null }),
    ]);
    await syncAccountOnce(deps, a.id);
    const before = await locations(a.id);
    const folder = await deps.db
      .selectFrom('mailbox_folders')
      .selectAll()
      .where('account_id', '=', a.id)
      .where('path', '=', 'INBOX')
      .executeTakeFirstOrThrow();
    dov.resetUidValidity(a.user, 'INBOX');
    const s = await syncAccountOnce(deps, a.id);
    expect(s?.fetched).toBe(3);
    const after = await locations(a.id);
    expect(after.map((l) => l.subject)).toEqual(before.map((l) => l.subject));
    const folderAfter = await deps.db
      .selectFrom('mailbox_folders')
      .selectAll()
      .where('account_id', '=', a.id)
      .where('path', '=', 'INBOX')
      .executeTakeFirstOrThrow();
    expect(folderAfter.uidvalidity).not.toBe(folder.uidvalidity);
    const stored = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM mail_messages
      WHERE org_id = ${org.orgId} AND subject IN ('a', 'b', 'c')`.execute(deps.db);
    expect(stored.rows[0].n).toBe(3);
  });

  it('loses nothing and repeats nothing when the connection drops mid-sync', async () => {
    const proxy = await tcpProxy(dov.imapPort);
    const a = await account({ port: proxy.port });
    const subjects = Array.from({ length: 40 }, (_, i) => `bulk ${String(i).padStart(2, '0')}`);
    dov.writeMaildir(
      a.user,
      'INBOX',
      subjects.map((s) => mail(a.user, s)),
    );
    // Cut every connection once the second batch of 5 has been stored.
    let batches = 0;
    const { syncImap } = await import('../src/mailbox/sync/imap.ts');
    const { openImap } = await import('../src/mailbox/sync/connect.ts');
    const client = await openImap({
      protocol: 'imap',
      host: '127.0.0.1',
      port: proxy.port,
      security: 'none',
      username: a.user,
      auth: 'password',
      secret: dov.users.find((u) => u.user === a.user)?.password as string,
    });
    const row = await accountRow(a.id);
    await expect(
      syncImap(deps, row, client, {
        batchSize: 5,
        onBatch: () => {
          if (++batches === 2) proxy.cut();
        },
      }),
    ).rejects.toThrow();
    client.close();
    const partial = await locations(a.id);
    expect(partial.length).toBeGreaterThanOrEqual(10);
    expect(partial.length).toBeLessThan(40);

    const s = await syncAccountOnce(deps, a.id, { batchSize: 5 });
    expect(s?.fetched).toBe(40 - partial.length);
    const all = await locations(a.id);
    expect(all.map((l) => l.subject)).toEqual(subjects);
    expect(new Set(all.map((l) => l.uid)).size).toBe(40);
    await proxy.close();
  });

  it('pauses the account on bad credentials, with the auth code for the user', async () => {
    const a = await account({ secret: 'wrong-password' });
    expect(await syncAccountOnce(deps, a.id)).toBeNull();
    const row = await accountRow(a.id);
    expect(row).toMatchObject({ state: 'paused', error_code: 'auth', failures: 1, lease_owner: null });
    expect(row.error_message).toMatch(/refused the user name, password or token/);
    // Paused: not claimed again.
    expect(await syncAccountOnce(deps, a.id)).toBeNull();
  });

  it('reports a TLS failure (self-signed certificate) and retries later', async () => {
    const a = await account({ security: 'tls', port: dov.imapsPort });
    await syncAccountOnce(deps, a.id);
    const row = await accountRow(a.id);
    expect(row).toMatchObject({ state: 'active', error_code: 'tls', failures: 1 });
    expect(row.next_sync_at.getTime()).toBeGreaterThan(Date.now() + 20_000);
  });
});

describe('POP3 sync', () => {
  it('fetches new messages by UIDL within the window, once', async () => {
    const a = await account({ protocol: 'pop3', port: dov.pop3Port });
    const old = new Date(Date.now() - 90 * 86_400_000);
    dov.writeMaildir(a.user, 'INBOX', [mail(a.user, 'pop old', { date: old })], { receivedAt: old });
    dov.writeMaildir(a.user, 'INBOX', [
      mail(a.user, 'pop 1'),
      rawMail({ from: a.user, to: 'z@remote.example', subject: 'pop own' }),
    ]);
    expect((await syncAccountOnce(deps, a.id))?.fetched).toBe(2);
    await dov.deliver(a.user, mail(a.user, 'pop 2'));
    expect((await syncAccountOnce(deps, a.id))?.fetched).toBe(1);
    expect((await syncAccountOnce(deps, a.id))?.fetched).toBe(0);
    const locs = await locations(a.id);
    expect(locs.map((l) => [l.subject, l.direction, l.uid === null && !!l.uidl])).toEqual([
      ['pop 1', 'in', true],
      ['pop 2', 'in', true],
      ['pop own', 'out', true],
    ]);
  });
});

describe('the sync worker', () => {
  it('gives an account to one worker at a time', async () => {
    const a = await account();
    const [x, y] = await Promise.all([
      claimAccount(deps, 'worker-x', 60, a.id),
      claimAccount(deps, 'worker-y', 60, a.id),
    ]);
    expect([x, y].filter(Boolean)).toHaveLength(1);
    await sql`UPDATE mailbox_accounts SET lease_owner = NULL, lease_until = NULL, state = 'paused'
      WHERE id = ${a.id}`.execute(deps.db);
  });

  it('takes over an account whose worker died holding it at once, not at its next sync', async () => {
    await sql`UPDATE mailbox_accounts SET state = 'paused'`.execute(deps.db);
    const a = await account();
    const held = (until: string) => sql`UPDATE mailbox_accounts SET lease_owner = 'dead-worker',
      lease_until = now() + ${until}::interval, next_sync_at = now() + interval '1 hour' WHERE id = ${a.id}`;
    await held('30 seconds').execute(deps.db); // a live holder: left alone
    expect(await claimAccount(deps, 'worker-z', 60)).toBeNull();
    await sql`UPDATE mailbox_accounts SET lease_owner = NULL, lease_until = NULL WHERE id = ${a.id}`.execute(
      deps.db,
    ); // released and not due: left alone
    expect(await claimAccount(deps, 'worker-z', 60)).toBeNull();
    await held('-1 second').execute(deps.db); // its holder died: lapsed
    expect((await claimAccount(deps, 'worker-z', 60))?.id).toBe(a.id);
    await sql`UPDATE mailbox_accounts SET lease_owner = NULL, lease_until = NULL, state = 'paused'
      WHERE id = ${a.id}`.execute(deps.db);
  });

  it('shares accounts between two workers, holds them in IDLE, and syncs new mail as it arrives', async () => {
    // Only the accounts of this test are due.
    await sql`UPDATE mailbox_accounts SET state = 'paused'`.execute(deps.db);
    const accounts = [await account(), await account(), await account()];
    for (const a of accounts) dov.writeMaildir(a.user, 'INBOX', [mail(a.user, `hello ${a.user}`)]);
    const synced = new Map<string, string[]>();
    const waiters: { test: () => boolean; resolve: () => void }[] = [];
    const onSynced = (worker: string) => (id: string) => {
      synced.set(id, [...(synced.get(id) ?? []), worker]);
      for (const w of waiters) if (w.test()) w.resolve();
    };
    const until = (test: () => boolean) =>
      test() ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ test, resolve }));
    const opts = { tickMs: 100, checkMs: 200, leaseSeconds: 30, pollSeconds: 600 };
    const w1 = startMailboxSync(deps, { ...opts, workerId: 'w1', onSynced: onSynced('w1') });
    const w2 = startMailboxSync(deps, { ...opts, workerId: 'w2', onSynced: onSynced('w2') });
    try {
      await until(() => accounts.every((a) => synced.has(a.id)));
      const held = [...w1.held(), ...w2.held()];
      expect(held.sort()).toEqual(accounts.map((a) => a.id).sort());
      for (const a of accounts) expect(synced.get(a.id)).toHaveLength(1);

      // IDLE: new mail is synced by the worker holding the account, without waiting for a poll.
      const target = accounts[1];
      const holder = w1.held().includes(target.id) ? 'w1' : 'w2';
      await dov.deliver(target.user, mail(target.user, 'pushed'));
      await until(() => (synced.get(target.id)?.length ?? 0) >= 2);
      expect(synced.get(target.id)).toEqual([holder, holder]);
      expect((await locations(target.id)).map((l) => l.subject)).toContain('pushed');

      // "Sync now" on a held account is noticed by its holder.
      await sql`UPDATE mailbox_accounts SET next_sync_at = now() WHERE id = ${accounts[0].id}`.execute(
        deps.db,
      );
      await until(() => (synced.get(accounts[0].id)?.length ?? 0) >= 2);
    } finally {
      await Promise.all([w1.stop(), w2.stop()]);
    }
    const rows = await deps.db
      .selectFrom('mailbox_accounts')
      .select(['lease_owner'])
      .where(
        'id',
        'in',
        accounts.map((a) => a.id),
      )
      .execute();
    expect(rows.every((r) => r.lease_owner === null)).toBe(true);
  });

  it('polls a mailbox when not holding it in IDLE, and lets it go between syncs', async () => {
    await sql`UPDATE mailbox_accounts SET state = 'paused'`.execute(deps.db);
    const a = await account();
    let syncs = 0;
    let notify: (() => void) | null = null;
    const w = startMailboxSync(deps, {
      workerId: 'poller',
      idle: false,
      tickMs: 100,
      pollSeconds: 1,
      onSynced: () => {
        syncs++;
        notify?.();
      },
    });
    const synced = (n: number) =>
      new Promise<void>((resolve) => {
        notify = () => syncs >= n && resolve();
        notify();
      });
    try {
      await synced(1);
      await dov.deliver(a.user, mail(a.user, 'polled'));
      await synced(3); // a poll that may have started before the delivery, then one after it
      expect((await locations(a.id)).map((l) => l.subject)).toContain('polled');
    } finally {
      await w.stop();
    }
    expect((await accountRow(a.id)).lease_owner).toBeNull();
  });
});
