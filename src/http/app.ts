import { existsSync } from 'node:fs';
import { join } from 'node:path';
import cookie from '@fastify/cookie';
import rateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { sql } from 'kysely';
import type { Deps } from '../deps.ts';
import { AppError } from '../errors.ts';
import { srcDir } from '../paths.ts';
import { registerAuth } from './auth.ts';
import { errorBody, handleError } from './errors.ts';
import { registerMetrics } from './metrics.ts';
import { adminRoutes } from './routes/admin.routes.ts';
import { authRoutes } from './routes/auth.routes.ts';
import { automationRoutes } from './routes/automation.routes.ts';
import { bounceRoutes } from './routes/bounces.routes.ts';
import { conversationRoutes } from './routes/conversations.routes.ts';
import { deliveryRoutes } from './routes/delivery.routes.ts';
import { dropboxRoutes } from './routes/dropbox.routes.ts';
import { feedRoutes } from './routes/feed.routes.ts';
import { inboxRoutes } from './routes/inbox.routes.ts';
import { individualRoutes } from './routes/individual.routes.ts';
import { mailboxRoutes } from './routes/mailbox.routes.ts';
import { massRoutes } from './routes/mass.routes.ts';
import { recordRoutes } from './routes/records.routes.ts';
import { reportPageRoutes } from './routes/report-pages.routes.ts';
import { reportRoutes } from './routes/reports.routes.ts';
import { templateRoutes } from './routes/templates.routes.ts';
import { trackingEndpoints, trackingRoutes } from './routes/tracking.routes.ts';
import { triggerRoutes } from './routes/triggers.routes.ts';
import { unsubscribeRoutes } from './routes/unsubscribe.routes.ts';
import { webhookRoutes } from './routes/webhooks.routes.ts';

declare module 'fastify' {
  interface FastifyInstance {
    routeList: { method: string; url: string }[];
  }
}

export const webDist = join(srcDir, '..', 'web', 'dist');

function trustProxy(v: string | undefined): boolean | string[] {
  if (!v) return false;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The HTTP API, the OpenAPI document and the web UI, as one Fastify app over the domain modules. */
export async function buildApp(deps: Deps): Promise<FastifyInstance> {
  // The open pixel and click redirects are answered in front of Fastify (see tracking.routes.ts).
  const tracking = trackingEndpoints(deps);
  const app = Fastify({
    serverFactory: tracking.serverFactory,
    loggerInstance: deps.log,
    trustProxy: trustProxy(deps.config.trustProxy),
    bodyLimit: 50 * 1024 * 1024, // CSV imports arrive as JSON bodies
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance; // pino's Logger type is wider than Fastify's base logger type
  // Every route, listed so the security tests can walk them all.
  const routeList: { method: string; url: string }[] = [];
  app.decorate('routeList', routeList);
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') routeList.push({ method: m, url: r.url });
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(handleError);

  await app.register(cookie);
  await app.register(rateLimit, {
    global: false,
    // The plugin throws what this returns; an AppError reaches handleError as a 429.
    errorResponseBuilder: () =>
      new AppError('rate_limited', 'Too many attempts; wait a minute and try again'),
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Parley API',
        version: '0.1.0',
        description: 'The REST API of Parley, an email-centred sales CRM.',
      },
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: Authorization: Bearer pk_…' },
          session: { type: 'apiKey', in: 'cookie', name: 'parley_session' },
        },
      },
      security: [{ apiKey: [] }, { session: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs' });
  registerMetrics(app);
  registerAuth(app, deps);

  app.get('/health', { schema: { hide: true } }, async (_req, reply) => {
    try {
      await sql`SELECT 1`.execute(deps.db);
      return { status: 'ok' };
    } catch {
      return reply.status(503).send({ status: 'database unavailable' });
    }
  });
  app.get('/api/health', { schema: { hide: true } }, async () => ({ status: 'ok' }));

  authRoutes(app, deps);
  adminRoutes(app, deps);
  recordRoutes(app, deps);
  deliveryRoutes(app, deps);
  massRoutes(app, deps);
  automationRoutes(app, deps);
  individualRoutes(app, deps);
  inboxRoutes(app, deps);
  feedRoutes(app, deps);
  unsubscribeRoutes(app, deps);
  templateRoutes(app, deps);
  bounceRoutes(app, deps);
  webhookRoutes(app, deps);
  triggerRoutes(app, deps);
  mailboxRoutes(app, deps);
  reportPageRoutes(app, deps);
  dropboxRoutes(app, deps);
  conversationRoutes(app, deps);
  trackingRoutes(app, deps, tracking);
  reportRoutes(app, deps);

  const hasWeb = existsSync(join(webDist, 'index.html'));
  if (hasWeb) await app.register(fastifyStatic, { root: webDist, wildcard: false, index: ['index.html'] });
  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/api/') || req.method !== 'GET' || !hasWeb)
      return reply
        .status(404)
        .send(errorBody('not_found', `No route ${req.method} ${req.url.split('?')[0]}`));
    // The SPA's own routes (/leads, /records/…) all load the app.
    return reply.type('text/html').sendFile('index.html');
  });
  return app;
}
