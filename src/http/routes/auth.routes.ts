import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import * as crm from '../../crm/index.ts';
import type { Deps } from '../../deps.ts';
import { actorOf, SESSION_COOKIE } from '../auth.ts';
import { errorBody } from '../errors.ts';
import { giveBackLoginAttempt, loginThrottleKeys, takeLoginAttempt } from '../login-throttle.ts';
import { presentOrg, presentProfile, presentUser } from '../present.ts';

async function me(deps: Deps, userId: string, orgId: string, csrfToken?: string) {
  const user = await deps.db
    .selectFrom('users')
    .selectAll()
    .where('id', '=', userId)
    .executeTakeFirstOrThrow();
  const org = await deps.db.selectFrom('orgs').selectAll().where('id', '=', orgId).executeTakeFirstOrThrow();
  const profile = await deps.db
    .selectFrom('profiles')
    .selectAll()
    .where('id', '=', user.profile_id)
    .executeTakeFirstOrThrow();
  return { user: presentUser(user), org: presentOrg(org), profile: presentProfile(profile), csrfToken };
}

export function authRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const setCookie = (reply: FastifyReply, token: string, expires: Date) =>
    reply.setCookie(SESSION_COOKIE, token, {
      path: '/',
      httpOnly: true,
      sameSite: 'lax',
      secure: deps.config.secureCookies,
      expires,
    });

  r.post(
    '/api/auth/login',
    {
      schema: {
        tags: ['auth'],
        body: z.object({ email: z.string().max(320), password: z.string().max(200) }),
      },
    },
    async (req, reply) => {
      // Throttled in the database (per account and per IP), so it holds across `serve` processes.
      const attempt = await takeLoginAttempt(deps, loginThrottleKeys(req.body.email, req.ip));
      if (attempt.retryAfter)
        return reply
          .status(429)
          .header('retry-after', String(attempt.retryAfter))
          .send(
            errorBody(
              'rate_limited',
              `Too many sign-in attempts; try again in ${Math.ceil(attempt.retryAfter / 60)} minute(s)`,
            ),
          );
      const s = await crm.login(deps, req.body.email, req.body.password);
      await giveBackLoginAttempt(deps, attempt);
      setCookie(reply, s.token, s.expires);
      return me(deps, s.userId, s.orgId, s.csrfToken);
    },
  );

  r.post(
    '/api/auth/accept-invite',
    {
      schema: {
        tags: ['auth'],
        body: z.object({
          token: z.string().max(200),
          password: z.string().max(200),
          name: z.string().max(200).optional(),
        }),
      },
      config: { rateLimit: { max: 10, timeWindow: '1 minute' } },
    },
    async (req, reply) => {
      const userId = await crm.acceptInvite(deps, req.body);
      const user = await deps.db
        .selectFrom('users')
        .select('org_id')
        .where('id', '=', userId)
        .executeTakeFirstOrThrow();
      const s = await crm.createSession(deps, userId, user.org_id);
      setCookie(reply, s.token, s.expires);
      return me(deps, s.userId, s.orgId, s.csrfToken);
    },
  );

  r.post('/api/auth/logout', { schema: { tags: ['auth'] } }, async (req, reply) => {
    const token = req.cookies[SESSION_COOKIE];
    if (token) await crm.deleteSession(deps, token);
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.status(204).send();
  });

  r.get('/api/me', { schema: { tags: ['auth'] } }, async (req) => {
    const a = actorOf(req);
    return me(deps, a.userId, a.orgId, req.csrfToken);
  });

  r.patch(
    '/api/me',
    {
      schema: {
        tags: ['auth'],
        body: z.object({
          name: z.string().max(200).optional(),
          timeZone: z.string().max(100).optional(),
          locale: z.string().max(50).optional(),
          currentPassword: z.string().max(200).optional(),
          newPassword: z.string().max(200).optional(),
        }),
      },
    },
    async (req) => {
      const a = actorOf(req);
      await crm.updateMe(deps, a, req.body);
      if (req.body.newPassword !== undefined)
        await crm.deleteOtherSessions(deps, a.userId, req.cookies[SESSION_COOKIE]);
      return me(deps, a.userId, a.orgId, req.csrfToken);
    },
  );
}
