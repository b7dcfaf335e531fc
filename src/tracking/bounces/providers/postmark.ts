import { createHash, timingSafeEqual } from 'node:crypto';
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

// Postmark bounce and spam-complaint webhooks. Postmark does not sign its calls: the webhook URL
// carries our unguessable token, and the admin also sets HTTP basic-auth credentials in Postmark
// (https://user:password@host/…), checked here in constant time.

const HARD = new Set(['HardBounce', 'BadEmailAddress', 'ManuallyDeactivated', 'AddressChange']);
const SOFT = new Set(['SoftBounce', 'Transient', 'DnsError', 'Unknown']);
const POLICY = new Set(['Blocked', 'SpamNotification', 'ContentRelated', 'VirusNotification', 'DMARCPolicy']);

const digest = (s: string) => createHash('sha256').update(s).digest();

export function readPostmark(
  req: WebhookRequest,
  cfg: { username: string; password: string },
): ProviderResult {
  const auth = header(req, 'authorization');
  if (!auth.startsWith('Basic ')) return refuse(401, 'missing basic auth');
  const given = Buffer.from(auth.slice(6), 'base64').toString('utf8');
  if (!timingSafeEqual(digest(given), digest(`${cfg.username}:${cfg.password}`)))
    return refuse(403, 'wrong basic-auth credentials');
  const b = parseJson(req.body);
  if (!isObj(b)) return refuse(400, 'not a Postmark webhook');
  const type = str(b.Type);
  const record = str(b.RecordType);
  const at = new Date(str(b.BouncedAt) || Date.now());
  const metadata = isObj(b.Metadata) ? b.Metadata : {};
  const content = str(b.Content);
  const base = {
    recipient: str(b.Email).toLowerCase(),
    at: Number.isNaN(at.getTime()) ? new Date() : at,
    // Our Message-ID: the sender may pass it as metadata; else it is in the bounce's content.
    messageIdHeader:
      str(metadata['parley-message-id']) || /^Message-ID:\s*(<[^>\s]+>)/im.exec(content)?.[1] || undefined,
    verpCandidates: content.match(/\bb-[0-9a-f]{32}-[a-z2-7]{16}@[a-z0-9.-]+/gi) ?? [],
  };
  const details = `${str(b.Description)} ${str(b.Details)}`.trim();
  const status = enhancedCode(str(b.Details), content);
  const events: ProviderEvent[] = [];
  if (record === 'SpamComplaint' || type === 'SpamComplaint')
    events.push({ ...base, kind: 'complaint', status: '', reason: 'Reported as spam' });
  else if (record === 'Bounce' || record === '') {
    const kind = HARD.has(type) ? 'hard' : SOFT.has(type) ? 'soft' : POLICY.has(type) ? 'policy' : null;
    if (kind) events.push({ ...base, kind, status, reason: details || type });
  }
  return { ok: true, events };
}
