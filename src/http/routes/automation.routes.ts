import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Deps } from '../../deps.ts';
import {
  createAutoresponder,
  createWorkflowRule,
  deleteAutomation,
  getAutomation,
  listAutomations,
  setAutomationActive,
  updateAutoresponder,
  updateWorkflowRule,
} from '../../sending/automation.service.ts';
import { actorOf } from '../auth.ts';

const choice = z
  .object({ kind: z.enum(['user', 'org_address', 'owner', 'template']), orgAddressId: z.uuid().optional() })
  .strict();
const autoresponderBody = z
  .object({
    module: z.string().max(60),
    name: z.string().max(200),
    templateId: z.uuid(),
    criteria: z.unknown().optional(),
    anchorField: z.string().max(60).optional(),
    days: z.number().int(),
    from: choice,
    active: z.boolean().optional(),
  })
  .strict();
const workflowBody = z
  .object({
    module: z.string().max(60),
    name: z.string().max(200),
    onCreate: z.boolean(),
    onEdit: z.boolean(),
    criteria: z.unknown().optional(),
    templateId: z.uuid(),
    toRecord: z.boolean(),
    toUserIds: z.array(z.uuid()).max(50).optional(),
    from: choice,
    active: z.boolean().optional(),
  })
  .strict();
const idParams = z.object({ id: z.uuid() });
const kindParams = z.object({ kind: z.enum(['autoresponder', 'workflow']), id: z.uuid() });

// Admin settings for autoresponders (F3.9) and workflow email rules (F3.10).
export function automationRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['automation'];
  r.get('/api/automations', { schema: { tags } }, async (req) => listAutomations(deps, actorOf(req)));
  r.post(
    '/api/automations/autoresponders',
    { schema: { tags, body: autoresponderBody } },
    async (req, reply) => {
      const a = await createAutoresponder(deps, actorOf(req), req.body);
      return reply.status(201).send(await getAutomation(deps, actorOf(req), 'autoresponder', a.id));
    },
  );
  r.post('/api/automations/workflow-rules', { schema: { tags, body: workflowBody } }, async (req, reply) => {
    const w = await createWorkflowRule(deps, actorOf(req), req.body);
    return reply.status(201).send(await getAutomation(deps, actorOf(req), 'workflow', w.id));
  });
  r.put(
    '/api/automations/autoresponders/:id',
    { schema: { tags, params: idParams, body: autoresponderBody } },
    async (req) => {
      await updateAutoresponder(deps, actorOf(req), req.params.id, req.body);
      return getAutomation(deps, actorOf(req), 'autoresponder', req.params.id);
    },
  );
  r.put(
    '/api/automations/workflow-rules/:id',
    { schema: { tags, params: idParams, body: workflowBody } },
    async (req) => {
      await updateWorkflowRule(deps, actorOf(req), req.params.id, req.body);
      return getAutomation(deps, actorOf(req), 'workflow', req.params.id);
    },
  );
  r.get('/api/automations/:kind/:id', { schema: { tags, params: kindParams } }, async (req) =>
    getAutomation(deps, actorOf(req), req.params.kind, req.params.id),
  );
  r.post(
    '/api/automations/:kind/:id/active',
    { schema: { tags, params: kindParams, body: z.object({ active: z.boolean() }) } },
    async (req, reply) => {
      await setAutomationActive(deps, actorOf(req), req.params.kind, req.params.id, req.body.active);
      return reply.status(204).send();
    },
  );
  r.delete('/api/automations/:kind/:id', { schema: { tags, params: kindParams } }, async (req, reply) => {
    await deleteAutomation(deps, actorOf(req), req.params.kind, req.params.id);
    return reply.status(204).send();
  });
}
