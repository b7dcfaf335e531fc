// A raw RFC 5322 message into the MailInput that ingestMail stores. Attachments become metadata;
// their bytes are kept only when the caller says no mailbox can serve them later (BCC dropbox).
import { createHash } from 'node:crypto';
import { type AddressObject, simpleParser } from 'mailparser';
import { isAutoReply } from './auto-reply.ts';
import type { MailAddress, MailInput } from './types.ts';

/** Message-IDs keep their angle brackets (as messages.message_id_header does). */
export function normalizeMessageId(id: string | null | undefined): string | null {
  const v = id?.trim();
  if (!v) return null;
  const inner = v.replace(/^<+/, '').replace(/>+$/, '').trim();
  if (!inner || /[\s<>]/.test(inner)) return null;
  return `<${inner}>`;
}

/** References: every <id> in the header(s), in order, without repeats. */
function referenceIds(refs: string | string[] | undefined): string[] {
  const all = (Array.isArray(refs) ? refs : refs ? [refs] : []).flatMap((r) => r.split(/\s+/));
  const out: string[] = [];
  for (const r of all) {
    const id = normalizeMessageId(r);
    if (id && !out.includes(id)) out.push(id);
  }
  return out;
}

function addresses(obj: AddressObject | AddressObject[] | undefined): MailAddress[] {
  const out: MailAddress[] = [];
  const walk = (list: AddressObject['value']) => {
    for (const a of list) {
      if (a.group) walk(a.group);
      else if (a.address) out.push({ address: a.address.trim(), name: a.name?.trim() || null });
    }
  };
  for (const o of Array.isArray(obj) ? obj : obj ? [obj] : []) walk(o.value);
  return out;
}

export async function mailInputFromRaw(
  raw: Buffer,
  opts: { keepAttachmentsUpTo?: number } = {},
): Promise<MailInput> {
  // Our own text and HTML conversions (snippet) are cheaper than mailparser's, and links are not needed.
  const parsed = await simpleParser(raw, {
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipImageLinks: true,
    skipTextLinks: true,
  });
  const keepUpTo = opts.keepAttachmentsUpTo;
  const date = parsed.date && !Number.isNaN(parsed.date.getTime()) ? parsed.date : new Date();
  const inReplyTo = referenceIds(parsed.inReplyTo)[0] ?? null;
  const from = addresses(parsed.from)[0] ?? null;
  const header = (name: string) => {
    const v = parsed.headers.get(name);
    if (v === undefined || v === null) return undefined;
    return typeof v === 'string' ? v : typeof v === 'object' && 'value' in v ? String(v.value) : String(v);
  };
  return {
    messageId: normalizeMessageId(parsed.messageId),
    inReplyTo,
    references: referenceIds(parsed.references),
    subject: (parsed.subject ?? '').trim(),
    from,
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    date,
    text: parsed.text ?? null,
    html: parsed.html || null,
    attachments: parsed.attachments.map((a) => ({
      filename: a.filename ?? null,
      contentType: a.contentType || 'application/octet-stream',
      size: a.size ?? a.content?.length ?? null,
      contentId: normalizeMessageId(a.contentId),
      part: a.partId ?? null,
      content: keepUpTo && a.content && a.content.length <= keepUpTo ? a.content : null,
    })),
    size: raw.length,
    contentHash: createHash('sha256').update(raw).digest('hex'),
    autoReply: isAutoReply(header, from?.address ?? null, header('content-type') ?? null),
  };
}
