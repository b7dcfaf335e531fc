// POP3 sync: a maildrop lists messages in arrival order with a UIDL each. The copies already
// stored (mail_locations.uidl) are the cursor: messages numbered after the last stored one are new.
// The backfill walks back from the newest and stops at the first one older than the window (its
// headers only, TOP n 0). Each batch is ingested in one transaction, so a cut connection loses
// nothing and the next run continues after the last stored message.
import { sql } from 'kysely';
import type { Deps } from '../../deps.ts';
import { ingestMail } from '../ingest.ts';
import { mailInputFromRaw } from '../parse.ts';
import type { IngestItem } from '../types.ts';
import { backfillSince } from './cursor.ts';
import type { SyncAccount, SyncStats } from './imap.ts';
import type { Pop3Client } from './pop3-client.ts';

const BATCH = 50;

/** The Date header of a message's headers, or null. */
function headerDate(headers: Buffer): Date | null {
  const unfolded = headers.toString('latin1').replace(/\r?\n[ \t]+/g, ' ');
  const v = /^date:(.*)$/im.exec(unfolded)?.[1]?.trim();
  if (!v) return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

export async function syncPop3(deps: Deps, account: SyncAccount, client: Pop3Client): Promise<SyncStats> {
  const list = [...(await client.uidl()).entries()].sort((a, b) => a[0] - b[0]);
  const stored = await sql<{ uidl: string }>`
    SELECT uidl FROM mail_locations
    WHERE account_id = ${account.id} AND uidl = ANY(${list.map(([, u]) => u)}::text[])`.execute(deps.db);
  const known = new Set(stored.rows.map((r) => r.uidl));
  let lastKnown = 0;
  for (const [n, u] of list) if (known.has(u)) lastKnown = n;
  const since = backfillSince(deps.clock.now(), account.backfill_days);
  const wanted: [number, string][] = [];
  for (const [n, u] of list.filter(([n, u]) => n > lastKnown && !known.has(u)).reverse()) {
    const date = headerDate(await client.top(n));
    if (date && date < since) break;
    wanted.unshift([n, u]);
  }
  const own = account.email_address.toLowerCase();
  let fetched = 0;
  for (let i = 0; i < wanted.length; i += BATCH) {
    const items: IngestItem[] = [];
    for (const [n, uidl] of wanted.slice(i, i + BATCH)) {
      const mail = await mailInputFromRaw(await client.retr(n));
      items.push({
        mail,
        source: 'pop3',
        location: {
          accountId: account.id,
          userId: account.user_id,
          folder: 'INBOX',
          uid: null,
          uidl,
          direction: mail.from?.address.toLowerCase() === own ? 'out' : 'in',
          seen: false,
        },
      });
    }
    await ingestMail(deps, account.org_id, items);
    fetched += items.length;
  }
  return { fetched, flagsRead: 0 };
}
