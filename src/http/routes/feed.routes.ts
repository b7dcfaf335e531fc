import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Actor } from '../../crm/access.ts';
import { resolveApiKey, resolveSession } from '../../crm/index.ts';
import type { Deps } from '../../deps.ts';
import { createFeedHub, FeedCursor, feedHead } from '../../tracking/live-feed.ts';
import { actorOf, SESSION_COOKIE } from '../auth.ts';

const TICK_MS = 15_000; // a comment line keeps proxies from closing an idle stream; also the poll

/** Who the stream was opened by, checked again on every tick (a signed-out session ends it). */
function credentialOf(req: FastifyRequest, deps: Deps): () => Promise<Actor | undefined> {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) {
    const key = auth.slice(7).trim();
    return () => resolveApiKey(deps, key);
  }
  const token = req.cookies[SESSION_COOKIE] ?? '';
  return async () => (await resolveSession(deps, token))?.actor;
}

// The live feed (F4.11) as server-sent events: GET /api/feed streams `opened`, `clicked`, `bounced`,
// `replied` and `received` events about records the caller owns as they are recorded. Each event's
// SSE id is the caller's position, so a browser that reconnects (Last-Event-ID) misses nothing.
export function feedRoutes(app: FastifyInstance, deps: Deps) {
  const hub = createFeedHub(deps, deps.config.databaseUrl);
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
    await hub.close();
  });

  app.get(
    '/api/feed',
    {
      schema: {
        tags: ['insights'],
        summary: 'Live feed of email events on your records (text/event-stream)',
      },
    },
    async (req, reply) => {
      let actor = actorOf(req);
      const reauth = credentialOf(req, deps);
      const last = req.headers['last-event-id'];
      const start =
        typeof last === 'string' && /^\d{1,18}$/.test(last.trim())
          ? last.trim()
          : await feedHead(deps.db, actor.orgId);
      const cursor = new FeedCursor(start);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no', // nginx: pass each event on at once
      });
      res.write('retry: 3000\n\n');

      let ended = false;
      let busy = false;
      let again = false;
      let position = BigInt(start);
      const pump = async () => {
        if (busy) {
          again = true;
          return;
        }
        busy = true;
        try {
          do {
            again = false;
            for (;;) {
              const batch = await cursor.next(deps.db, actor);
              if (ended) return;
              for (const e of batch) {
                if (BigInt(e.id) > position) position = BigInt(e.id);
                res.write(`id: ${position}\nevent: ${e.kind}\ndata: ${JSON.stringify(e)}\n\n`);
              }
              if (!cursor.more) break;
            }
          } while (again && !ended);
        } catch (err) {
          if (!ended) deps.log.warn({ err }, 'live feed read failed');
        } finally {
          busy = false;
        }
      };
      const unsubscribe = hub.subscribe(actor.orgId, () => void pump());
      const tick = setInterval(() => {
        void reauth().then((a) => {
          if (ended) return;
          if (!a) return end();
          actor = a;
          res.write(': tick\n\n');
          void pump();
        }, end);
      }, TICK_MS);
      function end() {
        if (ended) return;
        ended = true;
        clearInterval(tick);
        unsubscribe();
        streams.delete(end);
        res.end();
      }
      streams.add(end);
      req.raw.on('close', end);
      res.on('error', end);
      void pump(); // what happened since Last-Event-ID
    },
  );
}
