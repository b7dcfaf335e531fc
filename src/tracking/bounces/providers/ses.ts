import { createVerify, X509Certificate } from 'node:crypto';
import { kindOf } from '../kinds.ts';
import {
  enhancedCode,
  isObj,
  type ProviderEvent,
  type ProviderResult,
  parseJson,
  refuse,
  str,
  type WebhookRequest,
} from './types.ts';

// Amazon SES bounce and complaint notifications, delivered by SNS. Every SNS message is signed
// (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) with a certificate that SNS publishes at an
// https URL on an amazonaws.com host; the URL is checked before anything is fetched, and the topic
// must be one the admin configured, since any AWS account can sign messages for its own topics.
// A SubscriptionConfirmation is confirmed by fetching its SubscribeURL (checked the same way).

/** The outbound HTTP of SNS handling; tests replace get (no network in tests). */
export const snsHttp = {
  get: async (url: string): Promise<string> => {
    const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`GET ${new URL(url).host} answered ${res.status}`);
    return res.text();
  },
};

const SNS_HOST = /^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/;

/** An SNS URL we may call: https, an SNS host of AWS, no credentials or odd port. */
export function snsUrlOk(raw: string, kind: 'cert' | 'subscribe'): boolean {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return false;
  }
  if (u.protocol !== 'https:' || u.username || u.password || (u.port && u.port !== '443')) return false;
  if (!SNS_HOST.test(u.hostname)) return false;
  return kind === 'cert' ? u.pathname.endsWith('.pem') : true;
}

const certs = new Map<string, X509Certificate>();

async function signingCert(url: string, now: Date): Promise<X509Certificate> {
  let cert = certs.get(url);
  if (!cert) {
    cert = new X509Certificate(await snsHttp.get(url));
    // The published certificate is Amazon's SNS certificate, not any certificate on the host.
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1] ?? '';
    if (!/(^|\.)amazonaws\.com(\.cn)?$/.test(cn)) throw new Error(`unexpected certificate subject ${cn}`);
    if (certs.size > 20) certs.clear();
    certs.set(url, cert);
  }
  if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) throw new Error('certificate expired');
  return cert;
}

const SIGNED_FIELDS: Record<string, string[]> = {
  Notification: ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'],
  SubscriptionConfirmation: [
    'Message',
    'MessageId',
    'SubscribeURL',
    'Timestamp',
    'Token',
    'TopicArn',
    'Type',
  ],
  UnsubscribeConfirmation: ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'],
};

/** The canonical string SNS signs: "Name\nvalue\n" for each signed field present, in order. */
export function snsStringToSign(m: Record<string, unknown>): string {
  return (SIGNED_FIELDS[str(m.Type)] ?? [])
    .filter((k) => typeof m[k] === 'string')
    .map((k) => `${k}\n${m[k]}\n`)
    .join('');
}

export async function verifySns(m: Record<string, unknown>, now: Date): Promise<string | null> {
  if (!SIGNED_FIELDS[str(m.Type)]) return 'unknown message type';
  const certUrl = str(m.SigningCertURL) || str(m.SigningCertUrl);
  if (!snsUrlOk(certUrl, 'cert')) return 'the signing certificate URL is not an SNS https URL';
  const algo =
    str(m.SignatureVersion) === '2' ? 'RSA-SHA256' : str(m.SignatureVersion) === '1' ? 'RSA-SHA1' : '';
  if (!algo) return 'unknown signature version';
  let cert: X509Certificate;
  try {
    cert = await signingCert(certUrl, now);
  } catch (e) {
    return `the signing certificate could not be used: ${(e as Error).message}`;
  }
  const ok = createVerify(algo)
    .update(snsStringToSign(m), 'utf8')
    .verify(cert.publicKey, str(m.Signature), 'base64');
  return ok ? null : 'bad signature';
}

const PERMANENT_DEFAULT = '5.1.0';

function fromSes(n: Record<string, unknown>): ProviderEvent[] {
  const mail = isObj(n.mail) ? n.mail : {};
  const common = isObj(mail.commonHeaders) ? mail.commonHeaders : {};
  const headers = Array.isArray(mail.headers) ? mail.headers.filter(isObj) : [];
  const original = headers.find((h) => str(h.name).toLowerCase() === 'message-id');
  const messageIdHeader = str(original?.value) || str(common.messageId) || undefined;
  const returnPath = headers.find((h) => str(h.name).toLowerCase() === 'return-path');
  const verpCandidates = [str(mail.source), str(returnPath?.value)].filter(Boolean);
  const type = str(n.notificationType || n.eventType);
  if (type === 'Bounce' && isObj(n.bounce)) {
    const b = n.bounce;
    const bt = str(b.bounceType);
    const at = new Date(str(b.timestamp) || Date.now());
    const recipients = Array.isArray(b.bouncedRecipients) ? b.bouncedRecipients.filter(isObj) : [];
    return recipients.map((r) => {
      const diag = str(r.diagnosticCode);
      const status = enhancedCode(str(r.status), diag) || (bt === 'Permanent' ? PERMANENT_DEFAULT : '4.0.0');
      const sub = str(b.bounceSubType);
      const kind =
        bt === 'Transient' && /ContentRejected|AttachmentRejected/.test(sub)
          ? 'policy'
          : bt === 'Transient' || bt === 'Undetermined'
            ? kindOf(status.startsWith('5') ? status : '4.0.0', diag) === 'policy'
              ? 'policy'
              : 'soft'
            : kindOf(status, diag);
      return {
        kind,
        recipient: str(r.emailAddress).toLowerCase(),
        status: enhancedCode(str(r.status), diag),
        reason: diag || `${bt} ${sub}`.trim(),
        at: Number.isNaN(at.getTime()) ? new Date() : at,
        messageIdHeader,
        verpCandidates,
      };
    });
  }
  if (type === 'Complaint' && isObj(n.complaint)) {
    const c = n.complaint;
    if (str(c.complaintFeedbackType) === 'not-spam') return [];
    const at = new Date(str(c.timestamp) || Date.now());
    const recipients = Array.isArray(c.complainedRecipients) ? c.complainedRecipients.filter(isObj) : [];
    return recipients.map((r) => ({
      kind: 'complaint' as const,
      recipient: str(r.emailAddress).toLowerCase(),
      status: '',
      reason: `Feedback-Type: ${str(c.complaintFeedbackType) || 'abuse'}`,
      at: Number.isNaN(at.getTime()) ? new Date() : at,
      messageIdHeader,
      verpCandidates,
    }));
  }
  return [];
}

/**
 * An SES notification delivered by email (an SNS email subscription: "AWS Notification Message",
 * the notification as JSON in the body), as failed recipients; null when the text is not one.
 */
export function sesEmailNotice(text: string): ProviderEvent[] | null {
  if (!/notificationType|eventType/.test(text)) return null;
  try {
    // Sendmail breaks a line over 990 characters with "!", a newline and a space.
    let n: unknown = JSON.parse(text.trim().replace(/!\r?\n /g, ''));
    if (isObj(n) && typeof n.Message === 'string') n = JSON.parse(n.Message);
    return isObj(n) ? fromSes(n) : null;
  } catch {
    return null;
  }
}

export async function readSes(
  req: WebhookRequest,
  cfg: { topicArns: string[] },
  now: Date,
): Promise<ProviderResult> {
  const m = parseJson(req.body);
  if (!isObj(m)) return refuse(400, 'not an SNS message');
  const problem = await verifySns(m, now);
  if (problem) return refuse(403, `SNS signature refused: ${problem}`);
  if (!cfg.topicArns.includes(str(m.TopicArn)))
    return refuse(403, 'the SNS topic is not one configured for this organization');
  if (m.Type === 'SubscriptionConfirmation') {
    const url = str(m.SubscribeURL);
    if (!snsUrlOk(url, 'subscribe')) return refuse(400, 'the SubscribeURL is not an SNS https URL');
    await snsHttp.get(url);
    return { ok: true, events: [], reply: { subscribed: true } };
  }
  if (m.Type !== 'Notification') return { ok: true, events: [] };
  const n = parseJson(Buffer.from(str(m.Message), 'utf8'));
  return { ok: true, events: isObj(n) ? fromSes(n) : [] };
}
