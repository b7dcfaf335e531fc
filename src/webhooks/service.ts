// Outgoing webhook endpoints (F7.2), for admins only: which events go where, the signing secret
// (shown once, stored encrypted), and the delivery log.
import { randomUUID } from 'node:crypto';
import { type Actor, requireAdmin } from '../crm/index.ts';
import type { WebhookEvent } from '../db/schema.ts';
import type { Deps } from '../deps.ts';
import { AppError, invalid, notFound } from '../errors.ts';
import { encryptSecret } from '../sending/secrets.ts';
import { newWebhookSecret } from './signing.ts';
import { checkWebhookUrl } from './targets.ts';

export const WEBHOOK_EVENTS: WebhookEvent[] = [
  'sent',
  'delivered',
  'bounced',
  'opened',
  'clicked',
  'replied',
  'unsubscribed',
];
export const MAX_ENDPOINTS = 10;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const secretContext = (orgId: string, endpointId: string) =>
  `webhook_endpoints.secret:${orgId}:${endpointId}`;

export interface EndpointInput {
  url: string;
  description?: string;
  events: string[];
  enabled?: boolean;
}

function checkEvents(events: string[]): WebhookEvent[] {
  const unknown = events.filter((e) => !WEBHOOK_EVENTS.includes(e as WebhookEvent));
  if (unknown.length)
    throw invalid(`Unknown event ${unknown.join(', ')}; choose among ${WEBHOOK_EVENTS.join(', ')}`, [
      { path: 'events', message: 'unknown event' },
    ]);
  const set = [...new Set(events)] as WebhookEvent[];
  if (!set.length) throw invalid('Choose at least one event', [{ path: 'events', message: 'required' }]);
  return set;
}

const columns = [
  'id',
  'url',
  'description',
  'events',
  'enabled',
  'created_at',
  'updated_at',
  'created_by',
] as const;

export async function listEndpoints(deps: Deps, actor: Actor) {
  requireAdmin(actor);
  return deps.db
    .selectFrom('webhook_endpoints')
    .select(columns)
    .where('org_id', '=', actor.orgId)
    .orderBy('created_at')
    .execute();
}

async function loadEndpoint(deps: Deps, actor: Actor, id: string) {
  requireAdmin(actor);
  const e = UUID.test(id)
    ? await deps.db
        .selectFrom('webhook_endpoints')
        .select(columns)
        .where('org_id', '=', actor.orgId)
        .where('id', '=', id)
        .executeTakeFirst()
    : undefined;
  if (!e) throw notFound('Webhook endpoint');
  return e;
}

export const getEndpoint = loadEndpoint;

/** Creates an endpoint; the secret is returned here and never again. */
export async function createEndpoint(deps: Deps, actor: Actor, input: EndpointInput) {
  requireAdmin(actor);
  const url = checkWebhookUrl(input.url, deps.config.webhooksAllowPrivate).toString();
  const events = checkEvents(input.events);
  const n = await deps.db
    .selectFrom('webhook_endpoints')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('org_id', '=', actor.orgId)
    .executeTakeFirstOrThrow();
  if (Number(n.n) >= MAX_ENDPOINTS)
    throw new AppError(
      'limit_exceeded',
      `An organization can have at most ${MAX_ENDPOINTS} webhook endpoints`,
    );
  const id = randomUUID();
  const secret = newWebhookSecret();
  const endpoint = await deps.db
    .insertInto('webhook_endpoints')
    .values({
      id,
      org_id: actor.orgId,
      url,
      description: (input.description ?? '').trim().slice(0, 200),
      events,
      secret_enc: encryptSecret(deps.config, secret, secretContext(actor.orgId, id)),
      enabled: input.enabled ?? true,
      created_by: actor.userId,
    })
    .returning(columns)
    .executeTakeFirstOrThrow();
  return { endpoint, secret };
}

export async function updateEndpoint(deps: Deps, actor: Actor, id: string, input: Partial<EndpointInput>) {
  const e = await loadEndpoint(deps, actor, id);
  const set: Record<string, unknown> = { updated_at: deps.clock.now() };
  if (input.url !== undefined)
    set.url = checkWebhookUrl(input.url, deps.config.webhooksAllowPrivate).toString();
  if (input.events !== undefined) set.events = checkEvents(input.events);
  if (input.description !== undefined) set.description = input.description.trim().slice(0, 200);
  if (input.enabled !== undefined) set.enabled = input.enabled;
  return deps.db.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('webhook_endpoints')
      .set(set)
      .where('org_id', '=', actor.orgId)
      .where('id', '=', e.id)
      .returning(columns)
      .executeTakeFirstOrThrow();
    // A disabled endpoint gets nothing: what was waiting for it is dropped, visibly, in the log.
    if (input.enabled === false)
      await trx
        .updateTable('webhook_deliveries')
        .set({ status: 'failed', last_error: 'endpoint disabled' })
        .where('endpoint_id', '=', e.id)
        .where('status', '=', 'pending')
        .execute();
    return updated;
  });
}

export async function rotateSecret(deps: Deps, actor: Actor, id: string) {
  const e = await loadEndpoint(deps, actor, id);
  const secret = newWebhookSecret();
  await deps.db
    .updateTable('webhook_endpoints')
    .set({
      secret_enc: encryptSecret(deps.config, secret, secretContext(actor.orgId, e.id)),
      updated_at: deps.clock.now(),
    })
    .where('org_id', '=', actor.orgId)
    .where('id', '=', e.id)
    .execute();
  return { secret };
}

export async function deleteEndpoint(deps: Deps, actor: Actor, id: string) {
  const e = await loadEndpoint(deps, actor, id);
  await deps.db
    .deleteFrom('webhook_endpoints')
    .where('org_id', '=', actor.orgId)
    .where('id', '=', e.id)
    .execute();
}

/** Queues a 'ping' to the endpoint, so an admin can check the receiver and its signature check. */
export async function sendTestEvent(deps: Deps, actor: Actor, id: string) {
  const e = await loadEndpoint(deps, actor, id);
  const deliveryId = randomUUID();
  const now = deps.clock.now();
  await deps.db
    .insertInto('webhook_deliveries')
    .values({
      id: deliveryId,
      org_id: actor.orgId,
      endpoint_id: e.id,
      event_key: `t:${deliveryId}`,
      event: 'ping',
      payload: JSON.stringify({ id: deliveryId, event: 'ping', createdAt: now.toISOString(), data: {} }),
      next_attempt_at: now,
    })
    .execute();
  return { deliveryId };
}

const deliveryColumns = [
  'id',
  'event',
  'status',
  'attempts',
  'next_attempt_at',
  'last_status_code',
  'last_error',
  'last_duration_ms',
  'delivered_at',
  'created_at',
] as const;

/** The delivery log of an endpoint, newest first, paged by created_at. */
export async function listDeliveries(
  deps: Deps,
  actor: Actor,
  id: string,
  q: { status?: string; before?: string; limit?: number },
) {
  const e = await loadEndpoint(deps, actor, id);
  const limit = Math.min(Math.max(q.limit ?? 50, 1), 200);
  const before = q.before ? new Date(q.before) : null;
  if (before && Number.isNaN(before.getTime())) throw invalid('before must be a date-time');
  const rows = await deps.db
    .selectFrom('webhook_deliveries')
    .select(deliveryColumns)
    .where('org_id', '=', actor.orgId)
    .where('endpoint_id', '=', e.id)
    .$if(!!q.status, (w) => w.where('status', '=', q.status as 'pending'))
    .$if(!!before, (w) => w.where('created_at', '<', before as Date))
    .orderBy('created_at', 'desc')
    .limit(limit)
    .execute();
  return rows;
}

export async function getDelivery(deps: Deps, actor: Actor, deliveryId: string) {
  requireAdmin(actor);
  const d = UUID.test(deliveryId)
    ? await deps.db
        .selectFrom('webhook_deliveries')
        .select([...deliveryColumns, 'endpoint_id', 'payload'])
        .where('org_id', '=', actor.orgId)
        .where('id', '=', deliveryId)
        .executeTakeFirst()
    : undefined;
  if (!d) throw notFound('Webhook delivery');
  const attempts = await deps.db
    .selectFrom('webhook_attempts')
    .select(['attempt', 'at', 'status_code', 'duration_ms', 'error'])
    .where('delivery_id', '=', d.id)
    .orderBy('attempt')
    .execute();
  return { ...d, log: attempts };
}

/** Sends a failed delivery again now (its attempts start over). */
export async function retryDelivery(deps: Deps, actor: Actor, deliveryId: string) {
  const d = await getDelivery(deps, actor, deliveryId);
  if (d.status !== 'failed') throw invalid('Only a failed delivery can be sent again');
  await deps.db
    .updateTable('webhook_deliveries')
    .set({ status: 'pending', attempts: 0, next_attempt_at: deps.clock.now(), last_error: null })
    .where('org_id', '=', actor.orgId)
    .where('id', '=', d.id)
    .where('status', '=', 'failed')
    .execute();
}
