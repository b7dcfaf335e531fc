import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Deps } from '../../deps.ts';
import { sendTestEmail } from '../../sending/delivery.ts';
import { addDkimKey, deleteDkimKey, listDkimKeys } from '../../sending/dkim-keys.ts';
import { getOutboxMessage, getOutboxRaw, listOutbox } from '../../sending/outbox.ts';
import { deleteRelay, getRelay, saveRelay } from '../../sending/relays.ts';
import { dropRelayTransport } from '../../sending/transport.ts';
import { actorOf } from '../auth.ts';

const idParams = z.object({ id: z.uuid() });

const relayBody = z.object({
  host: z.string().min(1).max(255),
  port: z.number().int().min(1).max(65535),
  security: z.enum(['none', 'starttls', 'tls']),
  username: z.string().max(320).nullable().optional(),
  password: z
    .string()
    .max(1000)
    .nullable()
    .optional()
    .describe('absent: keep the stored one; null: remove it'),
  maxConnections: z.number().int().min(1).max(100).optional(),
  maxPerSecond: z.number().min(0.01).max(100_000).optional(),
  domainLimits: z
    .record(
      z.string().max(255),
      z.object({
        connections: z.number().int().min(1).max(100).optional(),
        perSecond: z.number().min(0.01).max(100_000).optional(),
      }),
    )
    .optional(),
  sendingDomain: z.string().max(255).nullable().optional(),
});

/** SMTP relay, DKIM keys (admins) and the local outbox. */
export function deliveryRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/api/admin/smtp-relay', { schema: { tags: ['delivery'] } }, async (req) => {
    const relay = await getRelay(deps, actorOf(req));
    return { relay, transport: relay ? 'relay' : 'outbox' };
  });
  r.put('/api/admin/smtp-relay', { schema: { tags: ['delivery'], body: relayBody } }, async (req) => {
    const actor = actorOf(req);
    const relay = await saveRelay(deps, actor, req.body);
    dropRelayTransport(deps, actor.orgId); // this process at once; others notice the new version
    return { relay, transport: 'relay' };
  });
  r.delete('/api/admin/smtp-relay', { schema: { tags: ['delivery'] } }, async (req, reply) => {
    const actor = actorOf(req);
    await deleteRelay(deps, actor);
    dropRelayTransport(deps, actor.orgId);
    return reply.status(204).send();
  });
  r.post(
    '/api/admin/smtp-relay/test',
    {
      schema: { tags: ['delivery'], body: z.object({ to: z.string().max(320) }) },
      config: { rateLimit: { max: 10, timeWindow: '1 minute' } },
    },
    async (req) => sendTestEmail(deps, actorOf(req), req.body),
  );

  r.get('/api/admin/dkim-keys', { schema: { tags: ['delivery'] } }, async (req) =>
    listDkimKeys(deps, actorOf(req)),
  );
  r.post(
    '/api/admin/dkim-keys',
    {
      schema: {
        tags: ['delivery'],
        body: z.object({
          domain: z.string().max(255),
          selector: z.string().max(63),
          algorithm: z.enum(['rsa-sha256', 'ed25519-sha256']).optional(),
          privateKey: z.string().max(20_000).optional().describe('PEM; absent: a new key is generated'),
        }),
      },
    },
    async (req, reply) => reply.status(201).send(await addDkimKey(deps, actorOf(req), req.body)),
  );
  r.delete(
    '/api/admin/dkim-keys/:id',
    { schema: { tags: ['delivery'], params: idParams } },
    async (req, reply) => {
      await deleteDkimKey(deps, actorOf(req), req.params.id);
      return reply.status(204).send();
    },
  );

  r.get(
    '/api/outbox',
    {
      schema: {
        tags: ['outbox'],
        querystring: z.object({
          limit: z.coerce.number().int().min(1).max(200).optional(),
          before: z.string().max(200).optional(),
        }),
      },
    },
    async (req) => listOutbox(deps, actorOf(req), req.query),
  );
  r.get('/api/outbox/:id', { schema: { tags: ['outbox'], params: idParams } }, async (req) =>
    getOutboxMessage(deps, actorOf(req), req.params.id),
  );
  r.get('/api/outbox/:id/raw', { schema: { tags: ['outbox'], params: idParams } }, async (req, reply) => {
    const raw = await getOutboxRaw(deps, actorOf(req), req.params.id);
    // Shown as text, never interpreted by the browser.
    return reply
      .header('content-type', 'text/plain; charset=utf-8')
      .header('x-content-type-options', 'nosniff')
      .header('content-disposition', `inline; filename="${req.params.id}.eml"`)
      .send(raw);
  });
}
