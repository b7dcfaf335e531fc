import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import * as crm from '../../crm/index.ts';
import type { Deps } from '../../deps.ts';
import { actorOf } from '../auth.ts';
import { presentApiKey, presentOrg, presentProfile, presentUser } from '../present.ts';

const idParams = z.object({ id: z.uuid() });

export function adminRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/api/org', { schema: { tags: ['org'] } }, async (req) =>
    presentOrg(await crm.getOrg(deps, actorOf(req))),
  );
  r.patch(
    '/api/org',
    {
      schema: {
        tags: ['org'],
        body: z.object({
          name: z.string().max(200).optional(),
          timeZone: z.string().max(100).optional(),
          currency: z.string().max(3).optional(),
          edition: z.enum(['free', 'standard', 'professional', 'enterprise', 'ultimate']).optional(),
        }),
      },
    },
    async (req) => presentOrg(await crm.updateOrg(deps, actorOf(req), req.body)),
  );

  r.get('/api/users', { schema: { tags: ['users'] } }, async (req) =>
    (await crm.listUsers(deps, actorOf(req))).map(presentUser),
  );
  r.post(
    '/api/users',
    {
      schema: {
        tags: ['users'],
        body: z.object({
          email: z.string().max(320),
          name: z.string().max(200),
          profileId: z.string().max(64),
        }),
      },
    },
    async (req, reply) => {
      const { user, inviteToken } = await crm.inviteUser(deps, actorOf(req), req.body);
      const inviteUrl = `${deps.config.publicUrl}/accept-invite?token=${encodeURIComponent(inviteToken)}`;
      return reply.status(201).send({ user: presentUser(user), inviteUrl });
    },
  );
  r.patch(
    '/api/users/:id',
    {
      schema: {
        tags: ['users'],
        params: idParams,
        body: z.object({
          name: z.string().max(200).optional(),
          profileId: z.string().max(64).optional(),
          status: z.string().max(20).optional(),
        }),
      },
    },
    async (req) => presentUser(await crm.updateUser(deps, actorOf(req), req.params.id, req.body)),
  );

  const profileBody = z.object({
    name: z.string().max(100).optional(),
    isAdmin: z.boolean().optional(),
    permissions: z.unknown().optional(),
  });
  r.get('/api/profiles', { schema: { tags: ['profiles'] } }, async (req) =>
    (await crm.listProfiles(deps, actorOf(req))).map(presentProfile),
  );
  r.post(
    '/api/profiles',
    { schema: { tags: ['profiles'], body: profileBody.extend({ name: z.string().max(100) }) } },
    async (req, reply) =>
      reply.status(201).send(presentProfile(await crm.createProfile(deps, actorOf(req), req.body))),
  );
  r.patch(
    '/api/profiles/:id',
    { schema: { tags: ['profiles'], params: idParams, body: profileBody } },
    async (req) => presentProfile(await crm.updateProfile(deps, actorOf(req), req.params.id, req.body)),
  );
  r.delete('/api/profiles/:id', { schema: { tags: ['profiles'], params: idParams } }, async (req, reply) => {
    await crm.deleteProfile(deps, actorOf(req), req.params.id);
    return reply.status(204).send();
  });

  r.get('/api/api-keys', { schema: { tags: ['api-keys'] } }, async (req) =>
    (await crm.listApiKeys(deps, actorOf(req))).map(presentApiKey),
  );
  r.post(
    '/api/api-keys',
    { schema: { tags: ['api-keys'], body: z.object({ name: z.string().max(100) }) } },
    async (req, reply) =>
      reply.status(201).send(presentApiKey(await crm.createApiKey(deps, actorOf(req), req.body.name))),
  );
  r.delete('/api/api-keys/:id', { schema: { tags: ['api-keys'], params: idParams } }, async (req, reply) => {
    await crm.revokeApiKey(deps, actorOf(req), req.params.id);
    return reply.status(204).send();
  });
}
