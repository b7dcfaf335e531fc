import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerOptions,
  type ServerResponse,
} from 'node:http';
import proxyAddr from '@fastify/proxy-addr';
import type { FastifyInstance } from 'fastify';
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
const NOT_FOUND = Buffer.from('This link is not valid.');
const TRAP_PAGE = Buffer.from(
  '<!doctype html><html><head><meta charset="utf-8"><meta name="robots" content="noindex"><title>Parley</title></head><body><p>Nothing here.</p></body></html>',
);
const UNAVAILABLE = Buffer.from('Try again shortly.');

function keptHeaders(req: IncomingMessage): Record<string, string> {
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

function send(res: ServerResponse, status: number, headers: Record<string, string>, body?: Buffer) {
  res.writeHead(status, body ? { ...headers, 'content-length': String(body.length) } : headers);
  res.end(body);
}

/** The options Fastify hands its server factory that an HTTP/1 server uses. */
interface ServerFactoryOptions {
  http?: ServerOptions | null;
  keepAliveTimeout?: number;
  requestTimeout?: number;
  connectionTimeout?: number;
  maxRequestsPerSocket?: number;
}

export interface TrackingEndpoints {
  recorder: HitRecorder;
  /** Fastify's server, with the tracking endpoints answered in front of it. */
  serverFactory(
    handler: (req: IncomingMessage, res: ServerResponse) => void,
    opts: ServerFactoryOptions,
  ): Server;
}

/**
 * The open pixel (`/t/o/<token>.gif`) and click redirects (`/t/c/<token>`), issue 5. They are the
 * hottest requests Parley gets (a mass email's opens arrive together), so they are answered on the
 * node:http request itself, before Fastify: no hooks (cookies, sessions, metrics), no logging, no
 * promise chain. Measured (bench:tracking) this is what brings them near a bare node:http server.
 * They answer without waiting for the database: a verified token is all the pixel needs, and a
 * click's target comes from the message's own link list, kept in memory after its first lookup.
 * Hits go to a buffer written in batches (hits/recorder.ts). app.inject does not pass through here:
 * tests call these endpoints over HTTP.
 */
export function trackingEndpoints(deps: Deps): TrackingEndpoints {
  const secret = deps.config.secret as string;
  const cache = messageInfoCache(deps);
  const recorder = createHitRecorder(deps, cache);
  // The client address exactly as Fastify's request.ip has it (PARLEY_TRUST_PROXY).
  const trusted = deps.config.trustProxy
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const trust = trusted?.length ? proxyAddr.compile(trusted) : null;
  const ipOf = (req: IncomingMessage) => (trust ? proxyAddr(req, trust) : (req.socket.remoteAddress ?? ''));

  const hit = (req: IncomingMessage, messageId: string, kind: 'open' | 'click', link: number | null) =>
    recorder.record({
      at: deps.clock.now(),
      messageId,
      kind,
      link,
      method: req.method ?? 'GET',
      ip: ipOf(req),
      userAgent: clean(req.headers['user-agent'] ?? '', 512),
      headers: keptHeaders(req),
    });

  function pixel(req: IncomingMessage, res: ServerResponse, token: string) {
    const t = verifyTrackingToken(secret, token.endsWith('.gif') ? token.slice(0, -4) : token);
    if (t?.kind === 'open') hit(req, t.messageId, 'open', null);
    // A forged token still gets the image (a broken image helps no one), but records nothing.
    res.writeHead(200, PIXEL_HEADERS);
    res.end(PIXEL_GIF);
  }

  const notFound = (res: ServerResponse) =>
    send(res, 404, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, NOT_FOUND);

  async function click(req: IncomingMessage, res: ServerResponse, token: string) {
    const t = verifyTrackingToken(secret, token);
    if (t?.kind !== 'click') return notFound(res);
    let info = cache.peek(t.messageId);
    if (!info) {
      try {
        info = (await cache.load([t.messageId])).get(t.messageId);
      } catch (err) {
        deps.log.warn({ err: (err as Error).message }, 'click target lookup failed');
        return send(res, 503, { 'content-type': 'text/plain', 'retry-after': '5' }, UNAVAILABLE);
      }
    }
    if (!info || t.linkIndex > info.links.length) return notFound(res);
    hit(req, t.messageId, 'click', t.linkIndex);
    const common = { 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' };
    // The hidden trap link: only machines follow it. Recorded (as a machine click), not redirected.
    if (t.linkIndex === info.links.length)
      return send(res, 200, { ...common, 'content-type': 'text/html; charset=utf-8' }, TRAP_PAGE);
    const to = location(info.links[t.linkIndex]);
    if (!to) return notFound(res);
    send(res, 302, { ...common, location: to, 'content-length': '0' });
  }

  /** Answers a tracking request; false for anything else (Fastify's). */
  function handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = req.url ?? '';
    if (url.charCodeAt(0) !== 47 || url.charCodeAt(1) !== 116 || url.charCodeAt(2) !== 47) return false; // "/t/"
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const kind = url.slice(3, 5);
    if (kind !== 'o/' && kind !== 'c/') return false;
    const q = url.indexOf('?');
    const token = url.slice(5, q < 0 ? undefined : q);
    if (kind === 'o/') pixel(req, res, token);
    else
      click(req, res, token).catch((err) => {
        deps.log.error({ err }, 'click redirect failed');
        if (!res.headersSent) send(res, 500, { 'content-type': 'text/plain' }, UNAVAILABLE);
      });
    return true;
  }

  return {
    recorder,
    serverFactory(handler, opts) {
      // As Fastify sets up its own HTTP/1 server (lib/server.js), with our handler in front.
      const server = createServer(opts.http ?? {}, (req, res) => {
        if (!handle(req, res)) handler(req, res);
      });
      if (opts.keepAliveTimeout) server.keepAliveTimeout = opts.keepAliveTimeout;
      if (opts.requestTimeout) server.requestTimeout = opts.requestTimeout;
      if (opts.connectionTimeout) server.setTimeout(opts.connectionTimeout);
      if (opts.maxRequestsPerSocket) server.maxRequestsPerSocket = opts.maxRequestsPerSocket;
      return server;
    },
  };
}

/** The hit buffer on the app (flushed when it closes) and the org's Insights switch. */
export function trackingRoutes(app: FastifyInstance, deps: Deps, endpoints: TrackingEndpoints) {
  app.decorate('hitRecorder', endpoints.recorder);
  app.addHook('onClose', () => endpoints.recorder.close());

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
