import { simpleParser } from 'mailparser';

// Bounce classification (issue 5): whether a message is a bounce, and for each failed recipient
// whether the address is bad (hard), the failure temporary (soft), the sender's problem (policy) or
// a complaint (ARF). Standard DSNs (RFC 3464) are read field by field; the many MTAs that send prose
// instead are read with a table of reply codes and phrases. Never throws: anything unreadable is
// "not a bounce" with the reason.

export type BounceKind = 'hard' | 'soft' | 'policy' | 'complaint';

export interface FailedRecipient {
  recipient: string;
  kind: BounceKind;
  status: string;
  reason: string;
  hasDsn: boolean;
}

export type BounceResult =
  | { bounce: false; why: string }
  | { bounce: true; recipients: FailedRecipient[]; originalMessageId?: string };

// A match may start only where a run of address characters starts: the same matches, but a long run
// without an @ is scanned once instead of once per character (a 200 KB line took minutes).
const ADDRESS = /(?<![A-Za-z0-9._%+'=-])[A-Za-z0-9._%+'=-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/;
const ENHANCED = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/;
const REPLY = /\b([45]\d\d)[\s-]/;

// Phrases, in the languages MTAs write in, for what the code alone does not say.
const POLICY =
  /spam|blocked|block list|blacklist|blocklist|listed|reputation|policy|rejected for policy|dmarc|spf|dkim|authentication|not authori[sz]ed|access denied|banned|refused by|content rejected|virus/i;
const FULL =
  /mailbox (is )?full|quota|over ?quota|insufficient (system )?storage|exceeded storage|postfach (ist )?voll|boîte (aux lettres )?pleine|casella piena|buzón lleno|caixa (de correio )?cheia|mailbox.{0,80}exceed/i;
const HARD =
  /user unknown|unknown user|no such user|no such (mailbox|recipient|address)|does not exist|doesn't exist|invalid (mailbox|recipient|address)|recipient (address )?rejected|address rejected|mailbox (unavailable|not found|disabled)|account (has been )?(disabled|deactivated|suspended)|not (a )?valid (mailbox|recipient)|unrouteable|no mailbox|host (or domain name )?not found|domain (not found|does not exist)|name or service not known|NXDOMAIN|RecipientNotFound|address not found|benutzer unbekannt|unbekannter? (empfänger|benutzer)|existiert nicht|utilisateur inconnu|adresse (inconnue|introuvable|invalide)|usuario (desconocido|inexistente|no existe)|destinatario (sconosciuto|inesistente)|utente sconosciuto|gebruiker onbekend|onbekende ontvanger|usuário desconhecido|пользователь не найден|нет такого пользователя|用户不存在|收件人不存在|ユーザーが存在しません/i;
const SOFT =
  /temporar|try again|timed? ?out|deferred|greylist|too many (connections|messages)|rate limit|throttl|connection (refused|reset|lost)|could not connect|delivery (time|period) expired|retry timeout exceeded|message expired|service unavailable|insufficient/i;
const FAILURE_NOTICE =
  /could not be delivered|couldn't be delivered|undeliver|delivery (has )?failed|delivery (status notification )?\(failure\)|mail delivery failed|failure notice|returned mail|delivery failure|permanent (fatal )?error|permanent failure|was not delivered|message not delivered|unable to deliver|non remis|non distribuable|unzustellbar|nicht zugestellt|no se (ha )?pudo entregar|no entregado|impossibile consegnare|non recapitato|niet afgeleverd|não (foi )?entregue|не доставлено|无法投递|未送达|配信不能|delivery has failed/i;
// The prefix stays on its line: with \s it ran across blank lines, once per line (quadratic).
const ORIGINAL_COPY =
  /^(?:[^\S\n]|-)*(this is a copy of the (original )?message|original message follows|below this line is a copy|the original message was|--- ?original message|-----original message|------ this is a copy)/im;
const AUTO_REPLY =
  /^(auto(matic)? ?reply|automatische antwort|réponse automatique|respuesta automática|risposta automatica|out of (the )?office|abwesenheit|absence|vacation|away from)/i;

/** The first RFC 3463 enhanced status code (e.g. 5.1.1) in any of the texts, '' when none has one. */
export const enhancedCode = (...texts: (string | undefined | null)[]) => {
  for (const t of texts) {
    const m = t ? ENHANCED.exec(t) : null;
    if (m) return m[0];
  }
  return '';
};

/** RFC 3463 class and subject, refined by the diagnostic text where the code is vague. */
export function kindOf(status: string, text: string): BounceKind {
  const m = ENHANCED.exec(status);
  const cls = m?.[1];
  const sub = m ? `${m[2]}.${m[3]}` : '';
  if (cls === '4') return POLICY.test(text) && /block|spam|reputation|listed/i.test(text) ? 'policy' : 'soft';
  if (cls === '5') {
    if (m?.[2] === '7') return 'policy';
    if (sub === '2.2' || sub === '2.3') return 'soft';
    if (m?.[2] === '1') return 'hard';
    if (sub === '2.1') return 'hard';
    if (m?.[2] === '4' || m?.[2] === '3') return HARD.test(text) ? 'hard' : 'soft';
  }
  if (POLICY.test(text)) return 'policy';
  if (FULL.test(text)) return 'soft';
  if (HARD.test(text)) return 'hard';
  if (SOFT.test(text)) return 'soft';
  const code = REPLY.exec(text)?.[1];
  if (code?.startsWith('4')) return 'soft';
  return 'hard';
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

function fromDsn(body: string): FailedRecipient[] | 'not-failed' {
  const out: FailedRecipient[] = [];
  let sawRecipient = false;
  for (const b of parseDsnFields(body)) {
    const recipient = addr(b.get('final-recipient') ?? b.get('original-recipient'));
    if (!recipient) continue;
    sawRecipient = true;
    const action = (b.get('action') ?? '').toLowerCase();
    if (/delivered|relayed|expanded/.test(action)) continue;
    const status = ENHANCED.exec(b.get('status') ?? '')?.[0] ?? '';
    const diag = clean((b.get('diagnostic-code') ?? '').replace(/^smtp;\s*/i, ''));
    if (!/failed|delayed/.test(action) && !status.startsWith('5') && !status.startsWith('4')) continue;
    const kind: BounceKind = action.includes('delayed') ? 'soft' : kindOf(status || diag, diag);
    out.push({
      recipient,
      kind,
      status,
      reason: diag || clean(`Action: ${action || 'failed'}, Status: ${status}`),
      hasDsn: true,
    });
  }
  return out.length ? out : sawRecipient ? 'not-failed' : [];
}

/** Prose bounces: failed recipients with the reason next to them. */
function fromText(text: string, exclude: Set<string>): FailedRecipient[] {
  // An address and its reason fit in a line's first 1,000 characters, and the failed recipients in
  // the first 256 KB: the rest is never read, so the time spent on one message is bounded.
  const lines = text
    .slice(0, 256 * 1024)
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((l) => l.slice(0, 1_000));
  const found = new Map<string, FailedRecipient>();
  for (let i = 0; i < lines.length; i++) {
    const m = ADDRESS.exec(lines[i]);
    if (!m) continue;
    const a = m[0].toLowerCase();
    if (exclude.has(a) || found.has(a)) continue;
    // The reason is on the address's line or the few lines after it.
    const around = lines.slice(i, i + 6).join(' ');
    const status = ENHANCED.exec(around)?.[0] ?? '';
    const code = REPLY.exec(around)?.[1];
    const hasReason =
      status || code || HARD.test(around) || FULL.test(around) || POLICY.test(around) || SOFT.test(around);
    if (!hasReason) continue;
    found.set(a, {
      recipient: a,
      kind: kindOf(status, around),
      status,
      reason: clean(around),
      hasDsn: false,
    });
  }
  return [...found.values()];
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
      recipients,
      ...(originalMessageId ? { originalMessageId } : {}),
    });

    // ARF complaint (RFC 5965)
    const feedback = partText(/^message\/feedback-report$/i).join('\n');
    if (reportType === 'feedback-report' || feedback) {
      const f = parseDsnFields(feedback)[0] ?? new Map<string, string>();
      const to = addr(f.get('original-rcpt-to')) || addr(/^To:\s*(.+)$/im.exec(original)?.[1]);
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

    // RFC 3464 delivery status
    const dsn = partText(/^(message\/delivery-status|message\/global-delivery-status)$/i).join('\n\n');
    if (dsn) {
      const r = fromDsn(dsn);
      if (r === 'not-failed') return { bounce: false, why: 'a delivery report of success or relay' };
      if (r.length) return done(r);
    }

    const subject = mail.subject ?? '';
    const text = `${mail.text ?? ''}\n${parts
      .filter((p) => /^text\/plain/i.test(p.contentType))
      .map((p) => p.content.toString('utf8'))
      .join('\n')}`;
    const autoSubmitted = header('auto-submitted').toLowerCase();
    const looksFailed = FAILURE_NOTICE.test(subject) || FAILURE_NOTICE.test(text.slice(0, 3000));
    if (header('disposition-notification-to') === '' && /disposition-notification/i.test(reportType))
      return { bounce: false, why: 'a read receipt' };
    if (
      !looksFailed &&
      (autoSubmitted.startsWith('auto-replied') ||
        header('x-autoreply') ||
        header('x-autorespond') ||
        AUTO_REPLY.test(subject))
    )
      return { bounce: false, why: 'an automatic reply' };
    if (!looksFailed && !reportType) return { bounce: false, why: 'no failure notice' };
    // Our own return path (the bounce's To) and the reporting system are not failed recipients; the
    // copy of the original message that many MTAs append is not read for recipients either.
    const own = new Set(
      [
        addr(mail.from?.text),
        addr(typeof mail.to === 'object' && 'text' in mail.to ? mail.to.text : ''),
      ].filter(Boolean),
    );
    const r = fromText(text.split(ORIGINAL_COPY)[0], own);
    if (r.length) return done(r);
    return { bounce: false, why: 'a failure notice without a recipient' };
  } catch (e) {
    return { bounce: false, why: `unreadable: ${(e as Error).message}` };
  }
}
