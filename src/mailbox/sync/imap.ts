// IMAP sync of one account's Inbox and Sent folders into the org's mail store. Per folder: the
// cursor decides (cursor.ts), new UIDs are fetched in batches (envelope, flags, structure, the
// threading headers, then only the text/plain and text/html parts: attachments stay on the server,
// recorded by part id), each batch is ingested and the cursor advanced in one transaction, so a
// dropped connection loses nothing and repeats nothing. The next batch is fetched while the
// current one is being stored.
import { createHash } from 'node:crypto';
import type { FetchMessageObject, ImapFlow, MessageAddressObject, MessageStructureObject } from 'imapflow';
import { sql } from 'kysely';
import type { Deps } from '../../deps.ts';
import { AUTO_REPLY_HEADERS, headerReader, isAutoReply } from '../auto-reply.ts';
import { ingestMail } from '../ingest.ts';
import { normalizeMessageId } from '../parse.ts';
import type { IngestItem, MailAddress, MailAttachmentInput, MailInput } from '../types.ts';
import { advanceCursor, type FolderCursor, isIdle, planFolder } from './cursor.ts';
import { pickFolders } from './folders.ts';

export interface SyncAccount {
  id: string;
  org_id: string;
  user_id: string;
  email_address: string;
  backfill_days: number;
}

export interface SyncStats {
  /** Messages fetched and handed to ingest. */
  fetched: number;
  /** Stored copies whose \Seen flag was read again. */
  flagsRead: number;
}

export const DEFAULT_BATCH = 500;

/** Syncs the account's Inbox and Sent folders over an open, authenticated client. */
export async function syncImap(
  deps: Deps,
  account: SyncAccount,
  client: ImapFlow,
  opts: { batchSize?: number; onBatch?: (n: number) => void } = {},
): Promise<SyncStats & { inbox: string }> {
  const picked = pickFolders(await client.list());
  const folders: { path: string; role: 'inbox' | 'sent' }[] = [{ path: picked.inbox, role: 'inbox' }];
  if (picked.sent) folders.push({ path: picked.sent, role: 'sent' });
  const stats: SyncStats = { fetched: 0, flagsRead: 0 };
  for (const f of folders) {
    const s = await syncFolder(deps, account, client, f.path, f.role, opts);
    stats.fetched += s.fetched;
    stats.flagsRead += s.flagsRead;
  }
  return { ...stats, inbox: picked.inbox };
}

const num = (v: bigint | number | undefined | null) => (v === undefined || v === null ? null : Number(v));

async function syncFolder(
  deps: Deps,
  account: SyncAccount,
  client: ImapFlow,
  path: string,
  role: 'inbox' | 'sent',
  opts: { batchSize?: number; onBatch?: (n: number) => void },
): Promise<SyncStats> {
  const db = deps.db;
  const started = Date.now();
  // The stored cursor is read while the server answers SELECT.
  const [mb, row] = await Promise.all([
    client.mailboxOpen(path, { readOnly: true }),
    db
      .selectFrom('mailbox_folders')
      .selectAll()
      .where('account_id', '=', account.id)
      .where('path', '=', path)
      .executeTakeFirst(),
  ]);
  const selectMs = Date.now() - started;
  const cursor: FolderCursor | null = row
    ? {
        uidvalidity: row.uidvalidity,
        uidnext: row.uidnext,
        highestModseq: row.highest_modseq,
        lastUid: row.last_uid,
      }
    : null;
  const server = {
    uidValidity: Number(mb.uidValidity),
    uidNext: mb.uidNext,
    highestModseq: mb.noModseq ? null : num(mb.highestModseq),
  };
  const plan = planFolder(cursor, server, { now: deps.clock.now(), backfillDays: account.backfill_days });
  const stats: SyncStats = { fetched: 0, flagsRead: 0 };
  let current: FolderCursor =
    cursor && !plan.reset ? cursor : { ...plan.done, lastUid: 0, highestModseq: null };

  if (!cursor || plan.reset || cursor.uidvalidity === null) {
    // The cursor is tied to this UIDVALIDITY before any batch moves it; the stale copies go first.
    await db.transaction().execute(async (trx) => {
      if (plan.reset)
        await trx
          .deleteFrom('mail_locations')
          .where('account_id', '=', account.id)
          .where('folder', '=', path)
          .execute();
      await trx
        .insertInto('mailbox_folders')
        .values({ account_id: account.id, path, role, uidvalidity: server.uidValidity, last_uid: 0 })
        .onConflict((oc) =>
          oc.columns(['account_id', 'path']).doUpdateSet({
            role,
            uidvalidity: server.uidValidity,
            uidnext: null,
            highest_modseq: null,
            last_uid: 0,
          }),
        )
        .execute();
    });
  }

  if (plan.fetchNew) {
    const found = await client.search(
      { uid: `${plan.fetchNew.fromUid}:*`, since: plan.fetchNew.since },
      { uid: true },
    );
    // "n:*" always matches the highest UID, even below n.
    const uids = (found || []).filter((u) => u >= (plan.fetchNew?.fromUid ?? 1)).sort((a, b) => a - b);
    const size = opts.batchSize ?? DEFAULT_BATCH;
    const batches: number[][] = [];
    for (let i = 0; i < uids.length; i += size) batches.push(uids.slice(i, i + size));
    let next: Promise<IngestItem[]> | null = batches.length
      ? fetchBatch(client, account, path, role, batches[0])
      : null;
    for (let b = 0; b < batches.length && next; b++) {
      const items = await next;
      next = b + 1 < batches.length ? fetchBatch(client, account, path, role, batches[b + 1]) : null;
      next?.catch(() => {}); // awaited next turn; a failure there must not go unhandled meanwhile
      const maxUid = batches[b][batches[b].length - 1];
      current = advanceCursor(current, maxUid);
      await db.transaction().execute(async (trx) => {
        await ingestMail({ ...deps, db: trx }, account.org_id, items);
        await trx
          .updateTable('mailbox_folders')
          .set({ last_uid: sql<number>`GREATEST(last_uid, ${maxUid})` })
          .where('account_id', '=', account.id)
          .where('path', '=', path)
          .execute();
      });
      stats.fetched += items.length;
      opts.onBatch?.(items.length);
    }
  }

  if (plan.flags && current.lastUid > 0) {
    const msgs = await client.fetchAll(
      `1:${current.lastUid}`,
      { uid: true, flags: true },
      { uid: true, ...(plan.flags === 'all' ? {} : { changedSince: BigInt(plan.flags.changedSince) }) },
    );
    stats.flagsRead = msgs.length;
    for (let i = 0; i < msgs.length; i += 5000) {
      const chunk = msgs.slice(i, i + 5000);
      await sql`
        UPDATE mail_locations l SET seen = v.seen
        FROM unnest(${chunk.map((m) => m.uid)}::int8[], ${chunk.map((m) => !!m.flags?.has('\\Seen'))}::bool[])
          AS v(uid, seen)
        WHERE l.account_id = ${account.id} AND l.folder = ${path} AND l.uid = v.uid AND l.seen <> v.seen`.execute(
        db,
      );
    }
  }

  // Nothing changed (the usual poll): the stored cursor is already right.
  if (!isIdle(plan) || cursor?.uidnext !== plan.done.uidnext)
    await db
      .updateTable('mailbox_folders')
      .set({
        uidnext: plan.done.uidnext,
        highest_modseq: plan.done.highestModseq,
        last_uid: sql<number>`GREATEST(last_uid, ${plan.done.lastUid})`,
        synced_at: deps.clock.now(),
      })
      .where('account_id', '=', account.id)
      .where('path', '=', path)
      .execute();
  deps.log.debug(
    {
      account: account.id,
      folder: path,
      reset: plan.reset,
      fetchFrom: plan.fetchNew?.fromUid ?? null,
      flags: plan.flags,
      ...stats,
      selectMs,
      ms: Date.now() - started,
    },
    'mailbox folder synced',
  );
  return stats;
}

/** A UID list as an IMAP sequence set with ranges (1:400 rather than 400 numbers). */
export function uidSet(uids: number[]): string {
  const out: string[] = [];
  let start = uids[0];
  let prev = uids[0];
  for (let i = 1; i <= uids.length; i++) {
    const u = uids[i];
    if (u === prev + 1) {
      prev = u;
      continue;
    }
    out.push(start === prev ? `${start}` : `${start}:${prev}`);
    start = u;
    prev = u;
  }
  return out.join(',');
}

interface Leaf {
  node: MessageStructureObject;
  part: string;
}

/** The first inline text/plain and text/html parts, and every other leaf as an attachment. */
export function splitStructure(root: MessageStructureObject | undefined): {
  text: Leaf | null;
  html: Leaf | null;
  attachments: Leaf[];
} {
  const out = { text: null as Leaf | null, html: null as Leaf | null, attachments: [] as Leaf[] };
  if (!root) return out;
  const walk = (n: MessageStructureObject) => {
    if (n.childNodes?.length) {
      for (const c of n.childNodes) walk(c);
      return;
    }
    // A message that is not multipart has its body as part 1 (RFC 3501 6.4.5).
    const part = n.part ?? '1';
    const type = n.type.toLowerCase();
    const named = !!(n.dispositionParameters?.filename || n.parameters?.name);
    const inline = n.disposition?.toLowerCase() !== 'attachment' && !named;
    if (inline && type === 'text/plain' && !out.text) out.text = { node: n, part };
    else if (inline && type === 'text/html' && !out.html) out.html = { node: n, part };
    else if (!type.startsWith('multipart/')) out.attachments.push({ node: n, part });
  };
  walk(root);
  return out;
}

function decodeQuotedPrintable(b: Buffer): Buffer {
  const s = b.toString('latin1').replace(/=\r?\n/g, '');
  const out = Buffer.alloc(s.length);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x3d && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      out[n++] = Number.parseInt(s.slice(i + 1, i + 3), 16);
      i += 2;
    } else out[n++] = c;
  }
  return out.subarray(0, n);
}

/** A body part's text: transfer decoding (unless the server sent it decoded, BINARY), then charset. */
export function decodePart(raw: Buffer, node: MessageStructureObject, binary: boolean): string {
  const enc = (node.encoding ?? '').toLowerCase();
  const bytes = binary
    ? raw
    : enc === 'base64'
      ? Buffer.from(raw.toString('latin1'), 'base64')
      : enc === 'quoted-printable'
        ? decodeQuotedPrintable(raw)
        : raw;
  const charset = (node.parameters?.charset ?? 'utf-8').toLowerCase().replace(/^(us-)?ascii$/, 'utf-8');
  try {
    return new TextDecoder(charset).decode(bytes);
  } catch {
    return bytes.toString('utf8'); // an unknown charset: UTF-8 with replacement characters
  }
}

const address = (a: MessageAddressObject): MailAddress | null =>
  a.address ? { address: a.address, name: a.name || null } : null;
const addresses = (list: MessageAddressObject[] | undefined) =>
  (list ?? []).map(address).filter((a): a is MailAddress => a !== null);

/** Every <id> in the References header lines the server sent, in order, once each. */
function referencesOf(headers: Buffer | undefined): string[] {
  if (!headers) return [];
  const unfolded = headers.toString('utf8').replace(/\r?\n[ \t]+/g, ' ');
  const line = /^references:(.*)$/im.exec(unfolded)?.[1] ?? '';
  const out: string[] = [];
  for (const m of line.matchAll(/<[^<>\s]+>/g)) {
    const id = normalizeMessageId(m[0]);
    if (id && !out.includes(id)) out.push(id);
  }
  return out;
}

function validDate(d: Date | string | undefined): Date | null {
  if (!d) return null;
  const v = d instanceof Date ? d : new Date(d);
  return Number.isNaN(v.getTime()) ? null : v;
}

async function fetchBatch(
  client: ImapFlow,
  account: SyncAccount,
  folder: string,
  role: 'inbox' | 'sent',
  uids: number[],
): Promise<IngestItem[]> {
  const metas = await client.fetchAll(
    uidSet(uids),
    {
      uid: true,
      envelope: true,
      flags: true,
      bodyStructure: true,
      internalDate: true,
      size: true,
      headers: ['references', 'content-type', ...AUTO_REPLY_HEADERS],
    },
    { uid: true },
  );
  // Messages whose text parts have the same ids are fetched together: one command per shape.
  const shapes = new Map<string, { parts: string[]; uids: number[] }>();
  const split = new Map<number, ReturnType<typeof splitStructure>>();
  for (const m of metas) {
    const s = splitStructure(m.bodyStructure);
    split.set(m.uid, s);
    const parts = [s.text?.part, s.html?.part].filter((p): p is string => !!p);
    if (!parts.length) continue;
    const key = parts.join(' ');
    const shape = shapes.get(key) ?? { parts, uids: [] };
    shape.uids.push(m.uid);
    shapes.set(key, shape);
  }
  const bodies = new Map<number, FetchMessageObject>();
  for (const shape of shapes.values()) {
    const got = await client.fetchAll(
      uidSet(shape.uids.sort((a, b) => a - b)),
      { uid: true, bodyParts: shape.parts },
      { uid: true },
    );
    for (const g of got) bodies.set(g.uid, g);
  }
  const own = account.email_address.toLowerCase();
  return metas.map((m) => {
    const s = split.get(m.uid) as ReturnType<typeof splitStructure>;
    const body = bodies.get(m.uid);
    const textOf = (leaf: Leaf | null) => {
      const raw = leaf ? body?.bodyParts?.get(leaf.part) : undefined;
      return leaf && raw ? decodePart(raw, leaf.node, !!body?.binaryParts?.has(leaf.part)) : null;
    };
    const env = m.envelope ?? {};
    const text = textOf(s.text);
    const html = textOf(s.html);
    const from = address(env.from?.[0] ?? {});
    const to = addresses(env.to);
    const cc = addresses(env.cc);
    const date = validDate(env.date) ?? validDate(m.internalDate) ?? new Date();
    const messageId = normalizeMessageId(env.messageId);
    const header = headerReader(m.headers?.toString('utf8') ?? '');
    const attachments: MailAttachmentInput[] = s.attachments.map(({ node, part }) => ({
      filename: node.dispositionParameters?.filename ?? node.parameters?.name ?? null,
      contentType: node.type.toLowerCase(),
      size: node.size ?? null,
      contentId: normalizeMessageId(node.id),
      part,
      content: null,
    }));
    // Without the raw message, its identity is the headers that matter and the text.
    const contentHash = createHash('sha256')
      .update(JSON.stringify([from?.address, to, cc, env.subject ?? '', date.toISOString()]))
      .update(text ?? '')
      .update(html ?? '')
      .digest('hex');
    const mail: MailInput = {
      messageId,
      inReplyTo: normalizeMessageId(/<[^<>\s]+>/.exec(env.inReplyTo ?? '')?.[0]),
      references: referencesOf(m.headers),
      autoReply: isAutoReply(
        header,
        from?.address ?? null,
        header('content-type') ?? m.bodyStructure?.type ?? null,
      ),
      subject: (env.subject ?? '').trim(),
      from,
      to,
      cc,
      date,
      text,
      html,
      attachments,
      size: m.size ?? null,
      contentHash,
    };
    const out = role === 'sent' || from?.address.toLowerCase() === own;
    return {
      mail,
      source: 'imap' as const,
      location: {
        accountId: account.id,
        userId: account.user_id,
        folder,
        uid: m.uid,
        uidl: null,
        direction: out ? ('out' as const) : ('in' as const),
        seen: !!m.flags?.has('\\Seen'),
      },
    };
  });
}
