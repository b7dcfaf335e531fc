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

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
const page = (title: string, body: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
  '<meta name="viewport" content="width=device-width"><style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}</style>' +
  `</head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(body)}</p></body></html>`;

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

  r.get(
    '/dropbox/verify',
    { schema: { hide: true, querystring: z.object({ token: z.string().max(200).default('') }) } },
    async (req, reply) => {
      reply
        .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
        .type('text/html');
      try {
        const { email } = await verifySender(deps, req.query.token);
        return page(
          'Address confirmed',
          `Email from ${email} that is copied to the BCC dropbox is now attached to the CRM records it was sent to.`,
        );
      } catch (e) {
        return reply.status(400).send(page('This link does not work', (e as Error).message));
      }
    },
  );
}
