import { createHmac, timingSafeEqual } from 'node:crypto';
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

// Mailgun webhooks (JSON): signature.signature is HMAC-SHA256 of timestamp + token under the
// webhook signing key. Calls older than a day are refused (Mailgun retries for 8 hours).
// "failed" with severity "permanent" is a bounce (a temporary failure is a retry still to come);
// "complained" is a complaint.

const MAX_AGE_MS = 24 * 3_600_000;

export function readMailgun(req: WebhookRequest, cfg: { signingKey: string }, now: Date): ProviderResult {
  const body = parseJson(req.body);
  if (!isObj(body) || !isObj(body.signature)) return refuse(400, 'not a Mailgun webhook');
  const { timestamp, token, signature } = body.signature;
  if (!str(timestamp) || !str(token) || !str(signature)) return refuse(401, 'missing Mailgun signature');
  const expected = createHmac('sha256', cfg.signingKey)
    .update(`${str(timestamp)}${str(token)}`)
    .digest();
  const given = Buffer.from(str(signature), 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return refuse(403, 'Mailgun signature refused');
  if (Math.abs(now.getTime() - Number(timestamp) * 1000) > MAX_AGE_MS)
    return refuse(403, 'Mailgun signature too old');
  const e = isObj(body['event-data']) ? body['event-data'] : {};
  const msg = isObj(e.message) ? e.message : {};
  const headers = isObj(msg.headers) ? msg.headers : {};
  const rawId = str(headers['message-id']);
  const envelope = isObj(e.envelope) ? e.envelope : {};
  const at = new Date(Number(e.timestamp) * 1000);
  const base = {
    recipient: str(e.recipient).toLowerCase(),
    at: Number.isNaN(at.getTime()) ? now : at,
    messageIdHeader: rawId ? (rawId.startsWith('<') ? rawId : `<${rawId}>`) : undefined,
    verpCandidates: [str(envelope.sender)].filter(Boolean),
  };
  const events: ProviderEvent[] = [];
  if (e.event === 'failed' && e.severity === 'permanent') {
    const ds = isObj(e['delivery-status']) ? e['delivery-status'] : {};
    const reason = [str(ds.message), str(ds.description)].filter(Boolean).join(' ') || str(e.reason);
    const status = enhancedCode(str(ds['enhanced-code']), reason);
    // Mailgun gave up after retrying ("old"): the failures were temporary.
    const kind =
      e.reason === 'old'
        ? 'soft'
        : kindOf(status || (str(ds.code).startsWith('4') ? '4.0.0' : '5.0.0'), reason);
    events.push({ ...base, kind, status, reason: reason || str(e.reason) });
  } else if (e.event === 'complained') {
    events.push({ ...base, kind: 'complaint', status: '', reason: 'Reported as spam' });
  }
  return { ok: true, events };
}
