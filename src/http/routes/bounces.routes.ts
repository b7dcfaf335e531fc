import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Deps } from '../../deps.ts';
import { dismissAlert, listAlerts } from '../../tracking/bounces/alerts.ts';
import {
  addSuppression,
  listSuppressions,
  removeSuppression,
  suppressionHistory,
} from '../../tracking/bounces/suppression.ts';
import { deleteWebhook, listWebhooks, receiveWebhook, saveWebhook } from '../../tracking/bounces/webhooks.ts';
import { actorOf } from '../auth.ts';

// Suppressions, admin alerts and bounce webhooks: the admin API (org-scoped, admins only, checked
// in the services), and the providers' public webhook endpoint, which reads the raw body (the
// signatures are over the exact bytes) and answers 4xx to anything it cannot verify.

const reason = z.enum(['hard_bounce', 'soft_bounce', 'complaint', 'unsubscribe', 'manual']);
const provider = z.enum(['ses', 'sendgrid', 'postmark', 'mailgun']);
const email = z.string().min(3).max(320);

export function bounceRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/api/suppressions',
    {
      schema: {
        tags: ['suppressions'],
        querystring: z.object({
          q: z.string().max(320).optional(),
          reason: reason.optional(),
          limit: z.coerce.number().int().min(1).max(200).optional(),
          after: z.string().max(500).optional(),
        }),
      },
    },
    async (req) =>
      listSuppressions(deps, actorOf(req), {
        search: req.query.q,
        reason: req.query.reason,
        limit: req.query.limit,
        after: req.query.after,
      }),
  );
  r.post(
    '/api/suppressions',
    { schema: { tags: ['suppressions'], body: z.object({ email, note: z.string().max(500).optional() }) } },
    async (req, reply) => {
      const s = await addSuppression(deps, actorOf(req), req.body);
      return reply.status(s.added ? 201 : 200).send(s);
    },
  );
  r.delete(
    '/api/suppressions/:email',
    {
      schema: {
        tags: ['suppressions'],
        params: z.object({ email }),
        querystring: z.object({ force: z.enum(['true', 'false']).optional() }),
      },
    },
    async (req, reply) => {
      await removeSuppression(deps, actorOf(req), req.params.email, { force: req.query.force === 'true' });
      return reply.status(204).send();
    },
  );
  r.get(
    '/api/suppressions/:email/history',
    { schema: { tags: ['suppressions'], params: z.object({ email }) } },
    async (req) => suppressionHistory(deps, actorOf(req), req.params.email),
  );

  r.get('/api/admin-alerts', { schema: { tags: ['suppressions'] } }, async (req) =>
    listAlerts(deps, actorOf(req)),
  );
  r.post(
    '/api/admin-alerts/:id/dismiss',
    { schema: { tags: ['suppressions'], params: z.object({ id: z.uuid() }) } },
    async (req, reply) => {
      await dismissAlert(deps, actorOf(req), req.params.id);
      return reply.status(204).send();
    },
  );

  r.get('/api/bounce-webhooks', { schema: { tags: ['suppressions'] } }, async (req) =>
    listWebhooks(deps, actorOf(req)),
  );
  r.put(
    '/api/bounce-webhooks/:provider',
    {
      schema: {
        tags: ['suppressions'],
        params: z.object({ provider }),
        body: z.object({
          topicArns: z.array(z.string().max(400)).max(10).optional(),
          publicKey: z.string().max(2000).optional(),
          signingKey: z.string().max(200).optional(),
          username: z.string().max(100).optional(),
          password: z.string().max(200).optional(),
          rotate: z.boolean().optional(),
        }),
      },
    },
    async (req) => {
      const { rotate, ...settings } = req.body;
      return saveWebhook(deps, actorOf(req), req.params.provider, settings, { rotate });
    },
  );
  r.delete(
    '/api/bounce-webhooks/:provider',
    { schema: { tags: ['suppressions'], params: z.object({ provider }) } },
    async (req, reply) => {
      await deleteWebhook(deps, actorOf(req), req.params.provider);
      return reply.status(204).send();
    },
  );

  // The providers' endpoint: outside /api (no session), raw bytes in.
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 2 * 1024 * 1024 }, (_req, body, done) =>
      done(null, body),
    );
    scope.post<{ Params: { provider: string; token: string } }>(
      '/hooks/bounces/:provider/:token',
      { schema: { hide: true } },
      async (req, reply) => {
        const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        const out = await receiveWebhook(deps, req.params.provider, req.params.token, {
          headers: req.headers,
          body,
        });
        return reply.status(out.status).header('cache-control', 'no-store').send(out.body);
      },
    );
  });
}
