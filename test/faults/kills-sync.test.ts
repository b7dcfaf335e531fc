import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Actor } from '../../src/crm/access.ts';
import { createAccount } from '../../src/mailbox/accounts.service.ts';
import { createTestOrg, ownDatabase } from '../support/app.ts';
import { type Dovecot, rawMail, startDovecot } from '../support/dovecot.ts';
import { scaled } from '../support/mode.ts';
import type { ParleyProcess } from '../support/processes.ts';
import { killAll, killRandomly, sleep, startWorker, waitUntil } from './kills-support.ts';
import { recordFaults } from './tally.ts';

// IMAP sync of connected mailboxes (a real Dovecot) by real `parley worker` processes killed with
// SIGKILL at random moments (mid-fetch, mid-batch, while holding IDLE) and replaced, while mail
// keeps arriving. Afterwards every message on the server is stored exactly once, and each folder's
// stored UIDs and cursor (UIDVALIDITY, last UID, UIDNEXT) are the server's.

const own = await ownDatabase();
const deps = own.deps;
let dov: Dovecot;
const live = new Set<ParleyProcess>();
const USERS = scaled(4, 8);
beforeAll(async () => {
  dov = await startDovecot({
    users: Array.from({ length: USERS }, (_, i) => ({ user: `k${i}@test.local`, password: `pw-${i}` })),
  });
});
afterAll(async () => {
  await killAll(live);
  await deps.close();
  await dov?.stop();
});

/** Message-IDs written to each user's folders (the server's truth, besides its UIDs). */
const written = new Map<string, string[]>();

function write(user: string, folder: 'INBOX' | 'Sent', n: number) {
  const raws: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = `<${randomUUID()}@kill.test>`;
    written.set(user, [...(written.get(user) ?? []), id]);
    raws.push(
      folder === 'Sent'
        ? rawMail({ from: user, to: 'customer@remote.example', subject: `sent ${i}`, messageId: id })
        : rawMail({ from: 'customer@remote.example', to: user, subject: `mail ${i}`, messageId: id }),
    );
  }
  dov.writeMaildir(user, folder, raws);
}

/** The folder as Dovecot has it: UIDVALIDITY, UIDNEXT and every UID. */
function serverFolder(user: string, folder: string) {
  const status = dov.doveadm(['mailbox', 'status', '-u', user, 'uidvalidity uidnext', folder]);
  const uidvalidity = Number(/uidvalidity=(\d+)/.exec(status)?.[1]);
  const uidnext = Number(/uidnext=(\d+)/.exec(status)?.[1]);
  const uids = dov
    .doveadm(['search', '-u', user, 'mailbox', folder, 'ALL'])
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => Number(l.trim().split(/\s+/)[1]))
    .sort((a, b) => a - b);
  return { uidvalidity, uidnext, uids };
}

it('mailbox sync survives workers killed at random moments: each message stored once, cursors as on the server', async () => {
  const org = await createTestOrg(deps);
  const actor: Actor = {
    orgId: org.orgId,
    userId: org.adminId,
    isAdmin: true,
    permissions: {} as Actor['permissions'],
    timeZone: 'UTC',
    locale: 'en',
  };
  const accounts: { id: string; user: string }[] = [];
  for (const u of dov.users) {
    write(u.user, 'INBOX', scaled(400, 1_500));
    write(u.user, 'Sent', scaled(50, 200));
    const a = await createAccount(deps, actor, {
      protocol: 'imap',
      host: '127.0.0.1',
      port: dov.imapPort,
      security: 'none',
      username: u.user,
      secret: u.password,
      emailAddress: u.user,
      backfillDays: 30,
    });
    accounts.push({ id: a.id, user: u.user });
  }
  const stored = async () =>
    (
      await sql<{
        n: number;
      }>`SELECT count(*)::int AS n FROM mail_locations WHERE org_id = ${org.orgId}`.execute(deps.db)
    ).rows[0].n;
  // What the lapse of a dead worker's leases does after 90 s, at once: its accounts can be taken.
  const lapse = (pid?: number) =>
    sql`UPDATE mailbox_accounts SET lease_until = now() - interval '1 second'
      WHERE ${pid === undefined ? sql`true` : sql`lease_owner LIKE ${`%:${pid}:%`}`}`.execute(deps.db);
  const total = () => [...written.values()].reduce((n, ids) => n + ids.length, 0);
  const KILLS = scaled(5, 15);
  const kills = await killRandomly(own, live, {
    kills: KILLS,
    parallel: [1, 3],
    // Mail keeps arriving (workers holding IDLE hear of it at once).
    feed: async () => {
      const u = dov.users[Math.floor(Math.random() * USERS)].user;
      // Inbox only: IDLE watches the Inbox; new Sent mail would wait for the next poll (2 min).
      write(u, 'INBOX', 1 + Math.floor(Math.random() * scaled(100, 400)));
    },
    moment: async () => {
      if (Math.random() < 0.25) {
        await sleep(Math.random() * 1500);
        return;
      }
      const target = (await stored()) + 1 + Math.floor((Math.random() * 2 * total()) / (KILLS + 2));
      await waitUntil(async () => (await stored()) >= Math.min(target, total()), 30_000);
      await sleep(Math.random() * 30);
    },
    afterKill: async (dead) => {
      await lapse(dead.child.pid);
    },
    deadlineMs: scaled(240_000, 480_000),
  });

  // Restart: one worker syncs what is left, then stops cleanly.
  await lapse();
  const w = await startWorker(own);
  live.add(w);
  const synced = await waitUntil(async () => (await stored()) >= total(), scaled(120_000, 300_000));
  await sleep(500); // a duplicate would be written after the count is reached
  await w.stop('SIGTERM');
  live.delete(w);

  let lost = 0;
  let duplicated = 0;
  const mismatched: unknown[] = [];
  for (const a of accounts) {
    for (const folder of ['INBOX', 'Sent']) {
      const server = serverFolder(a.user, folder);
      const uids = (
        await sql<{ uid: number }>`SELECT uid::int AS uid FROM mail_locations
          WHERE account_id = ${a.id} AND folder = ${folder} ORDER BY uid`.execute(deps.db)
      ).rows.map((r) => r.uid);
      const cursor = await deps.db
        .selectFrom('mailbox_folders')
        .select(['uidvalidity', 'uidnext', 'last_uid'])
        .where('account_id', '=', a.id)
        .where('path', '=', folder)
        .executeTakeFirst();
      const have = new Set(uids);
      lost += server.uids.filter((u) => !have.has(u)).length;
      duplicated += uids.length - have.size;
      const want = { uidvalidity: server.uidvalidity, uidnext: server.uidnext, last_uid: server.uidnext - 1 };
      const got = cursor && {
        ...cursor,
        uidvalidity: Number(cursor.uidvalidity),
        uidnext: Number(cursor.uidnext),
      };
      if (JSON.stringify(got) !== JSON.stringify(want) || uids.length !== server.uids.length)
        mismatched.push({ user: a.user, folder, want, got, stored: uids.length, server: server.uids.length });
    }
  }
  // Each message once in the mail store, none missing.
  const ids = [...written.values()].flat();
  const counts = (
    await sql<{ id: string; n: number }>`SELECT message_id_header AS id, count(*)::int AS n FROM mail_messages
      WHERE org_id = ${org.orgId} GROUP BY 1`.execute(deps.db)
  ).rows;
  const byId = new Map(counts.map((c) => [c.id, c.n]));
  const missing = ids.filter((id) => !byId.has(id)).length;
  duplicated += counts.filter((c) => c.n > 1).length;
  lost = Math.max(lost, missing); // a message missing from the store also lacks its UID
  console.info(`kills-sync: ${kills} kills, ${ids.length} messages in ${accounts.length} mailboxes`);
  recordFaults('kills-sync', { kills, recipients: ids.length, lost, duplicated, unknown: 0 });
  expect({ synced, lost, duplicated, mismatched }).toEqual({
    synced: true,
    lost: 0,
    duplicated: 0,
    mismatched: [],
  });
}, 900_000);
