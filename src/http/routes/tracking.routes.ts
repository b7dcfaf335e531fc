import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Deps } from '../../deps.ts';
import { insightsEnabled, setInsightsEnabled } from '../../tracking/hits/insights-switch.ts';
import { messageInfoCache } from '../../tracking/hits/message-info.ts';
import { clean, createHitRecorder, type HitRecorder, KEPT_HEADERS } from '../../tracking/hits/recorder.ts';
import { verifyTrackingToken } from '../../tracking/tokens.ts';
import { actorOf } from '../auth.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The tracking endpoints' hit buffer (tests flush it). */
    hitRecorder: HitRecorder;
  }
}

/** A transparent 1×1 GIF. */
export const PIXEL_GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');
export const PIXEL_HEADERS = {
  'content-type': 'image/gif',
  'content-length': String(PIXEL_GIF.length),
  'cache-control': 'no-store, no-cache, must-revalidate, max-age=0',
  pragma: 'no-cache',
  expires: '0',
};
const NOT_FOUND = 'This link is not valid.';
const TRAP_PAGE =
  '<!doctype html><html><head><meta charset="utf-8"><meta name="robots" content="noindex"><title>Parley</title></head><body><p>Nothing here.</p></body></html>';

function keptHeaders(req: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const v = req.headers[name];
    if (v !== undefined) out[name] = clean(Array.isArray(v) ? v.join(', ') : v, 256);
  }
  return out;
}

/** A link target as a safe Location value (the URL parser percent-encodes; only http(s)). */
function location(target: string): string | null {
  try {
    const u = new URL(target);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : null;
  } catch {
    return null;
  }
}

// Open pixel and click redirects (issue 5). They answer without waiting for the database: a verified
// token is all the pixel needs, and a click's target comes from the message's own link list, kept in
// memory after its first lookup. Hits go to a buffer written in batches (hits/recorder.ts). No auth
// hook does work here (registerAuth only looks at /api/), and no per-request logging.
export function trackingRoutes(app: FastifyInstance, deps: Deps) {
  const secret = deps.config.secret as string;
  const cache = messageInfoCache(deps);
  const recorder = createHitRecorder(deps, cache);
  app.decorate('hitRecorder', recorder);
  app.addHook('onClose', () => recorder.close());

  const hit = (req: FastifyRequest, messageId: string, kind: 'open' | 'click', link: number | null) =>
    recorder.record({
      at: deps.clock.now(),
      messageId,
      kind,
      link,
      method: req.method,
      ip: req.ip,
      userAgent: clean(req.headers['user-agent'] ?? '', 512),
      headers: keptHeaders(req),
    });

  // The request's child logger is the app logger itself: nothing here logs per request.
  const noChildLogger = { childLoggerFactory: (logger: FastifyInstance['log']) => logger };

  app.route<{ Params: { file: string } }>({
    method: ['GET', 'HEAD'],
    url: '/t/o/:file',
    schema: { hide: true },
    ...noChildLogger,
    handler: (req, reply) => {
      const f = req.params.file;
      const t = verifyTrackingToken(secret, f.endsWith('.gif') ? f.slice(0, -4) : f);
      if (t?.kind === 'open') hit(req, t.messageId, 'open', null);
      // A forged token still gets the image (a broken image helps no one), but records nothing.
      reply.headers(PIXEL_HEADERS).send(PIXEL_GIF);
    },
  });

  const notFound = (reply: FastifyReply) =>
    reply.status(404).header('cache-control', 'no-store').type('text/plain').send(NOT_FOUND);

  app.route<{ Params: { token: string } }>({
    method: ['GET', 'HEAD'],
    url: '/t/c/:token',
    schema: { hide: true },
    ...noChildLogger,
    handler: async (req, reply) => {
      const t = verifyTrackingToken(secret, req.params.token);
      if (t?.kind !== 'click') return notFound(reply);
      let info = cache.peek(t.messageId);
      if (!info) {
        try {
          info = (await cache.load([t.messageId])).get(t.messageId);
        } catch (err) {
          deps.log.warn({ err: (err as Error).message }, 'click target lookup failed');
          return reply.status(503).header('retry-after', '5').type('text/plain').send('Try again shortly.');
        }
      }
      if (!info || t.linkIndex > info.links.length) return notFound(reply);
      hit(req, t.messageId, 'click', t.linkIndex);
      reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
      // The hidden trap link: only machines follow it. Recorded (as a machine click), not redirected.
      if (t.linkIndex === info.links.length) return reply.type('text/html').send(TRAP_PAGE);
      const to = location(info.links[t.linkIndex]);
      if (!to) return notFound(reply);
      return reply.redirect(to, 302);
    },
  });

  // The org's Insights switch.
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get('/api/admin/insights', { schema: { tags: ['org'] } }, async (req) => ({
    enabled: await insightsEnabled(deps, actorOf(req)),
  }));
  r.put(
    '/api/admin/insights',
    { schema: { tags: ['org'], body: z.object({ enabled: z.boolean() }) } },
    async (req) => ({ enabled: await setInsightsEnabled(deps, actorOf(req), req.body.enabled) }),
  );
}
