import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Deps } from '../src/deps.ts';
import { buildApp } from '../src/http/app.ts';
import { recordEvents } from '../src/tracking/events.ts';
import {
  BACKOFF_MS,
  deliverDueWebhooks,
  dispatchWebhooks,
  fanOutEvents,
  fanOutSent,
} from '../src/webhooks/dispatcher.ts';
import { verifySignature } from '../src/webhooks/signing.ts';
import { type Client, createTestOrg, login, type TestOrg, testDeps } from './support/app.ts';

// A real receiver on 127.0.0.1:0; `answer` decides each response.
interface Hit {
  headers: IncomingHttpHeaders;
  body: string;
  path: string;
}
let receiver: Server;
let base: string;
const hits: Hit[] = [];
let answer: (h: Hit) => number = () => 200;

let now = new Date();
const clock = { now: () => now };
const baseDeps = testDeps(clock);
const deps: Deps & { close(): Promise<void> } = {
  ...baseDeps,
  config: { ...baseDeps.config, webhooksAllowPrivate: true },
};
let app: FastifyInstance;
let org: TestOrg;
let admin: Client;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const h = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), path: req.url ?? '' };
      hits.push(h);
      res.statusCode = answer(h);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  app = await buildApp(deps);
  org = await createTestOrg(deps);
  admin = await login(app, org.adminEmail, org.adminPassword);
});
afterAll(async () => {
  await app.close();
  await deps.close();
  await new Promise((r) => receiver.close(r));
});

async function contactWithMessage(o: TestOrg, status: 'sent' | 'queued' = 'sent', sentAt: Date | null = now) {
  const mod = await deps.db
    .selectFrom('modules')
    .select('id')
    .where('org_id', '=', o.orgId)
    .where('api_name', '=', 'contacts')
    .executeTakeFirstOrThrow();
  const rec = await deps.db
    .insertInto('records')
    .values({
      org_id: o.orgId,
      module_id: mod.id,
      owner_id: o.adminId,
      data: JSON.stringify({ last_name: 'Reader', email: 'reader@rcpt.example' }),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const msg = await deps.db
    .insertInto('messages')
    .values({
      org_id: o.orgId,
      kind: 'individual',
      module_id: mod.id,
      record_id: rec.id,
      from_address: 'me@sender.example',
      to_address: 'reader@rcpt.example',
      subject: 'Our offer',
      message_id_header: `<${randomBytes(8).toString('hex')}@sender.example>`,
      transport: 'relay',
      status,
      sent_at: sentAt,
      expires_at: new Date(now.getTime() + 86400e3),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { recordId: rec.id, messageId: msg.id };
}

async function openEvent(o: TestOrg, m: { recordId: string; messageId: string }, human = true) {
  await recordEvents(deps.db, [
    {
      orgId: o.orgId,
      messageId: m.messageId,
      recordId: m.recordId,
      massEmailId: null,
      kind: 'opened',
      human,
      at: now,
    },
  ]);
}

/** Runs the fan-out until the feed is drained (other events of the shared database included). */
async function drainFeed(d: Deps = deps) {
  for (let i = 0; i < 100; i++) if ((await fanOutEvents(d)) === 0) return;
  throw new Error('feed not drained');
}

async function createEndpoint(c: Client, events: string[], path = '/hook') {
  const r = await c.req('POST', '/api/webhooks', { url: `${base}${path}`, events });
  expect(r.status).toBe(201);
  return r.body as { endpoint: { id: string }; secret: string };
}

const hitsFor = (path: string) => hits.filter((h) => h.path === path);

describe('outgoing webhooks', () => {
  it('are for admins; the secret is shown once; private targets need the operator setting', async () => {
    const std = await deps.db
      .insertInto('users')
      .values({
        org_id: org.orgId,
        profile_id: org.standardProfileId,
        email: `std-${randomBytes(4).toString('hex')}@test.example`,
        name: 'Standard',
        status: 'active',
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const { listEndpoints } = await import('../src/webhooks/service.ts');
    await expect(
      listEndpoints(deps, {
        orgId: org.orgId,
        userId: std.id,
        isAdmin: false,
        permissions: {},
        timeZone: 'UTC',
        locale: 'en-US',
      }),
    ).rejects.toThrow(/administrators/);

    const { endpoint, secret } = await createEndpoint(admin, ['opened'], '/once');
    expect(secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    const got = await admin.req('GET', `/api/webhooks/${endpoint.id}`);
    expect(got.status).toBe(200);
    expect(got.text).not.toContain(secret);
    const list = await admin.req('GET', '/api/webhooks');
    expect(list.text).not.toContain(secret);
    expect(list.text).not.toContain('secret');

    const bad = await admin.req('POST', '/api/webhooks', { url: `${base}/x`, events: ['nope'] });
    expect(bad.status).toBe(400);

    // Without the operator setting: https only, and no loopback/private targets.
    const strictApp = await buildApp(baseDeps);
    try {
      const strict = await login(strictApp, org.adminEmail, org.adminPassword);
      for (const url of [
        `${base}/x`,
        'https://127.0.0.1/x',
        'https://localhost/x',
        'https://10.1.2.3/x',
        'https://[::1]/x',
        'https://[::ffff:192.168.1.1]/x',
        'https://169.254.169.254/latest',
        'https://user:pw@example.com/x',
      ]) {
        const r = await strict.req('POST', '/api/webhooks', { url, events: ['opened'] });
        expect(r.status, url).toBe(400);
      }
      expect(
        (
          await strict.req('POST', '/api/webhooks', {
            url: 'https://hooks.example.com/p',
            events: ['opened'],
          })
        ).status,
      ).toBe(201);
    } finally {
      await strictApp.close();
    }
    // A stored URL whose name resolves to a private address is refused at connection time.
    const { guardedLookup } = await import('../src/webhooks/targets.ts');
    const err = await new Promise<NodeJS.ErrnoException | null>((r) =>
      guardedLookup(false)('localhost', { all: true }, (e) => r(e)),
    );
    expect(err?.code).toBe('EPRIVATE');
    await admin.req('DELETE', `/api/webhooks/${endpoint.id}`);
  });

  it('delivers a human open, signed; machine opens are not sent', async () => {
    const { endpoint, secret } = await createEndpoint(admin, ['opened', 'clicked'], '/signed');
    const m = await contactWithMessage(org);
    await openEvent(org, m, false);
    await openEvent(org, m, true);
    await drainFeed();
    await deliverDueWebhooks(deps);
    const got = hitsFor('/signed');
    expect(got).toHaveLength(1);
    const h = got[0];
    expect(verifySignature(secret, h.headers['parley-signature'] as string, h.body, now)).toBe(true);
    expect(verifySignature(secret, h.headers['parley-signature'] as string, `${h.body} `, now)).toBe(false);
    expect(verifySignature('whsec_other', h.headers['parley-signature'] as string, h.body, now)).toBe(false);
    const payload = JSON.parse(h.body);
    expect(payload).toMatchObject({
      id: h.headers['parley-delivery'],
      event: 'opened',
      data: { messageId: m.messageId, recordId: m.recordId, to: 'reader@rcpt.example', subject: 'Our offer' },
    });
    expect(h.headers['parley-event']).toBe('opened');
    const log = await admin.req('GET', `/api/webhooks/${endpoint.id}/deliveries`);
    expect(log.body.deliveries).toHaveLength(1);
    expect(log.body.deliveries[0]).toMatchObject({ status: 'delivered', attempts: 1, lastStatusCode: 200 });
    expect(typeof log.body.deliveries[0].lastDurationMs).toBe('number');
    await admin.req('DELETE', `/api/webhooks/${endpoint.id}`);
  });

  it('retries after a 500 with backoff, and logs each attempt', async () => {
    const { endpoint } = await createEndpoint(admin, ['opened'], '/flaky');
    let failures = 1;
    answer = (h) => (h.path === '/flaky' && failures-- > 0 ? 500 : 200);
    const m = await contactWithMessage(org);
    await openEvent(org, m);
    await drainFeed();
    await deliverDueWebhooks(deps);
    expect(hitsFor('/flaky')).toHaveLength(1);
    const [d] = (await admin.req('GET', `/api/webhooks/${endpoint.id}/deliveries`)).body.deliveries;
    expect(d).toMatchObject({ status: 'pending', attempts: 1, lastStatusCode: 500 });
    expect(new Date(d.nextAttemptAt).getTime()).toBe(now.getTime() + BACKOFF_MS[0]);
    // Not due yet: nothing is sent.
    await deliverDueWebhooks(deps);
    expect(hitsFor('/flaky')).toHaveLength(1);
    now = new Date(now.getTime() + BACKOFF_MS[0] + 1000);
    await deliverDueWebhooks(deps);
    const got = hitsFor('/flaky');
    expect(got).toHaveLength(2);
    // Same payload id on the retry, so receivers can drop duplicates.
    expect(JSON.parse(got[1].body).id).toBe(JSON.parse(got[0].body).id);
    const detail = await admin.req('GET', `/api/webhooks/deliveries/${d.id}`);
    expect(detail.body).toMatchObject({ status: 'delivered', attempts: 2, lastStatusCode: 200 });
    expect(detail.body.log.map((a: { statusCode: number }) => a.statusCode)).toEqual([500, 200]);
    answer = () => 200;
    await admin.req('DELETE', `/api/webhooks/${endpoint.id}`);
  });

  it('cuts off a receiver that does not answer, and counts it as a failed attempt', async () => {
    const silent = createServer(() => {}); // accepts, never answers
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const r = await admin.req('POST', '/api/webhooks', {
        url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/silent`,
        events: ['opened'],
      });
      expect(r.status).toBe(201);
      const m = await contactWithMessage(org);
      await openEvent(org, m);
      await drainFeed();
      const started = Date.now();
      await deliverDueWebhooks(deps, { timeoutMs: 300 });
      expect(Date.now() - started).toBeLessThan(5000);
      const [d] = (await admin.req('GET', `/api/webhooks/${r.body.endpoint.id}/deliveries`)).body.deliveries;
      expect(d).toMatchObject({ status: 'pending', attempts: 1, lastStatusCode: null });
      expect(d.lastError).toMatch(/no answer within 300 ms/);
      await admin.req('DELETE', `/api/webhooks/${r.body.endpoint.id}`);
    } finally {
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
    }
  });

  it('gives up after the last attempt, and an admin can send it again', async () => {
    const { endpoint } = await createEndpoint(admin, ['opened'], '/down');
    answer = (h) => (h.path === '/down' ? 503 : 200);
    const m = await contactWithMessage(org);
    await openEvent(org, m);
    await drainFeed();
    for (let i = 0; i <= BACKOFF_MS.length; i++) {
      await deliverDueWebhooks(deps);
      now = new Date(now.getTime() + 13 * 3600e3);
    }
    expect(hitsFor('/down')).toHaveLength(BACKOFF_MS.length + 1);
    const [d] = (await admin.req('GET', `/api/webhooks/${endpoint.id}/deliveries`)).body.deliveries;
    expect(d).toMatchObject({ status: 'failed', attempts: BACKOFF_MS.length + 1 });
    await deliverDueWebhooks(deps);
    expect(hitsFor('/down')).toHaveLength(BACKOFF_MS.length + 1);
    answer = () => 200;
    expect((await admin.req('POST', `/api/webhooks/deliveries/${d.id}/retry`)).status).toBe(202);
    await deliverDueWebhooks(deps);
    expect(hitsFor('/down')).toHaveLength(BACKOFF_MS.length + 2);
    await admin.req('DELETE', `/api/webhooks/${endpoint.id}`);
  });

  it('sends nothing to a disabled endpoint, nor to another organization', async () => {
    const { endpoint } = await createEndpoint(admin, ['opened'], '/disabled');
    expect((await admin.req('PATCH', `/api/webhooks/${endpoint.id}`, { enabled: false })).status).toBe(200);
    const other = await createTestOrg(deps);
    const otherAdmin = await login(app, other.adminEmail, other.adminPassword);
    const theirs = await createEndpoint(otherAdmin, ['opened'], '/other-org');
    // Org isolation in the API too.
    expect((await otherAdmin.req('GET', `/api/webhooks/${endpoint.id}`)).status).toBe(404);
    expect((await otherAdmin.req('GET', `/api/webhooks/${endpoint.id}/deliveries`)).status).toBe(404);
    const m = await contactWithMessage(org);
    await openEvent(org, m);
    await drainFeed();
    await deliverDueWebhooks(deps);
    expect(hitsFor('/disabled')).toHaveLength(0);
    expect(hitsFor('/other-org')).toHaveLength(0);
    // Their own event does reach them.
    await openEvent(other, await contactWithMessage(other));
    await drainFeed();
    await deliverDueWebhooks(deps);
    expect(hitsFor('/other-org')).toHaveLength(1);
    expect(hitsFor('/disabled')).toHaveLength(0);
    await otherAdmin.req('DELETE', `/api/webhooks/${theirs.endpoint.id}`);
    await admin.req('DELETE', `/api/webhooks/${endpoint.id}`);
  });

  it("sends 'sent' when a message is sent, and 'delivered' once no bounce came", async () => {
    const { endpoint } = await createEndpoint(admin, ['sent', 'delivered'], '/sent');
    await fanOutSent(deps, 'sent', 0); // cursors start at the present
    await fanOutSent(deps, 'delivered', 60_000);
    const m = await contactWithMessage(org, 'sent', new Date(now.getTime() + 1000));
    const bounced = await contactWithMessage(org, 'sent', new Date(now.getTime() + 1000));
    await deps.db
      .updateTable('messages')
      .set({ bounced_at: now, bounce_kind: 'hard' })
      .where('id', '=', bounced.messageId)
      .execute();
    await contactWithMessage(org, 'queued', null);
    now = new Date(now.getTime() + 2000);
    await fanOutSent(deps, 'sent', 0);
    await fanOutSent(deps, 'delivered', 60_000);
    await deliverDueWebhooks(deps);
    let got = hitsFor('/sent').map((h) => JSON.parse(h.body));
    expect(got.map((p) => [p.event, p.data.messageId]).sort()).toEqual(
      [
        ['sent', m.messageId],
        ['sent', bounced.messageId],
      ].sort(),
    );
    now = new Date(now.getTime() + 61_000);
    await fanOutSent(deps, 'sent', 0);
    await fanOutSent(deps, 'delivered', 60_000);
    await deliverDueWebhooks(deps);
    got = hitsFor('/sent').map((h) => JSON.parse(h.body));
    // Messages of earlier tests sent inside the window count too; the bounced one never does.
    const delivered = got.filter((p) => p.event === 'delivered').map((p) => p.data.messageId);
    expect(delivered).toContain(m.messageId);
    expect(delivered).not.toContain(bounced.messageId);
    expect(new Set(delivered).size).toBe(delivered.length);
    await admin.req('DELETE', `/api/webhooks/${endpoint.id}`);
  });

  it('delivers each event once when several dispatchers race', async () => {
    const { endpoint } = await createEndpoint(admin, ['opened'], '/race');
    const m = await contactWithMessage(org);
    for (let i = 0; i < 40; i++) await openEvent(org, m);
    const racers = Array.from({ length: 4 }, () => {
      const d = testDeps(clock);
      return { ...d, config: { ...d.config, webhooksAllowPrivate: true } };
    });
    try {
      for (let round = 0; round < 20 && hitsFor('/race').length < 40; round++)
        await Promise.all(racers.map((d) => dispatchWebhooks(d, { sentLagMs: 0 })));
    } finally {
      await Promise.all(racers.map((d) => d.close()));
    }
    const ids = hitsFor('/race').map((h) => JSON.parse(h.body).id);
    expect(ids).toHaveLength(40);
    expect(new Set(ids).size).toBe(40);
    const n = await deps.db
      .selectFrom('webhook_deliveries')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('endpoint_id', '=', endpoint.id)
      .executeTakeFirstOrThrow();
    expect(Number(n.n)).toBe(40);
    await admin.req('DELETE', `/api/webhooks/${endpoint.id}`);
  });
});

describe('the dispatcher loop of a worker', () => {
  it('wakes on a new email event (NOTIFY) and delivers without waiting for its poll', async () => {
    const { startWebhookDispatcher } = await import('../src/webhooks/dispatcher.ts');
    const { inject } = await import('vitest');
    now = new Date();
    const { endpoint } = await createEndpoint(admin, ['clicked'], '/live');
    await drainFeed();
    const arrived = new Promise<Hit>((resolve) => {
      const prev = answer;
      answer = (h) => {
        if (h.path === '/live') resolve(h);
        return prev(h);
      };
    });
    const loop = startWebhookDispatcher(deps, { connectionString: inject('dbUrl'), pollMs: 120_000 });
    try {
      // Let the loop's first pass and its LISTEN settle, then one click.
      await new Promise((r) => setTimeout(r, 500));
      const m = await contactWithMessage(org);
      const started = Date.now();
      await recordEvents(deps.db, [
        {
          orgId: org.orgId,
          messageId: m.messageId,
          recordId: m.recordId,
          massEmailId: null,
          kind: 'clicked',
          human: true,
          at: now,
        },
      ]);
      const h = await Promise.race([
        arrived,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('not delivered within 20 s')), 20_000),
        ),
      ]);
      expect(JSON.parse(h.body).event).toBe('clicked');
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      await loop.stop();
      await admin.req('DELETE', `/api/webhooks/${endpoint.id}`);
    }
  });
});
