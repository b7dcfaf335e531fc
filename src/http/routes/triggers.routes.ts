import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Deps } from '../../deps.ts';
import { getTriggers, recordHistory, saveTriggers } from '../../sending/triggers.ts';
import { actorOf } from '../auth.ts';

// Trigger actions of a mass email or follow-up (F4.9), and the record history they write.
// Limits and field values are checked in the service, so that each error names its place.

const assignee = z.string().max(64);
const actions = z
  .object({
    fieldUpdates: z
      .array(z.object({ field: z.string().max(60), value: z.unknown() }).strict())
      .max(20)
      .default([]),
    tasks: z
      .array(
        z
          .object({
            subject: z.string().max(1000),
            dueInDays: z.number(),
            status: z.string().max(100).nullable().optional(),
            priority: z.string().max(100).nullable().optional(),
            assignee,
          })
          .strict(),
      )
      .max(20)
      .default([]),
    calls: z
      .array(
        z
          .object({
            subject: z.string().max(1000),
            owner: assignee,
            startInDays: z.number(),
            startTime: z.string().max(5),
          })
          .strict(),
      )
      .max(20)
      .default([]),
  })
  .strict()
  .nullable()
  .optional();

export function triggerRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['mass email'];
  const params = z.object({ id: z.uuid() });

  r.get('/api/mass-emails/:id/triggers', { schema: { tags, params } }, async (req) =>
    getTriggers(deps, actorOf(req), req.params.id),
  );
  r.put(
    '/api/mass-emails/:id/triggers',
    {
      schema: {
        tags,
        params,
        body: z.object({ opened: actions, clicked: actions, bounced: actions }).strict(),
      },
    },
    async (req) => saveTriggers(deps, actorOf(req), req.params.id, req.body),
  );
  r.get(
    '/api/modules/:module/records/:id/history',
    {
      schema: { tags: ['records'], params: z.object({ module: z.string().max(60), id: z.string().max(64) }) },
    },
    async (req) => ({
      history: (await recordHistory(deps, actorOf(req), req.params.module, req.params.id)).map((h) => ({
        id: h.id,
        at: h.at,
        source: h.source,
        massEmailId: h.mass_email_id,
        summary: h.summary,
        detail: h.detail,
      })),
    }),
  );
}
