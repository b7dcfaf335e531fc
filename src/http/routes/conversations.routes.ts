import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Deps } from '../../deps.ts';
import { AppError } from '../../errors.ts';
import {
  type AttachmentRow,
  attachmentForActor,
  getMail,
  inlineAttachment,
  inlineUrlValid,
  listConversations,
} from '../../mailbox/conversations.service.ts';
import { fetchAttachmentContent } from '../../mailbox/sync/fetch-part.ts';
import { actorOf } from '../auth.ts';

const recordParams = z.object({ module: z.string().max(60), id: z.string().max(64) });
const idParams = z.object({ id: z.string().max(64) });

/** A file name safe in a header: no path, no quotes or control characters, ASCII fallback plus UTF-8. */
export function contentDisposition(kind: 'attachment' | 'inline', filename: string): string {
  const base =
    filename
      .split(/[\\/]/)
      .pop()
      ?.replace(/[\p{Cc}"]/gu, '')
      .trim()
      .slice(0, 200) || 'attachment';
  const ascii = base.replace(/[^\x20-\x7e]/g, '_');
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(base)}`;
}

async function sendAttachment(
  deps: Deps,
  reply: FastifyReply,
  a: AttachmentRow,
  kind: 'attachment' | 'inline',
) {
  // Synced mail's attachments are not stored: a mailbox holding the email serves them now.
  const content = a.content ?? (await fetchAttachmentContent(deps, a));
  if (!content)
    throw new AppError('not_found', 'This attachment is not available: no mailbox holding it answered');
  return reply
    .header('content-type', kind === 'inline' ? a.content_type : 'application/octet-stream')
    .header('content-disposition', contentDisposition(kind, a.filename ?? `attachment-${a.idx + 1}`))
    .header('x-content-type-options', 'nosniff')
    .header('content-security-policy', "default-src 'none'; sandbox")
    .header('cache-control', 'private, max-age=300')
    .send(content);
}

const originOf = (req: FastifyRequest) => `${req.protocol}://${req.host}`;

// Conversations on a record's page (F6.3) and one stored email. Every service checks the actor.
export function conversationRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['mail'];

  r.get(
    '/api/modules/:module/records/:id/conversations',
    { schema: { tags, params: recordParams } },
    async (req) => listConversations(deps, actorOf(req), req.params.module, req.params.id),
  );
  r.get(
    '/api/mail/:id',
    {
      schema: {
        tags,
        params: idParams,
        querystring: z.object({ images: z.enum(['0', '1']).optional() }),
      },
    },
    async (req, reply) => {
      reply.header('cache-control', 'no-store');
      return getMail(deps, actorOf(req), req.params.id, {
        images: req.query.images === '1',
        origin: originOf(req),
      });
    },
  );
  r.get('/api/mail/attachments/:id', { schema: { tags, params: idParams } }, async (req, reply) =>
    sendAttachment(deps, reply, await attachmentForActor(deps, actorOf(req), req.params.id), 'attachment'),
  );
  // Inline images of an email shown in the sandboxed frame: signed URLs (see conversations.service.ts).
  r.get(
    '/mail/inline/:id',
    {
      schema: {
        hide: true,
        params: idParams,
        querystring: z.object({ exp: z.coerce.number().int(), sig: z.string().max(64) }),
      },
    },
    async (req, reply) => {
      if (!inlineUrlValid(deps.config, req.params.id, req.query.exp, req.query.sig, deps.clock.now()))
        throw new AppError('not_found', 'Image not found');
      return sendAttachment(deps, reply, await inlineAttachment(deps, req.params.id), 'inline');
    },
  );
}
