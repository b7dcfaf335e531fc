import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { type Actor, requireAdmin } from '../../crm/access.ts';
import type { BounceProvider } from '../../db/schema.ts';
import type { Deps } from '../../deps.ts';
import { invalid, notFound } from '../../errors.ts';
import { decryptSecret, encryptSecret } from '../../sending/secrets.ts';
import { parseVerp } from '../../sending/verp.ts';
import { webhookBounces } from './metrics.ts';
import { readMailgun } from './providers/mailgun.ts';
import { readPostmark } from './providers/postmark.ts';
import { readSendgrid, sendgridKey } from './providers/sendgrid.ts';
import { readSes } from './providers/ses.ts';
import type { ProviderEvent, ProviderResult, WebhookRequest } from './providers/types.ts';
import { type BounceItem, recordBounces } from './record.ts';

// Provider webhooks for bounces and complaints, per org: the admin saves the provider's proof
// (SNS topics, SendGrid's verification key, Mailgun's signing key, Postmark basic-auth
// credentials; secrets encrypted at rest) and gets a URL with an unguessable token, shown once.
// A call is matched to its org by the token, verified by the provider's own means, and each
// event to a message of that org only: by our VERP return path, by our Message-ID, or else by the
// newest message to that recipient sent before the event.

export const PROVIDERS: BounceProvider[] = ['ses', 'sendgrid', 'postmark', 'mailgun'];

export interface WebhookSettings {
  /** ses */
  topicArns?: string[];
  /** sendgrid: the verification key (base64 DER or PEM) */
  publicKey?: string;
  /** mailgun */
  signingKey?: string;
  /** postmark */
  username?: string;
  password?: string;
}

const hashToken = (t: string) => createHash('sha256').update(t).digest('hex');
const context = (orgId: string, provider: string) => `bounce_webhooks.secret:${orgId}:${provider}`;
const TOPIC_ARN = /^arn:aws(-[a-z]+)*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$/;

function validate(
  provider: BounceProvider,
  s: WebhookSettings,
): { config: Record<string, unknown>; secret: string | null } {
  switch (provider) {
    case 'ses': {
      const arns = (s.topicArns ?? []).map((a) => a.trim()).filter(Boolean);
      if (!arns.length || arns.some((a) => !TOPIC_ARN.test(a)))
        throw invalid('Enter the ARNs of the SNS topics your SES notifications go to', [
          { path: 'topicArns', message: 'arn:aws:sns:<region>:<account>:<topic>' },
        ]);
      return { config: { topicArns: arns }, secret: null };
    }
    case 'sendgrid': {
      const key = s.publicKey?.trim() ?? '';
      try {
        if (sendgridKey(key).asymmetricKeyType !== 'ec') throw 0;
      } catch {
        throw invalid('Paste the verification key of the signed Event Webhook (SendGrid › Mail Settings)', [
          { path: 'publicKey', message: 'not an ECDSA public key' },
        ]);
      }
      return { config: { publicKey: key }, secret: null };
    }
    case 'mailgun': {
      const key = s.signingKey?.trim() ?? '';
      if (key.length < 16)
        throw invalid('Paste the HTTP webhook signing key (Mailgun › Webhooks)', [
          { path: 'signingKey', message: 'too short' },
        ]);
      return { config: {}, secret: key };
    }
    case 'postmark': {
      const username = s.username?.trim() ?? '';
      const password = s.password ?? '';
      if (!/^[^:\s]{1,100}$/.test(username) || password.length < 12 || password.length > 200)
        throw invalid('Choose a user name and a password of at least 12 characters for the webhook', [
          { path: username ? 'password' : 'username', message: 'required' },
        ]);
      return { config: { username }, secret: password };
    }
    default:
      throw invalid('Unknown provider');
  }
}

export async function listWebhooks(deps: Deps, actor: Actor) {
  requireAdmin(actor);
  const rows = await deps.db
    .selectFrom('bounce_webhooks')
    .select(['provider', 'config', 'last_received_at', 'updated_at'])
    .where('org_id', '=', actor.orgId)
    .execute();
  return PROVIDERS.map((p) => {
    const r = rows.find((x) => x.provider === p);
    return {
      provider: p,
      configured: !!r,
      // Non-secret settings only (topics, the public key, the user name).
      settings: r ? (r.config as Record<string, unknown>) : null,
      lastReceivedAt: r?.last_received_at ? new Date(r.last_received_at).toISOString() : null,
      updatedAt: r ? new Date(r.updated_at).toISOString() : null,
    };
  });
}

/**
 * Creates or updates an org's webhook for a provider. A new URL (token) is made on creation or
 * when `rotate` is set, and returned only then; an update without it keeps the URL.
 */
export async function saveWebhook(
  deps: Deps,
  actor: Actor,
  provider: BounceProvider,
  settings: WebhookSettings,
  opts: { rotate?: boolean } = {},
): Promise<{ provider: BounceProvider; url: string | null }> {
  requireAdmin(actor);
  if (!PROVIDERS.includes(provider)) throw notFound('Provider');
  const { config, secret } = validate(provider, settings);
  const secretEnc =
    secret === null ? null : encryptSecret(deps.config, secret, context(actor.orgId, provider));
  const token = randomBytes(24).toString('base64url');
  const url = `${deps.config.publicUrl}/hooks/bounces/${provider}/${token}`;
  const existing = await deps.db
    .selectFrom('bounce_webhooks')
    .select('org_id')
    .where('org_id', '=', actor.orgId)
    .where('provider', '=', provider)
    .executeTakeFirst();
  if (!existing) {
    await deps.db
      .insertInto('bounce_webhooks')
      .values({
        org_id: actor.orgId,
        provider,
        token_hash: hashToken(token),
        secret_enc: secretEnc,
        config: JSON.stringify(config),
      })
      .onConflict((c) => c.columns(['org_id', 'provider']).doNothing())
      .execute();
    return { provider, url };
  }
  await deps.db
    .updateTable('bounce_webhooks')
    .set({
      secret_enc: secretEnc,
      config: JSON.stringify(config),
      updated_at: deps.clock.now(),
      ...(opts.rotate ? { token_hash: hashToken(token) } : {}),
    })
    .where('org_id', '=', actor.orgId)
    .where('provider', '=', provider)
    .execute();
  return { provider, url: opts.rotate ? url : null };
}

export async function deleteWebhook(deps: Deps, actor: Actor, provider: BounceProvider): Promise<void> {
  requireAdmin(actor);
  const r = await deps.db
    .deleteFrom('bounce_webhooks')
    .where('org_id', '=', actor.orgId)
    .where('provider', '=', provider)
    .executeTakeFirst();
  if (!r.numDeletedRows) throw notFound('Webhook');
}

const normaliseId = (h: string) => {
  const t = h.trim();
  return t.startsWith('<') ? t : `<${t}>`;
};

/** The message of this org an event is about, or null. */
async function matchMessage(deps: Deps, orgId: string, e: ProviderEvent): Promise<string | null> {
  const secret = deps.config.secret as string;
  for (const v of e.verpCandidates ?? []) {
    const id = parseVerp(v, secret);
    if (!id) continue;
    const m = await deps.db
      .selectFrom('messages')
      .select('id')
      .where('id', '=', id)
      .where('org_id', '=', orgId)
      .executeTakeFirst();
    if (m) return m.id;
  }
  if (e.messageIdHeader) {
    const m = await deps.db
      .selectFrom('messages')
      .select('id')
      .where('message_id_header', '=', normaliseId(e.messageIdHeader))
      .where('org_id', '=', orgId)
      .executeTakeFirst();
    if (m) return m.id;
  }
  if (!e.recipient) return null;
  const m = (
    await sql<{ id: string }>`
      SELECT id FROM messages
      WHERE org_id = ${orgId} AND lower(to_address) = ${e.recipient.toLowerCase()} AND sent_at IS NOT NULL
        AND sent_at <= ${new Date(e.at.getTime() + 60_000)} AND sent_at > ${new Date(e.at.getTime() - 30 * 86_400_000)}
      ORDER BY sent_at DESC LIMIT 1`.execute(deps.db)
  ).rows[0];
  return m?.id ?? null;
}

export interface WebhookReply {
  status: number;
  body: Record<string, unknown>;
}

/** One provider call: verified, matched, recorded. Never throws for bad input (a 4xx reply). */
export async function receiveWebhook(
  deps: Deps,
  provider: string,
  token: string,
  req: WebhookRequest,
): Promise<WebhookReply> {
  const p = PROVIDERS.find((x) => x === provider);
  const hook = p
    ? await deps.db
        .selectFrom('bounce_webhooks')
        .selectAll()
        .where('provider', '=', p)
        .where('token_hash', '=', hashToken(token))
        .executeTakeFirst()
    : undefined;
  if (!p || !hook) {
    webhookBounces.inc({ provider: p ?? 'unknown', outcome: 'refused' });
    return { status: 404, body: { error: { code: 'not_found', message: 'No such webhook' } } };
  }
  const cfg = hook.config as Record<string, unknown>;
  const secret = () => decryptSecret(deps.config, hook.secret_enc ?? '', context(hook.org_id, p));
  const now = deps.clock.now();
  let r: ProviderResult;
  switch (p) {
    case 'ses':
      r = await readSes(req, { topicArns: (cfg.topicArns as string[]) ?? [] }, now);
      break;
    case 'sendgrid':
      r = readSendgrid(req, { publicKey: String(cfg.publicKey ?? '') });
      break;
    case 'mailgun':
      r = readMailgun(req, { signingKey: secret() }, now);
      break;
    case 'postmark':
      r = readPostmark(req, { username: String(cfg.username ?? ''), password: secret() });
      break;
  }
  if (!r.ok) {
    webhookBounces.inc({ provider: p, outcome: 'refused' });
    deps.log.warn({ provider: p, orgId: hook.org_id, why: r.message }, 'bounce webhook refused');
    return {
      status: r.status,
      body: { error: { code: r.status === 400 ? 'validation_failed' : 'forbidden', message: r.message } },
    };
  }
  const items: BounceItem[] = [];
  let unmatched = 0;
  for (const e of r.events) {
    const id = await matchMessage(deps, hook.org_id, e);
    if (!id) {
      unmatched++;
      continue;
    }
    items.push({
      messageId: id,
      kind: e.kind,
      status: e.status,
      reason: e.reason,
      at: e.at,
      source: 'provider',
    });
  }
  const rec = await recordBounces(deps, items, { orgId: hook.org_id });
  await deps.db
    .updateTable('bounce_webhooks')
    .set({ last_received_at: now })
    .where('org_id', '=', hook.org_id)
    .where('provider', '=', p)
    .execute();
  if (rec.recorded) webhookBounces.inc({ provider: p, outcome: 'recorded' }, rec.recorded);
  if (unmatched + rec.duplicates)
    webhookBounces.inc({ provider: p, outcome: 'ignored' }, unmatched + rec.duplicates);
  return {
    status: 200,
    body: {
      ...(r.reply ?? {}),
      recorded: rec.recorded,
      duplicates: rec.duplicates,
      unmatched: unmatched + rec.unknown,
    },
  };
}
