import { createPublicKey, verify } from 'node:crypto';
import { kindOf } from '../kinds.ts';
import {
  enhancedCode,
  header,
  isObj,
  type ProviderEvent,
  type ProviderResult,
  parseJson,
  refuse,
  str,
  type WebhookRequest,
} from './types.ts';

// SendGrid's Event Webhook, signed: an ECDSA (P-256, SHA-256) signature over the timestamp header
// followed by the exact body, checked with the verification key the admin copies from SendGrid.
// Bounces ("bounce" and "blocked") and spam reports are read; "smtp-id" is our Message-ID.

export function sendgridKey(publicKey: string) {
  const k = publicKey.trim();
  return k.includes('BEGIN PUBLIC KEY')
    ? createPublicKey(k)
    : createPublicKey({ key: Buffer.from(k, 'base64'), format: 'der', type: 'spki' });
}

export function readSendgrid(req: WebhookRequest, cfg: { publicKey: string }): ProviderResult {
  const sig = header(req, 'x-twilio-email-event-webhook-signature');
  const ts = header(req, 'x-twilio-email-event-webhook-timestamp');
  if (!sig || !ts) return refuse(401, 'missing SendGrid signature headers');
  let ok = false;
  try {
    ok = verify(
      'sha256',
      Buffer.concat([Buffer.from(ts, 'utf8'), req.body]),
      { key: sendgridKey(cfg.publicKey), dsaEncoding: 'der' },
      Buffer.from(sig, 'base64'),
    );
  } catch {
    ok = false;
  }
  if (!ok) return refuse(403, 'SendGrid signature refused');
  const list = parseJson(req.body);
  if (!Array.isArray(list)) return refuse(400, 'expected a JSON array of events');
  const events: ProviderEvent[] = [];
  for (const e of list.filter(isObj)) {
    const at = new Date(Number(e.timestamp) * 1000);
    const base = {
      recipient: str(e.email).toLowerCase(),
      at: Number.isNaN(at.getTime()) ? new Date() : at,
      messageIdHeader: str(e['smtp-id']) || undefined,
    };
    if (e.event === 'bounce') {
      const reason = str(e.reason);
      const status = enhancedCode(str(e.status), reason);
      const kind =
        e.type === 'blocked' ? kindOf(status || '4.0.0', reason) : kindOf(status || '5.0.0', reason);
      events.push({ ...base, kind, status, reason });
    } else if (e.event === 'spamreport') {
      events.push({ ...base, kind: 'complaint', status: '', reason: 'Reported as spam' });
    }
  }
  return { ok: true, events };
}
