// Mail that no person wrote: out-of-office and other auto-replies (RFC 3834 Auto-Submitted, and the
// older headers Microsoft and others still send), and delivery reports (RFC 3464). It is stored and
// shown like any mail, but it never marks Parley's email replied nor counts as received from the
// record: the reports count people answering.

/** The headers this rule reads: IMAP sync fetches exactly these. */
export const AUTO_REPLY_HEADERS = [
  'auto-submitted',
  'x-autoreply',
  'x-autorespond',
  'x-auto-response-suppress',
  'precedence',
] as const;

const DAEMONS = /^(mailer-daemon|postmaster)@/i;

export function isAutoReply(
  header: (name: (typeof AUTO_REPLY_HEADERS)[number]) => string | undefined,
  from: string | null,
  contentType: string | null,
): boolean {
  const submitted = header('auto-submitted')?.trim().toLowerCase();
  if (submitted && !submitted.startsWith('no')) return true;
  if (header('x-autoreply') !== undefined || header('x-autorespond') !== undefined) return true;
  const precedence = header('precedence')?.trim().toLowerCase();
  if (precedence === 'auto_reply' || precedence === 'auto-reply') return true;
  // Exchange marks its out-of-office replies so: OOF, AutoReply (among others).
  if (/\b(oof|autoreply)\b/i.test(header('x-auto-response-suppress') ?? '')) return true;
  if (contentType && /^multipart\/report\b/i.test(contentType.trim())) return true;
  return !!from && DAEMONS.test(from);
}

/** The same rule over a raw header block (CRLF or LF, folded lines allowed). */
export function headerReader(block: string): (name: string) => string | undefined {
  const unfolded = block.replace(/\r?\n[ \t]+/g, ' ');
  const map = new Map<string, string>();
  for (const line of unfolded.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    if (!map.has(name)) map.set(name, line.slice(i + 1).trim());
  }
  return (name) => map.get(name);
}
