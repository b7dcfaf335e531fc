import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Actor } from '../crm/access.ts';
import { resolveApiKey, resolveSession } from '../crm/index.ts';
import type { Deps } from '../deps.ts';
import { AppError } from '../errors.ts';

export const SESSION_COOKIE = 'parley_session';

declare module 'fastify' {
  interface FastifyRequest {
    actor?: Actor;
    csrfToken?: string;
  }
}

const PUBLIC = new Set(['/api/auth/login', '/api/auth/accept-invite', '/api/health']);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function sameToken(a: string, b: string) {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Every /api route but the public ones needs a caller: an API key (Authorization: Bearer pk_…) or a
 * session cookie. Cookie-authenticated state changes must also carry the session's CSRF token.
 */
export function registerAuth(app: FastifyInstance, deps: Deps) {
  app.addHook('onRequest', async (req: FastifyRequest, _reply: FastifyReply) => {
    // The matched route's own path: a percent-encoded URL (/%61pi/…) routes to the same handler.
    const path = req.routeOptions.url ?? req.url.split('?')[0];
    if (!path.startsWith('/api/') || PUBLIC.has(path) || path.startsWith('/api/docs')) return;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) {
      const actor = await resolveApiKey(deps, auth.slice(7).trim());
      if (!actor) throw new AppError('unauthenticated', 'Invalid or revoked API key');
      req.actor = actor;
      return;
    }
    const token = req.cookies[SESSION_COOKIE];
    const session = token ? await resolveSession(deps, token) : undefined;
    if (!session) throw new AppError('unauthenticated', 'Please sign in');
    if (!SAFE_METHODS.has(req.method)) {
      const sent = req.headers['x-csrf-token'];
      if (typeof sent !== 'string' || !sameToken(sent, session.csrfToken))
        throw new AppError('csrf_failed', 'Missing or wrong CSRF token (x-csrf-token header)');
    }
    req.actor = session.actor;
    req.csrfToken = session.csrfToken;
  });
}

export function actorOf(req: FastifyRequest): Actor {
  if (!req.actor) throw new AppError('unauthenticated', 'Please sign in');
  return req.actor;
}
