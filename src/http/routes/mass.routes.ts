import { stringify } from 'csv-stringify/sync';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { csvSafe } from '../../crm/index.ts';
import type { Deps } from '../../deps.ts';
import { invalid } from '../../errors.ts';
import { countAudience, listAudience, resolveAudience } from '../../sending/audience.ts';
import {
  addFollowup,
  createMassEmail,
  deleteMassEmail,
  getMassEmail,
  listMassEmails,
  startMassEmail,
  stopMassEmail,
  updateMassEmail,
} from '../../sending/mass.service.ts';
import { massStatRecipients, massStats, STAT_NAMES } from '../../sending/mass-stats.ts';
import { actorOf } from '../auth.ts';

const choice = z
  .object({ kind: z.enum(['user', 'org_address', 'owner', 'template']), orgAddressId: z.uuid().optional() })
  .strict();
const audience = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('ids'), ids: z.array(z.uuid()).max(10_000) }),
  z.object({ kind: z.literal('view'), viewId: z.uuid() }),
  z.object({ kind: z.literal('criteria'), criteria: z.unknown() }),
]);
const followup = z
  .object({
    name: z.string().max(200).optional(),
    templateId: z.uuid(),
    audience: z.enum(['received', 'opened', 'not_opened', 'clicked', 'not_clicked']),
    days: z.number().int().optional(),
    sendAt: z.string().max(40).nullable().optional(),
    ignoreCriteria: z.unknown().optional(),
    from: choice.optional(),
    replyTo: choice.nullable().optional(),
  })
  .strict();
const idParams = z.object({ id: z.uuid() });
const reasons = ['no_address', 'invalid_address', 'opted_out', 'suppressed', 'duplicate'] as const;

const present = (m: Record<string, unknown>) => ({
  id: m.id,
  name: m.name,
  module: m.module,
  status: m.status,
  stopReason: m.stop_reason ?? null,
  sendAt: m.send_at ?? null,
  startedAt: m.started_at ?? null,
  finishedAt: m.finished_at ?? null,
  recipients: m.recipients,
  excluded: m.excluded,
  createdBy: m.created_by,
  creatorName: m.creator_name,
  createdAt: m.created_at,
});
const presentFollowup = (f: Record<string, unknown>) => ({
  id: f.id,
  position: f.position,
  name: f.name,
  templateId: f.template_id,
  audience: f.followup_audience,
  days: f.followup_days,
  ignoreCriteria: f.ignore_criteria,
  from: f.from_choice,
  replyTo: f.reply_to_choice,
  status: f.status,
  sendAt: f.send_at,
  startedAt: f.started_at,
  recipients: f.recipients,
  excluded: f.excluded,
});

export function massRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['mass email'];

  r.post(
    '/api/mass-emails/audience',
    { schema: { tags, body: z.object({ module: z.string().max(60), audience }) } },
    async (req) => {
      const a = await resolveAudience(deps, actorOf(req), req.body.module, req.body.audience);
      return countAudience(deps, a);
    },
  );
  r.post(
    '/api/mass-emails/audience/list',
    {
      schema: {
        tags,
        body: z.object({
          module: z.string().max(60),
          audience,
          reason: z.enum(reasons).nullable(),
          limit: z.number().int().min(1).max(500).default(50),
          after: z.uuid().optional(),
        }),
      },
    },
    async (req) => {
      const a = await resolveAudience(deps, actorOf(req), req.body.module, req.body.audience);
      return listAudience(deps, a, req.body.reason, { limit: req.body.limit, after: req.body.after });
    },
  );

  r.get(
    '/api/mass-emails',
    {
      schema: {
        tags,
        querystring: z.object({
          folder: z.enum(['scheduled', 'sent', 'stopped']).default('scheduled'),
          module: z.string().max(60).optional(),
        }),
      },
    },
    async (req) => ({
      massEmails: (await listMassEmails(deps, actorOf(req), req.query.folder, req.query.module)).map(present),
    }),
  );
  r.post(
    '/api/mass-emails',
    {
      schema: {
        tags,
        body: z
          .object({
            module: z.string().max(60),
            name: z.string().max(200),
            templateId: z.uuid(),
            from: choice,
            replyTo: choice.nullable().optional(),
            audience,
            sendAt: z.string().max(40).nullable().optional(),
            allowWait: z.boolean().optional(),
            followups: z.array(followup).max(10).optional(),
          })
          .strict(),
      },
    },
    async (req, reply) => {
      const id = await createMassEmail(deps, actorOf(req), {
        ...req.body,
        followups: req.body.followups?.map((f) => ({ ...f, days: f.days ?? 0 })),
      });
      const m = await getMassEmail(deps, actorOf(req), id);
      return reply.status(201).send({ ...present(m), followups: m.followups.map(presentFollowup) });
    },
  );
  r.get('/api/mass-emails/:id', { schema: { tags, params: idParams } }, async (req) => {
    const m = await getMassEmail(deps, actorOf(req), req.params.id);
    return {
      ...present(m),
      templateId: m.template_id,
      from: m.from_choice,
      replyTo: m.reply_to_choice,
      audience: m.audience,
      allowWait: m.allow_wait,
      editable: m.editable,
      followups: m.followups.map(presentFollowup),
    };
  });
  r.patch(
    '/api/mass-emails/:id',
    {
      schema: {
        tags,
        params: idParams,
        body: z
          .object({
            name: z.string().max(200).optional(),
            templateId: z.uuid().optional(),
            from: choice.optional(),
            replyTo: choice.nullable().optional(),
            audience: audience.optional(),
            sendAt: z.string().max(40).nullable().optional(),
            allowWait: z.boolean().optional(),
            followup: followup.partial().optional(),
          })
          .strict(),
      },
    },
    async (req) => updateMassEmail(deps, actorOf(req), req.params.id, req.body),
  );
  r.post(
    '/api/mass-emails/:id/followups',
    { schema: { tags, params: idParams, body: followup } },
    async (req, reply) =>
      reply
        .status(201)
        .send(
          await addFollowup(deps, actorOf(req), req.params.id, { ...req.body, days: req.body.days ?? 0 }),
        ),
  );
  r.post('/api/mass-emails/:id/stop', { schema: { tags, params: idParams } }, async (req) =>
    stopMassEmail(deps, actorOf(req), req.params.id),
  );
  r.post('/api/mass-emails/:id/start', { schema: { tags, params: idParams } }, async (req) =>
    startMassEmail(deps, actorOf(req), req.params.id),
  );
  r.delete('/api/mass-emails/:id', { schema: { tags, params: idParams } }, async (req, reply) => {
    await deleteMassEmail(deps, actorOf(req), req.params.id);
    return reply.status(204).send();
  });

  r.get('/api/mass-emails/:id/stats', { schema: { tags, params: idParams } }, async (req) =>
    massStats(deps, actorOf(req), req.params.id),
  );
  r.get(
    '/api/mass-emails/:id/stats/:stat',
    {
      schema: {
        tags,
        params: idParams.extend({ stat: z.string().max(40) }),
        querystring: z.object({
          limit: z.coerce.number().int().min(1).max(500).default(100),
          after: z.uuid().optional(),
          format: z.enum(['json', 'csv']).default('json'),
        }),
      },
    },
    async (req, reply) => {
      const a = actorOf(req);
      if (!(STAT_NAMES as string[]).includes(req.params.stat))
        throw invalid(`stat must be one of ${STAT_NAMES.join(', ')}`);
      if (req.query.format === 'json')
        return massStatRecipients(deps, a, req.params.id, req.params.stat, req.query);
      // CSV: every recipient behind the number, fetched page by page.
      const lines = [
        stringify([['Name', 'Email', 'Status', 'Sent', 'Opened', 'Clicked', 'Bounced', 'Reason']]),
      ];
      let after: string | null = null;
      do {
        const page: Awaited<ReturnType<typeof massStatRecipients>> = await massStatRecipients(
          deps,
          a,
          req.params.id,
          req.params.stat,
          { limit: 10_000, after },
        );
        lines.push(
          stringify(
            page.items.map((i) =>
              [
                i.to_name ?? '',
                i.to_address,
                i.status,
                i.sent_at?.toISOString() ?? '',
                i.opened_at?.toISOString() ?? '',
                i.clicked_at?.toISOString() ?? '',
                i.bounced_at?.toISOString() ?? '',
                i.bounce_reason ?? i.smtp_response ?? '',
              ].map(csvSafe),
            ),
          ),
        );
        after = page.next;
      } while (after);
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="mass-email-${req.params.stat}.csv"`)
        .send(lines.join(''));
    },
  );
}
