import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { loadModule, requireAdmin } from '../../crm/index.ts';
import type { Deps } from '../../deps.ts';
import { notFound } from '../../errors.ts';
import { addressOptions } from '../../sending/from-options.ts';
import {
  getMessage,
  listRecordEmails,
  previewIndividualEmail,
  sendIndividualEmail,
} from '../../sending/individual.service.ts';
import { individualUsage } from '../../sending/limits.ts';
import {
  addOrgAddress,
  deleteOrgAddress,
  listOrgAddresses,
  sendConfirmation,
  verifyOrgAddress,
} from '../../sending/org-addresses.service.ts';
import { latestEmailStatuses } from '../../tracking/record-status.ts';
import { actorOf } from '../auth.ts';
import { confirmationLink } from '../plain-pages.ts';

const choice = z
  .object({ kind: z.enum(['user', 'org_address', 'owner', 'template']), orgAddressId: z.uuid().optional() })
  .strict();
const recordParams = z.object({ module: z.string().max(60), id: z.string().max(64) });
const compose = z
  .object({
    templateId: z.uuid().nullable().optional(),
    templateVersion: z.number().int().min(1).optional(),
    subject: z.string().max(2000).optional(),
    html: z.string().max(2_000_000).optional(),
    text: z.string().max(1_000_000).optional(),
    from: choice.optional(),
    replyTo: choice.nullable().optional(),
  })
  .strict();

// Individual email (F3.1, F3.2), organization addresses (F6.1) and the daily usage (F3.7).
export function individualRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['email'];

  r.get(
    '/api/modules/:module/records/:id/from-options',
    { schema: { tags, params: recordParams, querystring: z.object({ templateId: z.uuid().optional() }) } },
    async (req) => {
      const a = actorOf(req);
      // Reuses the compose checks (read access, the record exists) through a preview of nothing.
      const mod = await loadModule(deps, a.orgId, req.params.module);
      const rec = await deps.db
        .selectFrom('records')
        .select(['owner_id'])
        .where('org_id', '=', a.orgId)
        .where('module_id', '=', mod.id)
        .where(
          'id',
          '=',
          /^[0-9a-f-]{36}$/i.test(req.params.id) ? req.params.id : '00000000-0000-0000-0000-000000000000',
        )
        .executeTakeFirst();
      if (!rec) throw notFound('Record');
      const t = req.query.templateId
        ? await deps.db
            .selectFrom('templates as t')
            .innerJoin('template_versions as v', (j) =>
              j.onRef('v.template_id', '=', 't.id').onRef('v.version', '=', 't.current_version'),
            )
            .select(['v.from_address', 'v.from_name', 'v.reply_to'])
            .where('t.org_id', '=', a.orgId)
            .where('t.id', '=', req.query.templateId)
            .where('t.deleted_at', 'is', null)
            .executeTakeFirst()
        : null;
      if (t === undefined) throw notFound('Template');
      const ctx = { orgId: a.orgId, userId: a.userId, ownerId: rec.owner_id, template: t };
      return {
        from: await addressOptions(deps, ctx, 'from'),
        replyTo: await addressOptions(deps, ctx, 'replyTo'),
      };
    },
  );
  r.post(
    '/api/modules/:module/records/:id/emails/preview',
    { schema: { tags, params: recordParams, body: compose } },
    async (req) => {
      const p = await previewIndividualEmail(deps, actorOf(req), {
        module: req.params.module,
        recordId: req.params.id,
        ...req.body,
      });
      return {
        to: p.to,
        from: p.from,
        replyTo: p.replyTo,
        template: p.template,
        subject: p.subject,
        html: p.html,
        text: p.text,
      };
    },
  );
  r.post(
    '/api/modules/:module/records/:id/emails',
    { schema: { tags, params: recordParams, body: compose } },
    async (req, reply) =>
      reply.status(201).send(
        await sendIndividualEmail(deps, actorOf(req), {
          module: req.params.module,
          recordId: req.params.id,
          ...req.body,
        }),
      ),
  );
  r.get(
    '/api/modules/:module/records/:id/emails',
    { schema: { tags, params: recordParams } },
    async (req) => {
      const a = actorOf(req);
      const emails = await listRecordEmails(deps, a, req.params.module, req.params.id);
      // The record's latest email status (F4.5): its newest email in either direction.
      const latest = (await latestEmailStatuses(deps.db, a.orgId, [req.params.id])).get(req.params.id);
      return { emails, latest: latest ?? null };
    },
  );
  r.get(
    '/api/messages/:id',
    { schema: { tags, params: z.object({ id: z.string().max(64) }) } },
    async (req) => getMessage(deps, actorOf(req), req.params.id),
  );

  r.get('/api/org-addresses', { schema: { tags } }, async (req) => ({
    addresses: await listOrgAddresses(deps, actorOf(req)),
  }));
  r.post(
    '/api/admin/org-addresses',
    {
      schema: {
        tags,
        body: z
          .object({ email: z.string().max(320), displayName: z.string().max(200).nullable().optional() })
          .strict(),
      },
    },
    async (req, reply) => reply.status(201).send(await addOrgAddress(deps, actorOf(req), req.body)),
  );
  r.post(
    '/api/admin/org-addresses/:id/resend',
    { schema: { tags, params: z.object({ id: z.string().max(64) }) } },
    async (req, reply) => {
      await sendConfirmation(deps, actorOf(req), req.params.id);
      return reply.status(204).send();
    },
  );
  r.delete(
    '/api/admin/org-addresses/:id',
    { schema: { tags, params: z.object({ id: z.string().max(64) }) } },
    async (req, reply) => {
      await deleteOrgAddress(deps, actorOf(req), req.params.id);
      return reply.status(204).send();
    },
  );
  // The confirmation link from the email: a page, not an API call (no sign-in, no JSON).
  confirmationLink(
    app,
    '/org-addresses/verify',
    { question: 'Confirm this address for sending from Parley', done: 'Address confirmed' },
    async (token) => {
      const { email } = await verifyOrgAddress(deps, token);
      return `${email} can now be used as a From address in Parley.`;
    },
  );

  r.get('/api/admin/email-usage', { schema: { tags } }, async (req) => {
    const a = actorOf(req);
    requireAdmin(a);
    const limits = await deps.db
      .selectFrom('edition_limits')
      .selectAll()
      .orderBy('individual_per_user')
      .execute();
    return { individual: await individualUsage(deps, a.orgId), editionLimits: limits };
  });
}
