import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Deps } from '../../deps.ts';
import {
  createEndpoint,
  deleteEndpoint,
  getDelivery,
  getEndpoint,
  listDeliveries,
  listEndpoints,
  retryDelivery,
  rotateSecret,
  sendTestEvent,
  updateEndpoint,
  WEBHOOK_EVENTS,
} from '../../webhooks/service.ts';
import { actorOf } from '../auth.ts';

// Outgoing webhooks (F7.2), admins only. Requests carry
// Parley-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>,
// Parley-Event and Parley-Delivery (the payload's id, the same on every retry).

const idParams = z.object({ id: z.uuid() });
const events = z
  .array(z.enum(WEBHOOK_EVENTS as [string, ...string[]]))
  .min(1)
  .max(WEBHOOK_EVENTS.length);

const present = (e: Record<string, unknown>) => ({
  id: e.id,
  url: e.url,
  description: e.description,
  events: e.events,
  enabled: e.enabled,
  createdAt: e.created_at,
  updatedAt: e.updated_at,
});
const presentDelivery = (d: Record<string, unknown>) => ({
  id: d.id,
  event: d.event,
  status: d.status,
  attempts: d.attempts,
  nextAttemptAt: d.status === 'pending' ? d.next_attempt_at : null,
  lastStatusCode: d.last_status_code,
  lastError: d.last_error,
  lastDurationMs: d.last_duration_ms,
  deliveredAt: d.delivered_at,
  createdAt: d.created_at,
});

export function webhookRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['webhooks'];

  r.get('/api/webhooks', { schema: { tags } }, async (req) => ({
    endpoints: (await listEndpoints(deps, actorOf(req))).map(present),
    events: WEBHOOK_EVENTS,
  }));
  r.post(
    '/api/webhooks',
    {
      schema: {
        tags,
        body: z
          .object({
            url: z.string().max(2000),
            description: z.string().max(200).optional(),
            events,
            enabled: z.boolean().optional(),
          })
          .strict(),
      },
    },
    async (req, reply) => {
      const { endpoint, secret } = await createEndpoint(deps, actorOf(req), req.body);
      return reply.status(201).send({ endpoint: present(endpoint), secret });
    },
  );
  r.get('/api/webhooks/:id', { schema: { tags, params: idParams } }, async (req) =>
    present(await getEndpoint(deps, actorOf(req), req.params.id)),
  );
  r.patch(
    '/api/webhooks/:id',
    {
      schema: {
        tags,
        params: idParams,
        body: z
          .object({
            url: z.string().max(2000).optional(),
            description: z.string().max(200).optional(),
            events: events.optional(),
            enabled: z.boolean().optional(),
          })
          .strict(),
      },
    },
    async (req) => present(await updateEndpoint(deps, actorOf(req), req.params.id, req.body)),
  );
  r.delete('/api/webhooks/:id', { schema: { tags, params: idParams } }, async (req, reply) => {
    await deleteEndpoint(deps, actorOf(req), req.params.id);
    return reply.status(204).send();
  });
  r.post('/api/webhooks/:id/secret', { schema: { tags, params: idParams } }, async (req) =>
    rotateSecret(deps, actorOf(req), req.params.id),
  );
  r.post('/api/webhooks/:id/test', { schema: { tags, params: idParams } }, async (req, reply) =>
    reply.status(202).send(await sendTestEvent(deps, actorOf(req), req.params.id)),
  );
  r.get(
    '/api/webhooks/:id/deliveries',
    {
      schema: {
        tags,
        params: idParams,
        querystring: z.object({
          status: z.enum(['pending', 'delivering', 'delivered', 'failed']).optional(),
          before: z.string().max(40).optional(),
          limit: z.coerce.number().int().min(1).max(200).optional(),
        }),
      },
    },
    async (req) => ({
      deliveries: (await listDeliveries(deps, actorOf(req), req.params.id, req.query)).map(presentDelivery),
    }),
  );
  r.get('/api/webhooks/deliveries/:id', { schema: { tags, params: idParams } }, async (req) => {
    const d = await getDelivery(deps, actorOf(req), req.params.id);
    return {
      ...presentDelivery(d),
      endpointId: d.endpoint_id,
      payload: d.payload,
      log: d.log.map((a) => ({
        attempt: a.attempt,
        at: a.at,
        statusCode: a.status_code,
        durationMs: a.duration_ms,
        error: a.error,
      })),
    };
  });
  r.post('/api/webhooks/deliveries/:id/retry', { schema: { tags, params: idParams } }, async (req, reply) => {
    await retryDelivery(deps, actorOf(req), req.params.id);
    return reply.status(202).send({ ok: true });
  });
}
