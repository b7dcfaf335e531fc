import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Deps } from '../../deps.ts';
import {
  type AccountView,
  createAccount,
  deleteAccount,
  getAccount,
  listAccounts,
  setPaused,
  syncNow,
  testAccount,
  testSettings,
  updateAccount,
} from '../../mailbox/accounts.service.ts';
import { actorOf } from '../auth.ts';

// A user's connected mailboxes (F6.3). The password or token goes in and never comes out.

const idParams = z.object({ id: z.uuid() });
const host = z
  .string()
  .trim()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9.\-:[\]]+$/, 'a host name or IP address');
const fields = {
  protocol: z.enum(['imap', 'pop3']),
  host,
  port: z.number().int().min(1).max(65535),
  security: z.enum(['tls', 'starttls', 'none']),
  username: z.string().min(1).max(320),
  auth: z.enum(['password', 'oauth2']).optional(),
  secret: z.string().min(1).max(8192),
  emailAddress: z.email().max(320),
  backfillDays: z.number().int().min(1).max(3650).optional(),
  shared: z.boolean().optional(),
};
const accountBody = z.object(fields).strict();
const patchBody = z
  .object({
    protocol: fields.protocol.optional(),
    host: host.optional(),
    port: fields.port.optional(),
    security: fields.security.optional(),
    username: fields.username.optional(),
    auth: fields.auth,
    secret: fields.secret.optional(),
    emailAddress: fields.emailAddress.optional(),
    backfillDays: fields.backfillDays,
    shared: fields.shared,
  })
  .strict();

const present = (a: AccountView) => ({
  id: a.id,
  protocol: a.protocol,
  host: a.host,
  port: a.port,
  security: a.security,
  username: a.username,
  auth: a.auth,
  emailAddress: a.email_address,
  backfillDays: a.backfill_days,
  shared: a.shared,
  state: a.state,
  error: a.error_code ? { code: a.error_code, message: a.error_message, at: a.error_at } : null,
  backfillDone: a.backfill_done,
  syncing: a.lease_owner !== null,
  lastSyncAt: a.last_sync_at,
  nextSyncAt: a.next_sync_at,
  createdAt: a.created_at,
  updatedAt: a.updated_at,
});

// Connecting out to a host the user names: limited, so it cannot be used to scan a network.
const testLimit = { rateLimit: { max: 10, timeWindow: '1 minute' } };

export function mailboxRoutes(app: FastifyInstance, deps: Deps) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['mailbox'];

  r.get('/api/mailbox/accounts', { schema: { tags } }, async (req) => ({
    accounts: (await listAccounts(deps, actorOf(req))).map(present),
  }));
  r.post('/api/mailbox/accounts', { schema: { tags, body: accountBody } }, async (req, reply) =>
    reply.status(201).send(present(await createAccount(deps, actorOf(req), req.body))),
  );
  r.post('/api/mailbox/test', { schema: { tags, body: accountBody }, config: testLimit }, async (req) => {
    actorOf(req);
    return testSettings(req.body);
  });
  r.get('/api/mailbox/accounts/:id', { schema: { tags, params: idParams } }, async (req) =>
    present(await getAccount(deps, actorOf(req), req.params.id)),
  );
  r.patch('/api/mailbox/accounts/:id', { schema: { tags, params: idParams, body: patchBody } }, async (req) =>
    present(await updateAccount(deps, actorOf(req), req.params.id, req.body)),
  );
  r.delete('/api/mailbox/accounts/:id', { schema: { tags, params: idParams } }, async (req, reply) => {
    await deleteAccount(deps, actorOf(req), req.params.id);
    return reply.status(204).send();
  });
  r.post(
    '/api/mailbox/accounts/:id/test',
    { schema: { tags, params: idParams }, config: testLimit },
    async (req) => testAccount(deps, actorOf(req), req.params.id),
  );
  r.post('/api/mailbox/accounts/:id/sync', { schema: { tags, params: idParams } }, async (req, reply) =>
    reply.status(202).send(present(await syncNow(deps, actorOf(req), req.params.id))),
  );
  r.post('/api/mailbox/accounts/:id/pause', { schema: { tags, params: idParams } }, async (req) =>
    present(await setPaused(deps, actorOf(req), req.params.id, true)),
  );
  r.post('/api/mailbox/accounts/:id/resume', { schema: { tags, params: idParams } }, async (req) =>
    present(await setPaused(deps, actorOf(req), req.params.id, false)),
  );
}
