// An attachment's bytes, fetched on demand from a mailbox holding a copy of its email (attachments
// are not stored by the sync). IMAP: that body part of that UID, decoded by the server or imapflow;
// POP3: the whole message, parsed. The caller (the download route) has checked who may see it.
import { sql } from 'kysely';
import type { Deps } from '../../deps.ts';
import { mailInputFromRaw } from '../parse.ts';
import { openImap, openPop3 } from './connect.ts';
import { settingsOf } from './worker.ts';

/** Past this an attachment is not fetched (the route would hold it in memory). */
export const MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024;

export async function fetchAttachmentContent(
  deps: Deps,
  attachment: { mail_id: string; part: string | null; idx: number },
): Promise<Buffer | null> {
  const places = await sql<{ account_id: string; folder: string; uid: number | null; uidl: string | null }>`
    SELECT l.account_id, l.folder, l.uid, l.uidl
    FROM mail_locations l JOIN mailbox_accounts a ON a.id = l.account_id
    WHERE l.mail_id = ${attachment.mail_id}
    ORDER BY (a.state = 'active') DESC, (l.uid IS NOT NULL) DESC`.execute(deps.db);
  for (const place of places.rows) {
    const row = await deps.db
      .selectFrom('mailbox_accounts')
      .selectAll()
      .where('id', '=', place.account_id)
      .executeTakeFirst();
    if (!row) continue;
    try {
      const found =
        place.uid !== null && attachment.part
          ? await fromImap(deps, row, place.folder, place.uid, attachment.part)
          : place.uidl !== null
            ? await fromPop3(deps, row, place.uidl, attachment.idx)
            : null;
      if (found) return found;
    } catch (err) {
      // This mailbox cannot serve it now (offline, password changed): try the next copy.
      deps.log.warn({ account: row.id, err: (err as Error).message }, 'attachment fetch failed');
    }
  }
  return null;
}

type AccountRow = Parameters<typeof settingsOf>[1];

async function fromImap(deps: Deps, row: AccountRow, folder: string, uid: number, part: string) {
  const cursor = await deps.db
    .selectFrom('mailbox_folders')
    .select('uidvalidity')
    .where('account_id', '=', row.id)
    .where('path', '=', folder)
    .executeTakeFirst();
  const client = await openImap(settingsOf(deps, row));
  try {
    const mb = await client.mailboxOpen(folder, { readOnly: true });
    // Another UIDVALIDITY: that UID now names another message (the next sync resyncs the folder).
    if (!cursor || Number(mb.uidValidity) !== cursor.uidvalidity) return null;
    const dl = await client.download(String(uid), part, { uid: true });
    if (!dl?.content) return null;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of dl.content) {
      size += (c as Buffer).length;
      if (size > MAX_ATTACHMENT_BYTES) {
        client.close(); // never a truncated file; the rest is not read
        return null;
      }
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks);
  } finally {
    if (client.usable) await client.logout().catch(() => client.close());
  }
}

async function fromPop3(deps: Deps, row: AccountRow, uidl: string, idx: number) {
  const client = await openPop3(settingsOf(deps, row));
  try {
    const n = [...(await client.uidl()).entries()].find(([, u]) => u === uidl)?.[0];
    if (n === undefined) return null;
    const mail = await mailInputFromRaw(await client.retr(n), { keepAttachmentsUpTo: MAX_ATTACHMENT_BYTES });
    return mail.attachments[idx]?.content ?? null;
  } finally {
    await client.quit();
  }
}
