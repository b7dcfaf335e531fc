import { sql } from 'kysely';
// Delivery (F3.8) against real SMTP servers: an in-process smtp-server that captures the bytes and
// Postfix's smtp-sink as a faulty relay. deliverDue is driven directly with a fake clock.

import type { FastifyInstance } from 'fastify';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Actor, acceptInvite, inviteUser } from '../src/crm/index.ts';
import { buildApp } from '../src/http/app.ts';
import { startDeliveryWorker } from '../src/sending/delivery.jobs.ts';
import {
  closeSignPool,
  deliverDue,
  recoverStuck,
  retryDelayMs,
  STUCK_AFTER_MS,
  wakeDelivery,
} from '../src/sending/delivery.ts';
import { addDkimKey } from '../src/sending/dkim-keys.ts';
import { type RelayInput, saveRelay } from '../src/sending/relays.ts';
import { closeRelayTransports } from '../src/sending/transport.ts';
import { parseVerp } from '../src/sending/verp.ts';
import { createTestOrg, login, queueMessage, type TestOrg, testDeps } from './support/app.ts';
import {
  type Captured,
  freePort,
  smtpError,
  startCaptureServer,
  startSmtpSink,
} from './support/mail-peers.ts';

const start = Date.now();
let now = start;
const clock = { now: () => new Date(now) };
const deps = testDeps(clock);
let app: FastifyInstance;

beforeAll(async () => {
  app = await buildApp(deps);
});
afterAll(async () => {
  closeRelayTransports(deps);
  await closeSignPool(deps);
  await app.close();
  await deps.close();
});

function adminActor(org: TestOrg): Actor {
  return {
    orgId: org.orgId,
    userId: org.adminId,
    isAdmin: true,
    permissions: {} as Actor['permissions'],
    timeZone: 'UTC',
    locale: 'en',
  };
}

async function newOrg(relay?: Partial<RelayInput> & { port: number }) {
  const org = await createTestOrg(deps);
  if (relay) await saveRelay(deps, adminActor(org), { host: '127.0.0.1', security: 'none', ...relay });
  return org;
}

let seq = 0;
/** A queued message row, as the individual-email service writes it. */
async function queue(
  org: TestOrg,
  over: Partial<{
    to: string;
    toName: string;
    subject: string;
    html: string | null;
    text: string | null;
    senderId: string;
    expiresAt: Date;
  }> = {},
): Promise<string> {
  const n = ++seq;
  return queueMessage(deps, org, {
    sender_id: over.senderId ?? org.adminId,
    to_address: over.to ?? `lead${n}@remote.test`,
    to_name: over.toName ?? `Lead ${n}`,
    subject: over.subject ?? `Hello ${n}`,
    html: over.html === undefined ? `<p>Hello <b>lead ${n}</b></p>` : over.html,
    text: over.text === undefined ? `Hello lead ${n}\n.a line starting with a dot\n` : over.text,
    message_id_header: `<t${n}.${start}.${Math.random().toString(36).slice(2)}@test.example>`,
    ...(over.expiresAt ? { expires_at: over.expiresAt } : {}),
  });
}

/** Asserts `n` messages were sent; on failure shows what happened to each (replies, errors). */
async function expectSent(org: TestOrg, counts: { sent: number }, n: number) {
  if (counts.sent === n) return;
  const rows = await deps.db
    .selectFrom('messages')
    .select(['status', 'smtp_code', 'smtp_response'])
    .where('org_id', '=', org.orgId)
    .where('status', '!=', 'sent')
    .execute();
  expect({ counts, rows }).toMatchObject({ counts: { sent: n } });
}

const message = (id: string) =>
  deps.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

async function dnsFor(org: TestOrg, algorithm: 'rsa-sha256' | 'ed25519-sha256', selector: string) {
  const k = await addDkimKey(deps, adminActor(org), { domain: 'test.example', selector, algorithm });
  return k;
}

function resolverFor(records: { dnsRecord: { name: string; value: string } }[]) {
  return async (name: string, type: string) => {
    const r = records.find((x) => x.dnsRecord.name === name);
    if (type !== 'TXT' || !r) throw Object.assign(new Error(`no ${type} for ${name}`), { code: 'ENOTFOUND' });
    return [[r.dnsRecord.value]];
  };
}

describe('relay settings API', () => {
  it('admins set up, read and remove the relay; the password is encrypted and never returned', async () => {
    const org = await newOrg();
    const c = await login(app, org.adminEmail, org.adminPassword);
    expect((await c.req('GET', '/api/admin/smtp-relay')).body).toEqual({ relay: null, transport: 'outbox' });
    const put = await c.req('PUT', '/api/admin/smtp-relay', {
      host: 'SMTP.Example.com',
      port: 587,
      security: 'starttls',
      username: 'parley',
      password: 'hunter2-secret',
      maxConnections: 3,
      maxPerSecond: 12.5,
      domainLimits: { 'Gmail.com': { connections: 2, perSecond: 5 } },
      sendingDomain: 'Mail.Example.com',
    });
    expect(put.status).toBe(200);
    expect(put.body.relay).toMatchObject({
      host: 'smtp.example.com',
      port: 587,
      security: 'starttls',
      username: 'parley',
      hasPassword: true,
      maxConnections: 3,
      maxPerSecond: 12.5,
      domainLimits: { 'gmail.com': { connections: 2, perSecond: 5 } },
      sendingDomain: 'mail.example.com',
    });
    expect(put.text).not.toContain('hunter2');
    const stored = await deps.db
      .selectFrom('smtp_relays')
      .selectAll()
      .where('org_id', '=', org.orgId)
      .executeTakeFirstOrThrow();
    expect(stored.password_enc).toMatch(/^v1\./);
    expect(stored.password_enc).not.toContain('hunter2');
    const get = await c.req('GET', '/api/admin/smtp-relay');
    expect(get.text).not.toContain('hunter2');
    expect(get.text).not.toContain('password_enc');
    expect(get.body.relay.hasPassword).toBe(true);
    // Saving without a password keeps it; null removes it.
    await c.req('PUT', '/api/admin/smtp-relay', { host: 'smtp.example.com', port: 2525, security: 'none' });
    expect((await c.req('GET', '/api/admin/smtp-relay')).body.relay).toMatchObject({
      port: 2525,
      hasPassword: true,
      maxConnections: 5,
      maxPerSecond: 50,
      domainLimits: {},
    });
    await c.req('PUT', '/api/admin/smtp-relay', {
      host: 'smtp.example.com',
      port: 2525,
      security: 'none',
      password: null,
    });
    expect((await c.req('GET', '/api/admin/smtp-relay')).body.relay.hasPassword).toBe(false);
    expect((await c.req('DELETE', '/api/admin/smtp-relay')).status).toBe(204);
    expect((await c.req('GET', '/api/admin/smtp-relay')).body).toEqual({ relay: null, transport: 'outbox' });
  });

  it('refuses non-admins and bad settings with clear errors', async () => {
    const org = await newOrg();
    const c = await login(app, org.adminEmail, org.adminPassword);
    const bad = async (body: object) => {
      const r = await c.req('PUT', '/api/admin/smtp-relay', {
        host: 'smtp.example.com',
        port: 25,
        security: 'none',
        ...body,
      });
      expect(r.status).toBe(400);
      return r.body.error.message as string;
    };
    expect(await bad({ host: 'smtp example.com' })).toMatch(/not a valid host name/);
    expect(await bad({ port: 70000 })).toMatch(/port/);
    expect(await bad({ security: 'ssl' })).toMatch(/security/);
    expect(await bad({ password: 'a\r\nRSET' })).toMatch(/line break/);
    expect(await bad({ domainLimits: { 'gmail.com': {} } })).toMatch(/connections and\/or perSecond/);
    expect(await bad({ sendingDomain: 'localhost' })).toMatch(/sendingDomain/);
    const user = await invitedUser(org);
    for (const [method, url, body] of [
      ['GET', '/api/admin/smtp-relay'],
      ['PUT', '/api/admin/smtp-relay', { host: 'x.example', port: 25, security: 'none' }],
      ['DELETE', '/api/admin/smtp-relay'],
      ['POST', '/api/admin/smtp-relay/test', { to: 'a@b.example' }],
      ['GET', '/api/admin/dkim-keys'],
      ['POST', '/api/admin/dkim-keys', { domain: 'x.example', selector: 's1' }],
    ] as const)
      expect((await user.client.req(method, url, body)).status).toBe(403);
  });
});

async function invitedUser(org: TestOrg) {
  const email = `user-${++seq}-${start}@test.example`;
  const { inviteToken, user } = await inviteUser(deps, adminActor(org), {
    email,
    name: 'Uma User',
    profileId: org.standardProfileId,
  });
  await acceptInvite(deps, { token: inviteToken, password: 'user-password-123' });
  return { id: user.id, client: await login(app, email, 'user-password-123') };
}

describe('DKIM keys API', () => {
  it('generates RSA-2048 and Ed25519 keys and shows the DNS record, never the private key', async () => {
    const org = await newOrg();
    const c = await login(app, org.adminEmail, org.adminPassword);
    const rsa = await c.req('POST', '/api/admin/dkim-keys', { domain: 'Example.COM', selector: 'p2026' });
    expect(rsa.status).toBe(201);
    expect(rsa.body).toMatchObject({
      domain: 'example.com',
      selector: 'p2026',
      algorithm: 'rsa-sha256',
      dnsRecord: { name: 'p2026._domainkey.example.com', type: 'TXT' },
    });
    expect(rsa.body.dnsRecord.value).toMatch(/^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{390,}$/);
    const ed = await c.req('POST', '/api/admin/dkim-keys', {
      domain: 'example.com',
      selector: 'e2026',
      algorithm: 'ed25519-sha256',
    });
    expect(ed.body.dnsRecord.value).toMatch(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
    const list = await c.req('GET', '/api/admin/dkim-keys');
    expect(list.body.map((k: { selector: string }) => k.selector).sort()).toEqual(['e2026', 'p2026']);
    for (const r of [rsa, ed, list]) expect(r.text).not.toMatch(/PRIVATE|private_key/i);
    const rows = await deps.db
      .selectFrom('dkim_keys')
      .select('private_key_enc')
      .where('org_id', '=', org.orgId)
      .execute();
    for (const r of rows) expect(r.private_key_enc).not.toContain('BEGIN');
    expect(
      (await c.req('POST', '/api/admin/dkim-keys', { domain: 'example.com', selector: 'p2026' })).status,
    ).toBe(409);
    expect((await c.req('DELETE', `/api/admin/dkim-keys/${ed.body.id}`)).status).toBe(204);
    expect((await c.req('DELETE', `/api/admin/dkim-keys/${ed.body.id}`)).status).toBe(404);
    expect((await c.req('GET', '/api/admin/dkim-keys')).body).toHaveLength(1);
  });

  it('accepts an uploaded PEM key and refuses bad ones', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const org = await newOrg();
    const c = await login(app, org.adminEmail, org.adminPassword);
    const pem = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs1', format: 'pem' })
      .toString();
    const up = await c.req('POST', '/api/admin/dkim-keys', {
      domain: 'example.org',
      selector: 'up',
      privateKey: pem,
    });
    expect(up.status).toBe(201);
    expect(up.body.algorithm).toBe('rsa-sha256');
    const weak = generateKeyPairSync('rsa', { modulusLength: 512 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    expect(
      (
        await c.req('POST', '/api/admin/dkim-keys', {
          domain: 'example.org',
          selector: 'weak',
          privateKey: weak,
        })
      ).body.error.message,
    ).toMatch(/1024 bits/);
    expect(
      (
        await c.req('POST', '/api/admin/dkim-keys', {
          domain: 'example.org',
          selector: 'x',
          privateKey: 'not a key',
        })
      ).status,
    ).toBe(400);
    expect(
      (await c.req('POST', '/api/admin/dkim-keys', { domain: 'example.org', selector: '-bad' })).status,
    ).toBe(400);
  });
});

describe('local outbox (no relay)', () => {
  it('stores the signed bytes, marks the message sent, and shows it sanitised to the right people', async () => {
    const org = await newOrg();
    const key = await dnsFor(org, 'rsa-sha256', 'ob1');
    const user = await invitedUser(org);
    const hostile =
      '<script>alert(1)</script><p style="background:url(https://evil.example/bg.png)">Hi <b>there</b></p>' +
      '<img src="https://tracker.example/pixel.gif" onerror="steal()"><a href="javascript:alert(1)">x</a>' +
      '<a href="https://ok.example/page">ok</a><iframe src="https://evil.example/frame"></iframe>';
    const adminMsg = await queue(org, { html: hostile, text: null, subject: 'Grüße from the outbox' });
    const userMsg = await queue(org, { senderId: user.id, html: null, text: 'Text only' });
    const counts = await deliverDue(deps, { orgId: org.orgId });
    expect(counts).toMatchObject({ claimed: 2, sent: 2, deferred: 0, failed: 0, unknown: 0 });
    const row = await message(adminMsg);
    expect(row).toMatchObject({ status: 'sent', transport: 'outbox', attempts: 1, smtp_code: null });
    expect(row.smtp_response).toMatch(/local outbox/);
    const stored = await deps.db
      .selectFrom('outbox')
      .selectAll()
      .where('message_id', '=', adminMsg)
      .executeTakeFirstOrThrow();
    const dkim = await dkimVerify(stored.raw, { resolver: resolverFor([key]) });
    expect(dkim.results[0].status.result).toBe('pass');

    const admin = await login(app, org.adminEmail, org.adminPassword);
    const list = await admin.req('GET', '/api/outbox');
    expect(list.body.items.map((i: { messageId: string }) => i.messageId).sort()).toEqual(
      [adminMsg, userMsg].sort(),
    );
    const page1 = await admin.req('GET', '/api/outbox?limit=1');
    expect(page1.body.items).toHaveLength(1);
    const page2 = await admin.req('GET', `/api/outbox?limit=1&before=${page1.body.nextCursor}`);
    expect(page2.body.items).toHaveLength(1);
    expect(page2.body.items[0].messageId).not.toBe(page1.body.items[0].messageId);
    expect(page2.body.nextCursor).toBeNull();
    expect((await admin.req('GET', '/api/outbox?before=garbage')).status).toBe(400);

    const open = await admin.req('GET', `/api/outbox/${adminMsg}`);
    expect(open.status).toBe(200);
    expect(open.body.subject).toBe('Grüße from the outbox');
    expect(open.body.headers).toContainEqual({ name: 'Message-ID', value: row.message_id_header });
    expect(open.body.headers.map((h: { name: string }) => h.name)).toContain('DKIM-Signature');
    const html: string = open.body.html;
    expect(html).toContain('Content-Security-Policy');
    expect(html).toContain('<b>there</b>');
    // Insights are on: the link is the message's tracked one (it redirects to ok.example/page)
    expect(row.tracked).toBe(true);
    expect(html).toMatch(/href="http[^"]*\/t\/c\/[A-Za-z0-9_-]{40}"/);
    for (const bad of [
      '<script',
      'alert(1)',
      'tracker.example',
      'onerror',
      'evil.example',
      'javascript:',
      '<iframe',
    ])
      expect(html).not.toContain(bad);
    expect(open.body.text).toContain('Hi there');

    const raw = await app.inject({
      method: 'GET',
      url: `/api/outbox/${adminMsg}/raw`,
      headers: { cookie: admin.cookie },
    });
    expect(raw.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(raw.rawPayload.equals(stored.raw)).toBe(true);

    // A user sees their own messages only.
    const mine = await user.client.req('GET', '/api/outbox');
    expect(mine.body.items.map((i: { messageId: string }) => i.messageId)).toEqual([userMsg]);
    expect((await user.client.req('GET', `/api/outbox/${adminMsg}`)).status).toBe(404);
    expect((await user.client.req('GET', `/api/outbox/${adminMsg}/raw`)).status).toBe(404);
    const own = await user.client.req('GET', `/api/outbox/${userMsg}`);
    expect(own.body).toMatchObject({ html: null, text: 'Text only\n' });
  });
});

describe('delivery through a relay (in-process SMTP server)', () => {
  it('sends the exact message with the VERP return path, AUTH, MIME parts and DKIM signatures that verify', async () => {
    const server = await startCaptureServer({ auth: { user: 'relay-user', pass: 'relay-pässword' } });
    const org = await newOrg({
      port: server.port,
      username: 'relay-user',
      password: 'relay-pässword',
      sendingDomain: 'bounces.test.example',
    });
    const rsa = await dnsFor(org, 'rsa-sha256', 'r1');
    const ed = await dnsFor(org, 'ed25519-sha256', 'e1');
    const id = await queue(org, {
      to: 'Jane.Doe@Remote.TEST',
      toName: 'Jane Doe',
      subject: 'Quarterly numbers',
    });
    const counts = await deliverDue(deps, { orgId: org.orgId });
    expect(counts).toMatchObject({ claimed: 1, sent: 1 });
    const [got] = await server.waitFor(1);
    expect(got.user).toBe('relay-user');
    expect(got.rcptTo).toEqual(['Jane.Doe@remote.test']);
    expect(parseVerp(got.mailFrom, deps.config.secret as string)).toBe(id);
    expect(got.mailFrom.endsWith('@bounces.test.example')).toBe(true);
    const row = await message(id);
    expect(row).toMatchObject({ status: 'sent', transport: 'relay', smtp_code: 250, attempts: 1 });
    expect(row.smtp_response).toMatch(/^250 .*captured/);
    expect(row.sent_at?.getTime()).toBe(now);

    const parsed = await simpleParser(got.raw);
    expect(parsed.messageId).toBe(row.message_id_header);
    expect(parsed.subject).toBe('Quarterly numbers');
    expect(parsed.from?.value[0]).toMatchObject({ address: org.adminEmail, name: 'Ada Admin' });
    expect(parsed.to && !Array.isArray(parsed.to) && parsed.to.value[0]).toMatchObject({
      address: 'Jane.Doe@remote.test',
      name: 'Jane Doe',
    });
    expect(parsed.date?.getTime()).toBe(Math.floor(now / 1000) * 1000);
    expect(parsed.headers.get('content-type')).toMatchObject({ value: 'multipart/alternative' });
    expect(parsed.html).toContain('<b>lead');
    expect(parsed.text).toContain('\n.a line starting with a dot');
    expect(got.raw.toString()).not.toContain('X-Mailer');
    const dkim = await dkimVerify(got.raw, { resolver: resolverFor([rsa, ed]) });
    expect(dkim.results.map((r) => [r.signingDomain, r.status.result]).sort()).toEqual([
      ['test.example', 'pass'],
      ['test.example', 'pass'],
    ]);
    // a changed byte breaks the signatures
    const tampered = Buffer.from(got.raw.toString('latin1').replace('Quarterly', 'Quarterlx'), 'latin1');
    const bad = await dkimVerify(tampered, { resolver: resolverFor([rsa, ed]) });
    expect(bad.results.every((r) => r.status.result !== 'pass')).toBe(true);
    await server.stop();
  });

  it('reuses one pooled transport per relay and rebuilds it when the settings change', async () => {
    const server = await startCaptureServer();
    const other = await startCaptureServer();
    const org = await newOrg({ port: server.port, maxConnections: 2 });
    for (let i = 0; i < 6; i++) await queue(org);
    await expectSent(org, await deliverDue(deps, { orgId: org.orgId }), 6);
    for (let i = 0; i < 6; i++) await queue(org);
    await expectSent(org, await deliverDue(deps, { orgId: org.orgId }), 6);
    expect(server.messages).toHaveLength(12);
    // 12 messages in two batches over at most 2 connections, still open for the next batch
    expect(server.connections).toBeGreaterThanOrEqual(1);
    expect(server.connections).toBeLessThanOrEqual(2);
    expect(server.open).toBe(server.connections);
    await saveRelay(deps, adminActor(org), { host: '127.0.0.1', port: other.port, security: 'none' });
    await queue(org);
    expect((await deliverDue(deps, { orgId: org.orgId })).sent).toBe(1);
    expect(other.messages).toHaveLength(1);
    expect(other.connections).toBe(1);
    // the old transport was closed when the new settings were seen
    await expect.poll(() => server.open, { timeout: 3000 }).toBe(0);
    await server.stop();
    await other.stop();
  });

  it('keeps per-domain concurrency and the relay rate', async () => {
    let active = 0;
    let maxSlow = 0;
    let maxAll = 0;
    let activeSlow = 0;
    const arrivals: number[] = [];
    const server = await startCaptureServer({
      async onMessage(m) {
        const slow = m.rcptTo[0].endsWith('@slow.test');
        active++;
        if (slow) activeSlow++;
        maxAll = Math.max(maxAll, active);
        maxSlow = Math.max(maxSlow, activeSlow);
        await new Promise((r) => setTimeout(r, 60));
        active--;
        if (slow) activeSlow--;
      },
    });
    const org = await newOrg({
      port: server.port,
      maxConnections: 4,
      maxPerSecond: 1000,
      domainLimits: { 'slow.test': { connections: 1 } },
    });
    for (let i = 0; i < 4; i++) await queue(org, { to: `s${i}@slow.test` });
    for (let i = 0; i < 6; i++) await queue(org, { to: `f${i}@fast.test` });
    expect((await deliverDue(deps, { orgId: org.orgId })).sent).toBe(10);
    expect(maxSlow).toBe(1);
    expect(maxAll).toBeGreaterThan(1);
    expect(maxAll).toBeLessThanOrEqual(4);

    const rated = await newOrg({ port: server.port, maxPerSecond: 20 });
    server.messages.length = 0;
    const t0 = performance.now();
    for (let i = 0; i < 6; i++) await queue(rated, { to: `r${i}@fast.test` });
    const sendStart = performance.now();
    const counts = await deliverDue(deps, { orgId: rated.orgId });
    arrivals.push(performance.now() - sendStart);
    await expectSent(rated, counts, 6);
    // 6 sends at 20/s: the last may start 5 × 50 ms after the first
    expect(arrivals[0]).toBeGreaterThanOrEqual(240);
    expect(t0).toBeLessThan(sendStart);
    await server.stop();
  });

  it('puts back, unattempted, what could not start within the horizon', async () => {
    const server = await startCaptureServer();
    const org = await newOrg({ port: server.port, maxPerSecond: 0.05 }); // one every 20 s
    const ids = [await queue(org), await queue(org), await queue(org)];
    const c = await deliverDue(deps, { orgId: org.orgId });
    expect(c).toMatchObject({ claimed: 3, sent: 1, released: 2 });
    const rows = await Promise.all(ids.map(message));
    const released = rows.filter((r) => r.status === 'queued');
    expect(released).toHaveLength(2);
    for (const r of released) {
      expect(r.attempts).toBe(0);
      expect(r.next_attempt_at.getTime() - now).toBeGreaterThanOrEqual(19_000);
    }
    expect(server.messages).toHaveLength(1);
    await server.stop();
  });

  it('a mixed batch: every message ends sent, deferred or failed; none is lost or sent twice', async () => {
    let greylist = true;
    const server = await startCaptureServer({
      onRcpt(address) {
        if (address.startsWith('hard')) throw smtpError(550, '5.1.1 no such user');
        if (address.startsWith('soft') && greylist) throw smtpError(451, '4.7.1 greylisted');
      },
    });
    const org = await newOrg({ port: server.port, maxConnections: 3 });
    const ids: Record<string, string[]> = { ok: [], soft: [], hard: [] };
    for (let i = 0; i < 10; i++)
      for (const k of ['ok', 'soft', 'hard']) ids[k].push(await queue(org, { to: `${k}${i}@mixed.test` }));
    const c = await deliverDue(deps, { orgId: org.orgId });
    expect(c).toEqual({ claimed: 30, sent: 10, deferred: 10, failed: 10, unknown: 0, released: 0 });
    for (const id of ids.hard)
      expect(await message(id)).toMatchObject({ status: 'failed', smtp_code: 550, attempts: 1 });
    for (const id of ids.soft) {
      const r = await message(id);
      expect(r).toMatchObject({ status: 'deferred', smtp_code: 451, attempts: 1 });
      expect(r.smtp_response).toMatch(/greylisted/);
    }
    // nothing is due before the backoff
    expect((await deliverDue(deps, { orgId: org.orgId })).claimed).toBe(0);
    greylist = false;
    now += 2 * 60 * 60_000;
    expect(await deliverDue(deps, { orgId: org.orgId })).toMatchObject({ claimed: 10, sent: 10 });
    for (const id of [...ids.ok, ...ids.soft]) expect((await message(id)).status).toBe('sent');
    const delivered = server.messages.map((m) => parseVerp(m.mailFrom, deps.config.secret as string));
    expect(delivered.sort()).toEqual([...ids.ok, ...ids.soft].sort());
    expect(new Set(delivered).size).toBe(20);
    await server.stop();
  });
});

describe('failure modes, with smtp-sink as the relay', () => {
  const cases: { name: string; flags: string[]; status: string; code: number | null; response?: RegExp }[] = [
    { name: '250 accepted', flags: [], status: 'sent', code: 250 },
    {
      name: '451 to RCPT (greylisting)',
      flags: ['-r', 'RCPT', '-b', '451 4.7.1 greylisted, try later'],
      status: 'deferred',
      code: 451,
      response: /greylisted/,
    },
    {
      name: '550 to RCPT',
      flags: ['-f', 'RCPT', '-B', '550 5.1.1 user unknown'],
      status: 'failed',
      code: 550,
      response: /user unknown/,
    },
    {
      name: '553 to MAIL FROM',
      flags: ['-f', 'MAIL', '-B', '553 5.7.1 sender rejected'],
      status: 'failed',
      code: 553,
    },
    { name: '421 and disconnect at DATA', flags: ['-Q', 'DATA'], status: 'deferred', code: 421 },
    {
      name: 'dropped after DATA, before 354 (nothing sent)',
      flags: ['-q', 'DATA'],
      status: 'deferred',
      code: null,
      response: /ECONNECTION|closed/,
    },
    { name: '450 after the message', flags: ['-r', '.'], status: 'deferred', code: 450 },
    // (smtp-sink answers 500 5.0.0: a vague code, recorded as a soft bounce, not suppressed)
    { name: '500 after the message', flags: ['-f', '.'], status: 'failed', code: 500 },
    { name: '421 after the message', flags: ['-Q', '.'], status: 'deferred', code: 421 },
    {
      name: 'dropped after the message, no reply',
      flags: ['-q', '.'],
      status: 'unknown',
      code: null,
      response: /may have been delivered/,
    },
    { name: '421 greeting', flags: ['-Q', 'CONNECT'], status: 'deferred', code: 421 },
    { name: '5xx greeting (the relay refuses us)', flags: ['-f', 'CONNECT'], status: 'deferred', code: 500 },
  ];
  for (const c of cases)
    it(`${c.name} → ${c.status}`, async () => {
      const sink = await startSmtpSink(c.flags);
      try {
        const org = await newOrg({ port: sink.port });
        const id = await queue(org);
        const counts = await deliverDue(deps, { orgId: org.orgId, random: () => 0.5 });
        expect(counts.claimed).toBe(1);
        const row = await message(id);
        expect({ status: row.status, code: row.smtp_code }).toEqual({ status: c.status, code: c.code });
        expect(row.attempts).toBe(1);
        if (c.response) expect(row.smtp_response).toMatch(c.response);
        if (c.status === 'deferred') expect(row.next_attempt_at.getTime() - now).toBe(60_000);
        // A 5xx to RCPT is a bounce (and a bad address is suppressed); one to our MAIL FROM, or
        // after the message without an enhanced status code, says nothing about the address.
        const b = await sql<{ bounce_kind: string | null; suppressed: boolean }>`SELECT m.bounce_kind,
            EXISTS (SELECT 1 FROM suppressions s WHERE s.org_id = m.org_id AND s.email = m.to_address) AS suppressed
          FROM messages m WHERE m.id = ${id}`.execute(deps.db);
        expect(b.rows[0]).toEqual(
          c.name === '550 to RCPT'
            ? { bounce_kind: 'hard', suppressed: true }
            : c.name === '500 after the message'
              ? { bounce_kind: 'soft', suppressed: false }
              : { bounce_kind: null, suppressed: false },
        );
        if (c.status === 'sent')
          expect((await sink.waitFor(1))[0].mailFrom).toEqual(parseVerpAddress(sink, id));
        if (c.status === 'unknown' || c.status === 'failed') {
          // final: even days later it is never claimed (so never sent) again
          now += 5 * 24 * 3_600_000;
          expect((await deliverDue(deps, { orgId: org.orgId })).claimed).toBe(0);
          expect((await message(id)).status).toBe(c.status);
        }
      } finally {
        await sink.stop();
      }
    });

  it('connection refused → deferred', async () => {
    const org = await newOrg({ port: await freePort() });
    const id = await queue(org);
    await deliverDue(deps, { orgId: org.orgId });
    const row = await message(id);
    expect(row).toMatchObject({ status: 'deferred', smtp_code: null });
    expect(row.smtp_response).toMatch(/ECONNREFUSED/);
  });

  it('a wrong relay password defers with the reply (the message is fine, the relay is not)', async () => {
    const server = await startCaptureServer({ auth: { user: 'u', pass: 'right' } });
    const org = await newOrg({ port: server.port, username: 'u', password: 'wrong' });
    const id = await queue(org);
    await deliverDue(deps, { orgId: org.orgId });
    expect(await message(id)).toMatchObject({ status: 'deferred', smtp_code: 535 });
    await server.stop();
  });

  it('retries with exponential backoff until the lifetime ends, then fails', async () => {
    const sink = await startSmtpSink(['-r', 'RCPT', '-b', '451 4.7.1 try again later']);
    try {
      const org = await newOrg({ port: sink.port });
      const id = await queue(org);
      const created = now;
      const delays: number[] = [];
      for (let i = 0; i < 5; i++) {
        expect((await deliverDue(deps, { orgId: org.orgId, random: () => 0.5 })).deferred).toBe(1);
        const r = await message(id);
        delays.push(r.next_attempt_at.getTime() - now);
        now = r.next_attempt_at.getTime();
      }
      expect(delays).toEqual([1, 2, 4, 8, 16].map((m) => m * 60_000));
      expect(retryDelayMs(20, () => 0.5)).toBe(60 * 60_000); // capped at an hour
      const jittered = [0, 1].map((r) => retryDelayMs(1, () => r));
      expect(jittered).toEqual([48_000, 72_000]);
      // near the end of the lifetime (96 h by default) the last attempt is at expires_at itself
      const expires = (await message(id)).expires_at.getTime();
      expect(expires - created).toBe(96 * 3_600_000);
      now = expires - 60_000;
      await deliverDue(deps, { orgId: org.orgId, random: () => 0.5 });
      expect((await message(id)).next_attempt_at.getTime()).toBe(expires);
      now = expires;
      expect((await deliverDue(deps, { orgId: org.orgId })).failed).toBe(1);
      const r = await message(id);
      expect(r).toMatchObject({ status: 'failed', smtp_code: 451, attempts: 7 });
      expect(r.smtp_response).toMatch(/gave up after 7 attempts.*try again later/);
    } finally {
      await sink.stop();
    }
  });
});

function parseVerpAddress(_sink: unknown, id: string) {
  return expect.stringMatching(new RegExp(`^b-${id.replaceAll('-', '')}-[a-z2-7]{16}@test\\.example$`));
}

describe('rows that cannot be sent as they are', () => {
  it('a row with a header injection fails with the reason; rows without content wait for a renderer', async () => {
    const org = await newOrg();
    const injected = await queue(org, { subject: 'Hi\r\nBcc: victim@example.org' });
    const badTo = await queue(org, { to: 'not-an-address' });
    const unrendered = await queue(org, { html: null, text: null });
    const c = await deliverDue(deps, { orgId: org.orgId });
    expect(c).toMatchObject({ claimed: 3, failed: 2, released: 1, sent: 0 });
    expect(await message(injected)).toMatchObject({ status: 'failed', attempts: 1 });
    expect((await message(injected)).smtp_response).toMatch(
      /could not build the message: subject contains a line break/,
    );
    expect((await message(badTo)).smtp_response).toMatch(/could not build the message: to/);
    expect(await message(unrendered)).toMatchObject({ status: 'queued', attempts: 0 });
    const outbox = await deps.db
      .selectFrom('outbox')
      .select('message_id')
      .where('org_id', '=', org.orgId)
      .execute();
    expect(outbox).toEqual([]);
    // With a renderer: rendered content is sent; a render error fails the message.
    now += 120_000;
    const render = async (_d: unknown, rows: { id: string }[]) =>
      new Map(
        rows.map((r) => [r.id, { subject: 'Rendered', text: 'rendered text', html: '<p>rendered</p>' }]),
      );
    expect(await deliverDue(deps, { orgId: org.orgId, render })).toMatchObject({ claimed: 1, sent: 1 });
    const stored = await deps.db
      .selectFrom('outbox')
      .select('raw')
      .where('message_id', '=', unrendered)
      .executeTakeFirstOrThrow();
    expect(stored.raw.toString()).toContain('Subject: Rendered');
    const broken = await queue(org, { html: null, text: null });
    const fail = async (_d: unknown, rows: { id: string }[]) =>
      new Map(rows.map((r) => [r.id, new Error('unknown field lead.nope')]));
    await deliverDue(deps, { orgId: org.orgId, render: fail });
    expect(await message(broken)).toMatchObject({
      status: 'failed',
      smtp_response: 'could not render: unknown field lead.nope',
    });
  });
});

describe('many workers at once', () => {
  it('concurrent deliverDue calls split the queue: every message sent exactly once', async () => {
    const server = await startCaptureServer();
    const org = await newOrg({ port: server.port, maxConnections: 8, maxPerSecond: 100_000 });
    const key = await dnsFor(org, 'rsa-sha256', 'many'); // batches of 40 are signed in the thread pool
    const ids = new Set<string>();
    for (let i = 0; i < 300; i++) ids.add(await queue(org, { to: `w${i}@many.test` }));
    const worker = async () => {
      let sent = 0;
      for (;;) {
        const c = await deliverDue(deps, { orgId: org.orgId, limit: 40 });
        sent += c.sent;
        if (c.claimed === 0) return sent;
      }
    };
    const perWorker = await Promise.all([worker(), worker(), worker(), worker()]);
    expect(perWorker.reduce((a, b) => a + b, 0)).toBe(300);
    expect(perWorker.filter((n) => n > 0).length).toBeGreaterThan(1);
    const delivered = server.messages.map((m) => parseVerp(m.mailFrom, deps.config.secret as string));
    expect(delivered).toHaveLength(300);
    expect(new Set(delivered)).toEqual(ids);
    const statuses = await deps.db
      .selectFrom('messages')
      .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
      .where('org_id', '=', org.orgId)
      .groupBy('status')
      .execute();
    expect(statuses).toEqual([{ status: 'sent', n: 300 }]);
    for (const m of [server.messages[0], server.messages[150], server.messages[299]]) {
      const v = await dkimVerify(m.raw, { resolver: resolverFor([key]) });
      expect(v.results[0].status.result).toBe('pass');
    }
    await server.stop();
  });
});

describe('crash recovery and the worker', () => {
  it('a message stuck in sending becomes unknown; a late real outcome still lands', async () => {
    let letGo: () => void = () => {};
    const held = new Promise<void>((r) => (letGo = r));
    let arrived: () => void = () => {};
    const arrival = new Promise<void>((r) => (arrived = r));
    const server = await startCaptureServer({
      async onMessage() {
        arrived();
        await held;
      },
    });
    const org = await newOrg({ port: server.port });
    const id = await queue(org);
    const run = deliverDue(deps, { orgId: org.orgId });
    await arrival;
    expect((await message(id)).status).toBe('sending');
    now += STUCK_AFTER_MS + 1000;
    expect(await recoverStuck(deps)).toBeGreaterThanOrEqual(1);
    const stuck = await message(id);
    expect(stuck.status).toBe('unknown');
    expect(stuck.smtp_response).toMatch(/may or may not have been delivered/);
    letGo();
    expect((await run).sent).toBe(1);
    expect(await message(id)).toMatchObject({ status: 'sent', smtp_code: 250 });
    await server.stop();
  });

  it('the worker delivers as soon as it is woken by NOTIFY', async () => {
    const server = await startCaptureServer();
    const org = await newOrg({ port: server.port });
    const worker = startDeliveryWorker(deps, {
      connectionString: inject('dbUrl'),
      pollMs: 60_000,
      orgId: org.orgId,
      loops: 2,
    });
    try {
      await new Promise((r) => setTimeout(r, 500)); // LISTEN set up, the first pass found nothing
      const id = await queue(org);
      const t = performance.now();
      await wakeDelivery(deps);
      await server.waitFor(1, 5000);
      expect(performance.now() - t).toBeLessThan(3000);
      await expect.poll(async () => (await message(id)).status, { timeout: 3000 }).toBe('sent');
    } finally {
      await worker.stop();
      await server.stop();
    }
  });
});

describe('send test email', () => {
  it('reports the reply of a working relay and the error of a failing one', async () => {
    const server = await startCaptureServer();
    const org = await newOrg();
    const c = await login(app, org.adminEmail, org.adminPassword);
    expect(
      (await c.req('POST', '/api/admin/smtp-relay/test', { to: 'me@remote.test' })).body.error.message,
    ).toMatch(/No SMTP relay/);
    await c.req('PUT', '/api/admin/smtp-relay', { host: '127.0.0.1', port: server.port, security: 'none' });
    const ok = await c.req('POST', '/api/admin/smtp-relay/test', { to: 'me@remote.test' });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ ok: true, status: 'sent', code: 250 });
    const got: Captured = (await server.waitFor(1))[0];
    expect(got.rcptTo).toEqual(['me@remote.test']);
    expect((await simpleParser(got.raw)).subject).toBe('Parley test email');
    expect(await message(ok.body.messageId)).toMatchObject({ kind: 'test', status: 'sent', smtp_code: 250 });

    const sink = await startSmtpSink(['-f', 'RCPT', '-B', '550 5.1.1 mailbox unavailable']);
    await c.req('PUT', '/api/admin/smtp-relay', { host: '127.0.0.1', port: sink.port, security: 'none' });
    const no = await c.req('POST', '/api/admin/smtp-relay/test', { to: 'me@remote.test' });
    expect(no.body).toMatchObject({
      ok: false,
      status: 'failed',
      code: 550,
      error: { code: 'EENVELOPE', command: 'RCPT TO' },
    });
    expect(no.body.response).toMatch(/mailbox unavailable/);
    const port = await freePort();
    await c.req('PUT', '/api/admin/smtp-relay', { host: '127.0.0.1', port, security: 'none' });
    const down = await c.req('POST', '/api/admin/smtp-relay/test', { to: 'me@remote.test' });
    expect(down.body).toMatchObject({ ok: false, status: 'failed', code: null });
    expect(down.body.response).toMatch(/ECONNREFUSED/);
    expect((await c.req('POST', '/api/admin/smtp-relay/test', { to: 'not an address' })).status).toBe(400);
    await sink.stop();
    await server.stop();
  });
});
