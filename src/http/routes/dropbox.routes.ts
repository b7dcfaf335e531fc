import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Deps } from '../../deps.ts';
import { getDropboxAddress, regenerateDropboxAddress } from '../../mailbox/dropbox/address.ts';
import { assignItem, discardItem, listItems, MAX_ASSIGN } from '../../mailbox/dropbox/items.service.ts';
import {
  addSender,
  listSenders,
  removeSender,
  sendConfirmation,
  verifySender,
} from '../../mailbox/dropbox/senders.service.ts';
import { actorOf } from '../auth.ts';
import { confirmationLink } from '../plain-pages.ts';

const idParams = z.object({ id: z.string().max(64) });

// BCC Dropbox (F6.2): the org's address, verified senders, and the unmatched emails. Admins only
// (each service checks); the confirmation link is a page opened from the email, without sign-in.
export function dropboxRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['dropbox'];

  r.get('/api/admin/dropbox', { schema: { tags } }, async (req) => {
    const a = actorOf(req);
    const address = await getDropboxAddress(deps, a);
    return { ...address, senders: await listSenders(deps, a) };
  });
  r.post('/api/admin/dropbox/regenerate', { schema: { tags } }, async (req) =>
    regenerateDropboxAddress(deps, actorOf(req)),
  );

  r.post(
    '/api/admin/dropbox/senders',
    { schema: { tags, body: z.object({ email: z.string().max(320) }).strict() } },
    async (req, reply) => reply.status(201).send(await addSender(deps, actorOf(req), req.body)),
  );
  r.post(
    '/api/admin/dropbox/senders/:id/resend',
    { schema: { tags, params: idParams } },
    async (req, reply) => {
      await sendConfirmation(deps, actorOf(req), req.params.id);
      return reply.status(204).send();
    },
  );
  r.delete('/api/admin/dropbox/senders/:id', { schema: { tags, params: idParams } }, async (req, reply) => {
    await removeSender(deps, actorOf(req), req.params.id);
    return reply.status(204).send();
  });

  r.get(
    '/api/admin/dropbox/items',
    {
      schema: {
        tags,
        querystring: z.object({
          state: z.enum(['unmatched', 'attached', 'discarded']).optional(),
          cursor: z.string().max(80).optional(),
          limit: z.coerce.number().int().min(1).max(100).optional(),
        }),
      },
    },
    async (req) => listItems(deps, actorOf(req), req.query),
  );
  r.post(
    '/api/admin/dropbox/items/:id/assign',
    {
      schema: {
        tags,
        params: idParams,
        body: z.object({ recordIds: z.array(z.string().max(64)).min(1).max(MAX_ASSIGN) }).strict(),
      },
    },
    async (req) => assignItem(deps, actorOf(req), req.params.id, req.body.recordIds),
  );
  r.post('/api/admin/dropbox/items/:id/discard', { schema: { tags, params: idParams } }, async (req) =>
    discardItem(deps, actorOf(req), req.params.id),
  );

  confirmationLink(
    app,
    '/dropbox/verify',
    { question: 'Confirm this address for the BCC dropbox', done: 'Address confirmed' },
    async (token) => {
      const { email } = await verifySender(deps, token);
      return `Email from ${email} that is copied to the BCC dropbox is now attached to the CRM records it was sent to.`;
    },
  );
}
