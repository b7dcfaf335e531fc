import { simpleParser } from 'mailparser';
import { type BounceKind, ENHANCED, FULL, HARD, kindOf, POLICY, REPLY, SOFT } from './kinds.ts';
import { sesEmailNotice } from './providers/ses.ts';

// Bounce classification (issue 5): whether a message is a bounce, and for each failed recipient
// whether the address is bad (hard), the failure temporary (soft), the sender's problem (policy) or
// a complaint (ARF; the rule is kinds.ts). Standard DSNs (RFC 3464) are read field by field; the many MTAs that send prose
// instead are read with a table of reply codes and phrases. Never throws: anything unreadable is
// "not a bounce" with the reason.

export interface FailedRecipient {
  recipient: string;
  kind: BounceKind;
  status: string;
  reason: string;
  hasDsn: boolean;
}

export type BounceResult =
  | {
      bounce: false;
      why: string;
      /** A failure notice that names no recipient: its reason, for whoever knows the message (VERP). */
      notice?: Omit<FailedRecipient, 'recipient'>;
    }
  | { bounce: true; recipients: FailedRecipient[]; originalMessageId?: string };

// A match may start only where a run of address characters starts: the same matches, but a long run
// without an @ is scanned once instead of once per character (a 200 KB line took minutes).
const ADDRESS = /(?<![A-Za-z0-9._%+'=-])[A-Za-z0-9._%+=-][A-Za-z0-9._%+'=-]*@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/;
const ADDRESS_ALL = new RegExp(ADDRESS.source, 'g');
const ENHANCED_ALL = new RegExp(ENHANCED.source, 'g');

const FAILURE_NOTICE =
  /could not be delivered|couldn'?t be delivered|wasn'?t delivered|undeliver|delivery (has )?failed|delivery (status notification )?\((failure|delay)\)|delivery (is )?delayed|delayed mail|still being retried|could not send (message|mail) for past|had (permanent fatal |delivery )?errors|error sending your (mail|message)|trouble delivering|mail delivery failed|mail delivery system|failure notice|returned mail|returning message to sender|delivery failure|permanent (fatal )?error|permanent failure|was not delivered|message not delivered|did not reach|unable to deliver|were unable to deliver|not be delivered|non[- ]?delivery|nondeliverable|delivery status notification|notice: mail delivery status|non remis|non distribuable|[ée]chec (de (la )?)?(remise|livraison|distribution)|unzustellbar|nicht zugestellt|nicht zustellbar|no se (ha )?pudo entregar|no entregado|no se puede entregar|imposible entregar|impossibile (consegnare|recapitare)|non recapitat|niet afgeleverd|onbestelbaar|n[ãa]o (foi )?entregue|n[ãa]o (foi poss[íi]vel|p[ôo]de ser) entreg|nie dostarczon|не доставлено|не может быть доставлено|не удалось доставить|无法投递|未送达|退信|投递失败|配信不能|配信できません|送信できません|配送できません|届けられません|配送エラー|配信エラー|전송 실패|발송 실패|반송/i;
// The prefix stays on its line: with \s it ran across blank lines, once per line (quadratic).
const ORIGINAL_COPY =
  /^(?:[^\S\n]|-)*(this is a copy of the (original )?message|original message follows|below this line is a copy|the original message was(?! received)|--- ?original message|-----original message|------ this is a copy|original message headers|message headers follow|(the )?headers? of the original message|unsent message follows|-{3,} ?returned message|----- original message -----|--- mensaje original|--- message d'origine|--- ursprüngliche nachricht|--- messaggio originale)/im;
const AUTO_REPLY =
  /^((re|aw|tr|fw|sv|vs):\s*)?(auto(matic|matische|matisch)? ?(reply|antwort|antwoord|response)|automatische antwort|abwesenheit|r[ée]ponse automatique|respuesta autom[áa]tica|risposta automatica|resposta autom[áa]tica|autosvar|automaattinen vastaus|out of (the )?office|fuera de la oficina|absence|absent|vacation|away from|автоответ|自动回复|自動応答|自動返信)/i;

const REPLY_SUBJECT = /^(re|aw|sv|vs|antw|rif|r|res|odp|返信|回复)\s*:/i;
const DAEMON =
  /mailer[-_ ]?daemon|post_?master|mail delivery|delivery subsystem|mail system|mail administrator|maildelivery|no-?reply|bounce|microsoft outlook|mdaemon/i;
/** A header naming a message by its id: `Message-ID: <id>`, In-Reply-To, References. */
const MESSAGE_ID_ALL = /(?:message-?id|in-reply-to|references)\s*:[^\S\n]*<([^<>\s]{1,300})>/gi;
// Narrower than DAEMON (no "no-reply" or "bounce"): enough, with a failure code, to call a notice
// a failure whatever its wording, so newsletters from no-reply senders must not match.
const SYSTEM_SENDER =
  /mailer[-_ ]?daemon|postmaster|post_master|mail delivery|delivery subsystem|mail system/i;
const FAILURE_CODE = /\b[45]\.[0-7]\.\d{1,3}\b|^[^\S\n]*[45]\d\d[ :-]/m;
// Addresses a notice names for help, never as the recipient that failed.
const SYSTEM_MAILBOX = /^(postmaster|mailer-daemon|hostmaster|abuse)@/;

/**
 * A DSN's Status is the reporting MTA's summary, often the vague x.0.0 (Sendmail, Exchange) or a
 * wrong one (5.1.1 over "552 5.2.2 Over quota"); the diagnostic is what the receiving server said:
 * its code of the same class wins. A 5.0.0 over a 4.x.x is a retry timeout (Exim, Postfix): the
 * temporary reason is what happened, and the address may be good.
 */
function sharper(status: string, diag: string): string {
  const d = bestCode(diag);
  if (!status) return d;
  if (!d || d.endsWith('.0.0')) return status;
  return d[0] === status[0] || (status === '5.0.0' && d[0] === '4') ? d : status;
}

const clean = (s: string) => s.replace(/\s+/g, ' ').trim().slice(0, 500);
const addr = (s: string | undefined) => {
  const m = s ? ADDRESS.exec(s.replace(/^rfc822;\s*/i, '')) : null;
  return m ? m[0].toLowerCase() : '';
};

/** The fields of a message/delivery-status body: one map per block (per-message, per-recipient …). */
export function parseDsnFields(body: string): Map<string, string>[] {
  const blocks: Map<string, string>[] = [];
  let cur = new Map<string, string>();
  let last = '';
  for (const line of body.replace(/\r\n?/g, '\n').split('\n')) {
    if (!line.trim()) {
      if (cur.size) blocks.push(cur);
      cur = new Map();
      last = '';
      continue;
    }
    if (/^[ \t]/.test(line) && last) {
      cur.set(last, `${cur.get(last)} ${line.trim()}`);
      continue;
    }
    const i = line.indexOf(':');
    if (i <= 0) continue;
    last = line.slice(0, i).trim().toLowerCase();
    // A new Final-Recipient without a blank line still starts a new recipient block.
    if (last === 'final-recipient' && cur.has('final-recipient')) {
      blocks.push(cur);
      cur = new Map();
    }
    cur.set(last, line.slice(i + 1).trim());
  }
  if (cur.size) blocks.push(cur);
  return blocks;
}

/** The failed recipients of a DSN's fields; `hasDsn` says whether they came in a DSN part. */
function fromDsn(body: string, hasDsn: boolean): FailedRecipient[] | 'not-failed' {
  const out: FailedRecipient[] = [];
  let sawRecipient = false;
  for (const b of parseDsnFields(body)) {
    const recipient = addr(b.get('final-recipient') ?? b.get('original-recipient'));
    if (!recipient) continue;
    sawRecipient = true;
    const action = (b.get('action') ?? '').toLowerCase();
    if (/delivered|relayed|expanded/.test(action)) continue;
    const diag = clean((b.get('diagnostic-code') ?? '').replace(/^smtp;\s*/i, ''));
    const status = sharper(ENHANCED.exec(b.get('status') ?? '')?.[0] ?? '', diag);
    // "expired" is not RFC 3464's, but SendGrid and others write it for a message given up on
    if (!/failed|delayed|expired/.test(action) && !status.startsWith('5') && !status.startsWith('4'))
      continue;
    const temporary = action.includes('delayed') || (action.includes('expired') && !status);
    const kind: BounceKind = temporary ? 'soft' : kindOf(status || diag, diag);
    out.push({
      recipient,
      kind,
      status,
      reason: diag || clean(`Action: ${action || 'failed'}, Status: ${status}`),
      hasDsn,
    });
  }
  return out.length ? out : sawRecipient ? 'not-failed' : [];
}

/**
 * The most specific failure code in a text: the first 4.x.x or 5.x.x with a detail (5.2.2), else
 * with a subject (5.1.0), else the first (5.0.0). A transcript's "250 2.1.0 Ok" is never the reason.
 */
function bestCode(text: string): string {
  const found: string[] = ['', '', ''];
  for (const m of text.matchAll(ENHANCED_ALL)) {
    if (m[1] === '2') continue;
    const rank = m[3] !== '0' ? 0 : m[2] !== '0' ? 1 : 2;
    if (rank === 0) return m[0];
    found[rank] ||= m[0];
  }
  return found[1] || found[2];
}

const hasReason = (t: string) =>
  ENHANCED.test(t) || REPLY.test(t) || HARD.test(t) || FULL.test(t) || POLICY.test(t) || SOFT.test(t);

const SENDER_LINE = /^[\s>*]*(from|sender|reply-to|return-path)\s*:/i;

/** The ids a text quotes as Message-IDs: in a transcript they look like addresses. */
const messageIds = (text: string) =>
  new Set([...text.slice(0, 256 * 1024).matchAll(MESSAGE_ID_ALL)].map((m) => m[1].toLowerCase()));

/** Prose bounces: failed recipients with the reason next to them. */
function fromText(text: string, exclude: Set<string>): FailedRecipient[] {
  // An address and its reason fit in a line's first 1,000 characters, and the failed recipients in
  // the first 256 KB: the rest is never read, so the time spent on one message is bounded.
  const lines = text
    .slice(0, 256 * 1024)
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((l) => l.slice(0, 1_000));
  const ids = messageIds(text);
  // A line labelled From:/Sender:/Reply-To: names the sender, never a failed recipient.
  const addresses = lines.map((l) =>
    l.includes('@') && !SENDER_LINE.test(l)
      ? [...l.matchAll(ADDRESS_ALL)]
          .map((m) => m[0].toLowerCase())
          .filter((a) => !exclude.has(a) && !ids.has(a))
      : [],
  );
  /** Where the reason for `a` on line i may end: six non-blank lines on, or before the next recipient's line. */
  const reasonEnd = (i: number, a: string, beforeNext: boolean) => {
    let end = i + 1;
    for (let n = 1; end < Math.min(lines.length, i + 30) && n < 6; end++) {
      if (beforeNext && addresses[end].some((b) => b !== a)) break;
      if (lines[end].trim()) n++;
    }
    return end;
  };
  const ownLineEnd = (i: number) => {
    let end = i + 1;
    while (end < lines.length && /^[ \t]+\S/.test(lines[end]) && !addresses[end].length) end++;
    return end;
  };
  /**
   * The reason next to `a` on line i: its own line when that has a reply code and a reason
   * (Sendmail's "554 <a>... Host unknown", with its indented continuation), else the lines up to the
   * next recipient's. Shared: the lines after whatever they hold, for a list of addresses followed
   * by one reason ("failed for: a, b. Reason: …"). '' when none is there.
   */
  const reasonAt = (i: number, a: string, shared: boolean) => {
    let around = lines.slice(i, shared ? reasonEnd(i, a, false) : ownLineEnd(i)).join(' ');
    if (!shared && !(REPLY.test(lines[i]) && hasReason(around)))
      around = lines.slice(i, reasonEnd(i, a, true)).join(' ');
    return hasReason(around) ? around : '';
  };
  // Two passes: an address whose own reason comes later (a list, then a transcript) takes that one
  // before borrowing the next lines'. null: seen, no reason yet (the map keeps the first order).
  const found = new Map<string, FailedRecipient | null>();
  for (const shared of [false, true])
    for (let i = 0; i < lines.length; i++)
      for (const a of addresses[i]) {
        if (found.get(a)) continue;
        if (!found.has(a)) found.set(a, null);
        const around = reasonAt(i, a, shared);
        if (!around) continue;
        const status = bestCode(around);
        found.set(a, {
          recipient: a,
          kind: kindOf(status, around),
          status,
          reason: clean(around),
          hasDsn: false,
        });
      }
  return [...found.values()].filter((f): f is FailedRecipient => f !== null);
}

interface Part {
  type: string;
  body: string;
}

/**
 * The leaf parts of a MIME message, by content type, with their bodies decoded. mailparser folds
 * message/delivery-status and message/feedback-report into the text, so report parts are read
 * here: a small walk over the boundaries, tolerant of broken structure.
 */
export function mimeParts(text: string, depth = 0): Part[] {
  const split = text.search(/\r?\n\r?\n/);
  const head = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? '' : text.slice(split).replace(/^\r?\n\r?\n/, '');
  const unfolded = head.replace(/\r?\n[ \t]+/g, ' ');
  const ctype = /^content-type:\s*([^;\r\n]+)(.*)$/im.exec(unfolded);
  const type = (ctype?.[1] ?? 'text/plain').trim().toLowerCase();
  const boundary = /boundary\s*=\s*"?([^";\r\n]+)"?/i.exec(ctype?.[2] ?? '')?.[1];
  if (type.startsWith('multipart/') && boundary && depth < 8) {
    const esc = boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const pieces = body.split(new RegExp(`^--${esc}(?:--)?[ \t]*$`, 'm')).slice(1, -1);
    return pieces.flatMap((p) => mimeParts(p.replace(/^\r?\n/, ''), depth + 1));
  }
  const cte = /^content-transfer-encoding:\s*(\S+)/im.exec(unfolded)?.[1]?.toLowerCase();
  const decoded =
    cte === 'base64'
      ? Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8')
      : cte === 'quoted-printable'
        ? body
            .replace(/=\r?\n/g, '')
            .replace(/=([0-9A-F]{2})/gi, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)))
        : body;
  return [{ type, body: decoded }];
}

export async function classifyBounce(raw: Buffer): Promise<BounceResult> {
  try {
    if (!raw.length) return { bounce: false, why: 'empty message' };
    const mail = await simpleParser(raw, {
      skipHtmlToText: false,
      skipTextToHtml: true,
      skipImageLinks: true,
    });
    const header = (name: string) => {
      const v = mail.headers.get(name);
      return typeof v === 'string' ? v : v ? JSON.stringify(v) : '';
    };
    const ctype = mail.headers.get('content-type') as
      | { value?: string; params?: Record<string, string> }
      | undefined;
    const reportType = (ctype?.params?.['report-type'] ?? '').toLowerCase();
    const parts = mail.attachments ?? [];
    const leaves = mimeParts(raw.toString('latin1'));
    const partText = (type: RegExp) => [
      ...leaves.filter((p) => type.test(p.type)).map((p) => p.body),
      ...parts.filter((p) => type.test(p.contentType)).map((p) => p.content.toString('utf8')),
    ];
    const original = partText(/^(message\/rfc822|text\/rfc822-headers|message\/rfc822-headers)$/i).join('\n');
    const originalMessageId =
      /^Message-ID:\s*(<[^>\s]+>)/im.exec(original)?.[1] ??
      (typeof mail.inReplyTo === 'string' ? mail.inReplyTo : undefined) ??
      /Message-ID:\s*(<[^>\s]+>)/i.exec(mail.text ?? '')?.[1];
    const done = (recipients: FailedRecipient[]): BounceResult => ({
      bounce: true,
      // once each (a notice can repeat its recipients, e.g. in a postmaster copy)
      recipients: recipients.filter((r, i) => recipients.findIndex((x) => x.recipient === r.recipient) === i),
      ...(originalMessageId ? { originalMessageId } : {}),
    });

    // ARF complaint (RFC 5965), or Hotmail's older JMRP form: the complained-of message alone,
    // under "complaint about message from <ip>", its recipient in X-HmXmrOriginalRecipient.
    const feedback = partText(/^message\/feedback-report$/i).join('\n');
    const jmrp = /^\s*complaint about message from\b/i.test(mail.subject ?? '') && original.length > 0;
    if (reportType === 'feedback-report' || feedback || jmrp) {
      const f = parseDsnFields(feedback)[0] ?? new Map<string, string>();
      const to =
        addr(f.get('original-rcpt-to')) ||
        addr(/^X-HmXmrOriginalRecipient:\s*(.+)$/im.exec(original)?.[1]) ||
        addr(/^To:\s*(.+)$/im.exec(original)?.[1]);
      return done([
        {
          recipient: to,
          kind: 'complaint',
          status: '',
          reason: clean(`Feedback-Type: ${f.get('feedback-type') ?? 'abuse'}`),
          hasDsn: false,
        },
      ]);
    }

    const parsed = `${mail.text ?? ''}\n${parts
      .filter((p) => /^text\/plain/i.test(p.contentType))
      .map((p) => p.content.toString('utf8'))
      .join('\n')}`;
    // A multipart whose boundary never comes or is lost (a broken relay) leaves the parsers no text: the raw
    // body is read as the text, and as the delivery status when it holds one.
    const broken = !parsed.trim() && !leaves.some((p) => p.type.startsWith('text/'));
    const whole = broken ? raw.toString('utf8') : '';
    const text = broken ? whole.slice(whole.search(/\r?\n\r?\n|$/)) : parsed;

    // Amazon SES's notification by email (JSON), read as its webhook is
    const ses = sesEmailNotice(text);
    if (ses?.length)
      return done(
        ses.map((e) => ({
          recipient: e.recipient,
          kind: e.kind,
          status: e.status,
          reason: e.reason,
          hasDsn: false,
        })),
      );

    // RFC 3464 delivery status: its part, else its fields written into the text (Amazon WorkMail,
    // or a broken multipart read raw), which settle who failed as the part would.
    const [report, ...copy] = text.split(ORIGINAL_COPY);
    const dsnPart = partText(/^(message\/delivery-status|message\/global-delivery-status)$/i).join('\n\n');
    const dsn = dsnPart || (/^final-recipient:/im.test(report) ? report : '');
    if (dsn) {
      const r = fromDsn(dsn, dsnPart !== '');
      if (r === 'not-failed') return { bounce: false, why: 'a delivery report of success or relay' };
      // A DSN with a bare x.0.0 and no diagnostic (OpenSMTPD) leaves the reason to its prose.
      const vague = r.filter((f) => !f.status || f.status.endsWith('.0.0'));
      const prose = vague.length ? fromText(text, new Set()) : [];
      if (r.length)
        return done(
          r.map((f) => {
            const p = vague.includes(f)
              ? prose.find((x) => x.recipient === f.recipient && x.status)
              : undefined;
            // the prose wins with a sharper code, or over a DSN that gave no diagnostic at all
            const better = p && (!p.status.endsWith('.0.0') || f.reason.startsWith('Action: '));
            return p && better && (f.status === '' || p.status[0] === f.status[0])
              ? { ...f, kind: p.kind, status: p.status, reason: p.reason }
              : f;
          }),
        );
    }

    const subject = mail.subject ?? '';
    const autoSubmitted = header('auto-submitted').toLowerCase();
    // A mail system's notice with a failure code is one, whatever its wording or language.
    const looksFailed =
      FAILURE_NOTICE.test(subject) ||
      FAILURE_NOTICE.test(text.slice(0, 3000)) ||
      (SYSTEM_SENDER.test(mail.from?.text ?? '') && FAILURE_CODE.test(text.slice(0, 20_000)));
    if (/disposition-notification/i.test(reportType)) return { bounce: false, why: 'a read receipt' };
    if (
      !looksFailed &&
      (autoSubmitted.startsWith('auto-replied') ||
        header('x-autoreply') ||
        header('x-autorespond') ||
        AUTO_REPLY.test(subject))
    )
      return { bounce: false, why: 'an automatic reply' };
    if (!looksFailed && !reportType) return { bounce: false, why: 'no failure notice' };
    // A person's reply that mentions a failed delivery is not one: bounces come from a mail system.
    if (!reportType && !autoSubmitted && REPLY_SUBJECT.test(subject) && !DAEMON.test(mail.from?.text ?? ''))
      return { bounce: false, why: 'a reply from a person' };
    // Our own return path (the bounce's To) and the reporting system are not failed recipients; the
    // copy of the original message that many MTAs append is not read for recipients either.
    // Nor is the original's sender, which "Sender address rejected" and quoted headers name.
    const originalHead = `${original}\n${copy.join('\n')}`;
    const own = new Set(
      [
        addr(mail.from?.text),
        addr(typeof mail.to === 'object' && 'text' in mail.to ? mail.to.text : ''),
        addr(/^From:\s*(.+)$/im.exec(originalHead)?.[1]),
        addr(/^Return-Path:\s*(.+)$/im.exec(originalHead)?.[1]),
      ].filter(Boolean),
    );
    // The reporting system's postmaster is no recipient, unless the message was sent to it.
    const originalTo = ((/^To:[^\S\n]*(.+)$/im.exec(originalHead)?.[1] ?? '').match(ADDRESS_ALL) ?? []).map(
      (a) => a.toLowerCase(),
    );
    const notSystem = (a: string) => !SYSTEM_MAILBOX.test(a) || originalTo.includes(a);
    let r = fromText(report, own).filter((f) => notSystem(f.recipient));
    // Exim names the failed recipients in a header: it settles who failed.
    const named = header('x-failed-recipients')
      .split(',')
      .map((a) => addr(a))
      .filter(Boolean);
    if (named.length) {
      const status = bestCode(report);
      r = named.map(
        (a) =>
          r.find((f) => f.recipient === a) ?? {
            recipient: a,
            kind: kindOf(status, report),
            status,
            reason: clean(report),
            hasDsn: false,
          },
      );
    }
    // One recipient whose reason came without a code (Postmark's notice quotes the server's reply
    // further down): the notice's code is that recipient's.
    if (r.length === 1 && !r[0].status) {
      const status = bestCode(report);
      if (status) r = [{ ...r[0], status, kind: kindOf(status, r[0].reason) }];
    }
    // No reason beside any address, but a failure notice that names one address only, or
    // returns a message sent to one (old Sendmail names the host, not the address): that one.
    if (!r.length) {
      const ids = messageIds(report);
      const unlabelled = report
        .split('\n')
        .filter((l) => !SENDER_LINE.test(l))
        .join('\n');
      const named = [...new Set((unlabelled.match(ADDRESS_ALL) ?? []).map((a) => a.toLowerCase()))].filter(
        (a) => !own.has(a) && !ids.has(a) && notSystem(a),
      );
      const one = named.length === 1 ? named[0] : originalTo.length === 1 ? originalTo[0] : '';
      if (one && !own.has(one)) {
        const status = bestCode(report);
        r = [{ recipient: one, kind: kindOf(status, report), status, reason: clean(report), hasDsn: false }];
      }
    }
    if (r.length) return done(r);
    const status = bestCode(report);
    return {
      bounce: false,
      why: 'a failure notice without a recipient',
      notice: { kind: kindOf(status, report), status, reason: clean(report), hasDsn: false },
    };
  } catch (e) {
    return { bounce: false, why: `unreadable: ${(e as Error).message}` };
  }
}
