import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Deps } from '../../deps.ts';
import { getInboxMail, inboxQuerySchema, markSeen, queryInbox } from '../../mailbox/inbox/inbox.service.ts';
import {
  createLabel,
  deleteLabel,
  LABEL_COLOURS,
  labelInput,
  listLabels,
  setLabels,
  updateLabel,
} from '../../mailbox/inbox/labels.ts';
import {
  createLeadRule,
  deleteLeadRule,
  leadRuleInput,
  listLeadRules,
  updateLeadRule,
} from '../../mailbox/inbox/lead-rules.ts';
import { listNotifications, markNotificationsRead, unreadCount } from '../../mailbox/inbox/notifications.ts';
import { cancelWatch, createWatch, listWatches, watchInput } from '../../mailbox/inbox/watches.ts';
import { actorOf } from '../auth.ts';

const idParams = z.object({ id: z.string().max(64) });
const mailIds = z.array(z.uuid()).min(1).max(500);

// SalesInbox (F6.4): the user's own synced mail with CRM-aware filters, labels, ResponseWatch,
// the rules that add senders as Leads/Contacts, and the notifications bell.
export function inboxRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['inbox'];

  r.post('/api/inbox/query', { schema: { tags, body: inboxQuerySchema } }, async (req) =>
    queryInbox(deps, actorOf(req), req.body),
  );
  r.get('/api/inbox/mail/:id', { schema: { tags, params: idParams } }, async (req) =>
    getInboxMail(deps, actorOf(req), req.params.id),
  );
  r.post(
    '/api/inbox/seen',
    { schema: { tags, body: z.object({ mailIds, seen: z.boolean() }).strict() } },
    async (req) => markSeen(deps, actorOf(req), req.body.mailIds, req.body.seen),
  );

  r.get('/api/inbox/labels', { schema: { tags } }, async (req) => ({
    labels: await listLabels(deps, actorOf(req)),
    colours: LABEL_COLOURS,
  }));
  r.post('/api/inbox/labels', { schema: { tags, body: labelInput } }, async (req, reply) =>
    reply.status(201).send(await createLabel(deps, actorOf(req), req.body)),
  );
  r.patch(
    '/api/inbox/labels/:id',
    { schema: { tags, params: idParams, body: labelInput.partial() } },
    async (req) => updateLabel(deps, actorOf(req), req.params.id, req.body),
  );
  r.delete('/api/inbox/labels/:id', { schema: { tags, params: idParams } }, async (req, reply) => {
    await deleteLabel(deps, actorOf(req), req.params.id);
    return reply.status(204).send();
  });
  r.post(
    '/api/inbox/labels/apply',
    {
      schema: {
        tags,
        body: z
          .object({
            mailIds,
            add: z.array(z.uuid()).max(20).optional(),
            remove: z.array(z.uuid()).max(20).optional(),
          })
          .strict(),
      },
    },
    async (req) => {
      await setLabels(deps, actorOf(req), req.body);
      return { ok: true };
    },
  );

  r.get(
    '/api/inbox/watches',
    {
      schema: {
        tags,
        querystring: z.object({
          mailId: z.uuid().optional(),
          messageId: z.uuid().optional(),
          state: z.literal('waiting').optional(),
        }),
      },
    },
    async (req) => ({ watches: await listWatches(deps, actorOf(req), req.query) }),
  );
  r.post('/api/inbox/watches', { schema: { tags, body: watchInput } }, async (req, reply) =>
    reply.status(201).send(await createWatch(deps, actorOf(req), req.body)),
  );
  r.post('/api/inbox/watches/:id/cancel', { schema: { tags, params: idParams } }, async (req) =>
    cancelWatch(deps, actorOf(req), req.params.id),
  );

  r.get('/api/inbox/lead-rules', { schema: { tags } }, async (req) => ({
    rules: await listLeadRules(deps, actorOf(req)),
  }));
  r.post('/api/inbox/lead-rules', { schema: { tags, body: leadRuleInput } }, async (req, reply) =>
    reply.status(201).send(await createLeadRule(deps, actorOf(req), req.body)),
  );
  r.patch(
    '/api/inbox/lead-rules/:id',
    {
      schema: {
        tags,
        params: idParams,
        body: z
          .object({
            values: z.array(z.string().trim().min(1).max(200)).min(1).max(50).optional(),
            active: z.boolean().optional(),
          })
          .strict(),
      },
    },
    async (req) => updateLeadRule(deps, actorOf(req), req.params.id, req.body),
  );
  r.delete('/api/inbox/lead-rules/:id', { schema: { tags, params: idParams } }, async (req, reply) => {
    await deleteLeadRule(deps, actorOf(req), req.params.id);
    return reply.status(204).send();
  });

  r.get(
    '/api/notifications',
    {
      schema: {
        tags,
        querystring: z.object({
          unread: z.enum(['1', 'true']).optional(),
          limit: z.coerce.number().int().min(1).max(100).optional(),
        }),
      },
    },
    async (req) =>
      listNotifications(deps, actorOf(req), { unreadOnly: !!req.query.unread, limit: req.query.limit }),
  );
  r.get('/api/notifications/unread-count', { schema: { tags } }, async (req) => ({
    unread: await unreadCount(deps, actorOf(req)),
  }));
  r.post(
    '/api/notifications/read',
    {
      schema: {
        tags,
        body: z.object({ ids: z.union([z.array(z.uuid()).min(1).max(500), z.literal('all')]) }).strict(),
      },
    },
    async (req) => markNotificationsRead(deps, actorOf(req), req.body.ids),
  );
}
