import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Insertable } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { inject } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { type Actor, createOrg as createOrgService } from '../../src/crm/index.ts';
import { migrate } from '../../src/db/migrate.ts';
import { openDatabase } from '../../src/db/pool.ts';
import type { MessagesTable } from '../../src/db/schema.ts';
import { type Clock, type Deps, systemClock } from '../../src/deps.ts';
import { buildApp } from '../../src/http/app.ts';
import { deliveryExpiresAt } from '../../src/sending/delivery.ts';

export interface TestOrg {
  orgId: string;
  adminId: string;
  adminEmail: string;
  adminPassword: string;
  standardProfileId: string;
}

/** Deps over the test database (or `url`: the same database through a proxy, say). */
export function testDeps(
  clock: Clock = systemClock,
  url = inject('dbUrl'),
): Deps & { close(): Promise<void> } {
  const config = loadConfig({
    PARLEY_DATABASE_URL: url,
    PARLEY_LOG_LEVEL: 'silent',
    PARLEY_SECRET: 'test-secret-0123456789-0123456789-abcdef',
  });
  const database = openDatabase(url, 5);
  return { db: database.db, clock, log: pino({ level: 'silent' }), config, close: () => database.close() };
}

export async function createTestOrg(
  deps: Deps,
  opts: { edition?: 'free' | 'professional' | 'enterprise'; timeZone?: string } = {},
): Promise<TestOrg> {
  const tag = randomBytes(5).toString('hex');
  const adminEmail = `admin-${tag}@test.example`;
  const adminPassword = `pw-${tag}-secret`;
  const r = await createOrgService(deps, {
    name: `Org ${tag}`,
    edition: opts.edition,
    timeZone: opts.timeZone,
    adminEmail,
    adminName: `Admin ${tag}`,
    adminPassword,
  });
  return {
    orgId: r.org.id,
    adminId: r.admin.id,
    adminEmail,
    adminPassword,
    standardProfileId: r.profiles.standardId,
  };
}

/** The org's admin as an Actor, for calling services directly (UTC, en-US). */
export function adminActor(o: { orgId: string; adminId: string }): Actor {
  return {
    orgId: o.orgId,
    userId: o.adminId,
    isAdmin: true,
    permissions: {},
    timeZone: 'UTC',
    locale: 'en-US',
  };
}

/** The id of one of the org's modules, by api name. */
export async function moduleId(deps: Deps, orgId: string, apiName: string): Promise<string> {
  const m = await deps.db
    .selectFrom('modules')
    .select('id')
    .where('org_id', '=', orgId)
    .where('api_name', '=', apiName)
    .executeTakeFirstOrThrow();
  return m.id;
}

/** A signed-in API client over app.inject (no sockets), carrying the session cookie and CSRF token. */
export interface Client {
  csrf: string;
  cookie: string;
  req(
    method: string,
    url: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: any; text: string }>;
}

export async function login(app: FastifyInstance, email: string, password: string): Promise<Client> {
  const res = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } });
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
  const cookie = res.cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  const csrf = res.json().csrfToken as string;
  return {
    csrf,
    cookie,
    async req(method, url, body, headers = {}) {
      const r = await app.inject({
        method: method as 'GET',
        url,
        payload: body === undefined ? undefined : (body as object),
        headers: { cookie, ...(method === 'GET' ? {} : { 'x-csrf-token': csrf }), ...headers },
      });
      let parsed: unknown;
      try {
        parsed = r.json();
      } catch {
        parsed = undefined;
      }
      return { status: r.statusCode, body: parsed, text: r.body };
    },
  };
}

export async function startTestApp(clock?: Clock) {
  const deps = testDeps(clock);
  const app = await buildApp(deps);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  return {
    url,
    app,
    deps,
    createOrg: (opts?: Parameters<typeof createTestOrg>[1]) => createTestOrg(deps, opts),
    async stop() {
      await app.close();
      await deps.close();
    },
  };
}

/**
 * A database of its own on the test server, migrated, for tests that run real worker processes:
 * a worker takes every org's due work, so it must not share a database with other test files.
 */
export async function ownDatabase(clock: Clock = systemClock) {
  const shared = inject('dbUrl');
  const name = `parley_own_${process.pid}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: shared });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  await admin.end();
  const u = new URL(shared);
  u.pathname = `/${name}`;
  const url = u.toString();
  const database = openDatabase(url, 5);
  await migrate(database.pool);
  const config = loadConfig({
    PARLEY_DATABASE_URL: url,
    PARLEY_LOG_LEVEL: 'silent',
    PARLEY_SECRET: 'test-secret-0123456789-0123456789-abcdef',
  });
  const deps: Deps & { close(): Promise<void> } = {
    db: database.db,
    clock,
    log: pino({ level: 'silent' }),
    config,
    async close() {
      await database.close();
      const a = new pg.Client({ connectionString: shared });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await a.end();
    },
  };
  return { url, deps };
}

/** A template of a module with one version, written straight to the tables (tests of sending). */
export async function insertTemplate(
  deps: Deps,
  orgId: string,
  module: string,
  v: { name?: string; subject: string; html: string; text: string; createdBy?: string | null },
): Promise<string> {
  const moduleIdOfTemplate = await moduleId(deps, orgId, module);
  const t = await deps.db
    .insertInto('templates')
    .values({
      org_id: orgId,
      module_id: moduleIdOfTemplate,
      name: v.name ?? 'Template',
      created_by: v.createdBy ?? null,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  await deps.db
    .insertInto('template_versions')
    .values({
      org_id: orgId,
      template_id: t.id,
      version: 1,
      subject: v.subject,
      html_source: v.html,
      html: v.html,
      text: v.text,
    })
    .execute();
  return t.id;
}

let queued = 0;
/**
 * A message waiting in the send queue, as an individual send leaves it (from the org's admin, due
 * now, through the outbox); `over` sets any column (status 'sent', sent_at … for one already sent).
 * Answers its id.
 */
export async function queueMessage(
  deps: Deps,
  org: TestOrg,
  over: Partial<Insertable<MessagesTable>> = {},
): Promise<string> {
  const n = ++queued;
  const row = await deps.db
    .insertInto('messages')
    .values({
      org_id: org.orgId,
      kind: 'individual',
      sender_id: org.adminId,
      from_address: org.adminEmail,
      from_name: 'Ada Admin',
      to_address: `lead${n}@remote.test`,
      subject: `Hello ${n}`,
      text: `Hello ${n}`,
      message_id_header: `<q${n}.${Date.now()}.${randomBytes(4).toString('hex')}@test.example>`,
      transport: 'outbox',
      status: 'queued',
      next_attempt_at: deps.clock.now(),
      expires_at: deliveryExpiresAt(deps),
      created_at: deps.clock.now(),
      ...over,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}
