import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import PgBoss from 'pg-boss';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Clock } from '../src/deps.ts';
import { buildApp } from '../src/http/app.ts';
import { PIXEL_GIF } from '../src/http/routes/tracking.routes.ts';
import { PURGE_HITS, purgeOldHits, schedulePurgeOldHits } from '../src/tracking/retention.ts';
import { messageTrackingTokens, trackingToken } from '../src/tracking/tokens.ts';
import { type Client, insertTemplate, login, startTestApp, type TestOrg } from './support/app.ts';

// The open pixel and click redirects against the real app and database: what is recorded, how it
// is judged (human or machine), the per-message totals and the events, and that no URL can make
// the click endpoint redirect anywhere but to the message's own link.

let now = Date.now();
const clock: Clock = { now: () => new Date(now) };
let t: Awaited<ReturnType<typeof startTestApp>>;
let org: TestOrg;
let admin: Client;
const BROWSER = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)';
const LINKS = ['https://example.com/pricing?a=1&b=2', 'https://docs.example.org/start'];
const HTML = `<p>Hi, see <a href="${LINKS[0].replace('&', '&amp;')}">pricing</a> and <a href="${LINKS[1]}">docs</a>.</p>`;

beforeAll(async () => {
  t = await startTestApp(clock);
  org = await t.createOrg();
  admin = await login(t.app, org.adminEmail, org.adminPassword);
});
afterAll(async () => {
  await t?.stop();
});

/** A sent message (its own HTML, or a template version's) and its tracking tokens. */
async function sentMessage(
  o: TestOrg = org,
  opts: { html?: string | null; templateId?: string; sentAgoMs?: number } = {},
) {
  const html = opts.html === undefined ? HTML : opts.html;
  const m = await t.deps.db
    .insertInto('messages')
    .values({
      org_id: o.orgId,
      kind: opts.templateId ? 'mass' : 'individual',
      sender_id: o.adminId,
      from_address: o.adminEmail,
      to_address: 'lead@remote.test',
      subject: 'Hello',
      html,
      text: 'Hello',
      template_id: opts.templateId ?? null,
      template_version: opts.templateId ? 1 : null,
      message_id_header: `<${randomUUID()}@test.example>`,
      transport: 'outbox',
      status: 'sent',
      tracked: true,
      sent_at: new Date(now - (opts.sentAgoMs ?? 3_600_000)),
      expires_at: new Date(now + 86_400_000),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const tokens = messageTrackingTokens(t.deps.config.secret as string, m.id, LINKS.length + 1);
  return { id: m.id, ...tokens, trap: tokens.clicks[LINKS.length] };
}

interface Answer {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  raw: Buffer;
}
/** Over HTTP: the tracking endpoints are answered in front of Fastify, where app.inject does not go. */
async function get(
  base: string,
  path: string,
  headers: Record<string, string>,
  method = 'GET',
): Promise<Answer> {
  const r = await fetch(base + path, { method, headers, redirect: 'manual' });
  const raw = Buffer.from(await r.arrayBuffer());
  return { statusCode: r.status, headers: Object.fromEntries(r.headers), body: raw.toString(), raw };
}
const pixel = (token: string, headers: Record<string, string> = { 'user-agent': BROWSER }, method = 'GET') =>
  get(t.url, `/t/o/${token}.gif`, headers, method);
const click = (
  token: string,
  headers: Record<string, string> = { 'user-agent': BROWSER },
  opts: { method?: string; query?: string } = {},
) => get(t.url, `/t/c/${token}${opts.query ?? ''}`, headers, opts.method);

/** Writes buffered hits, then (the burst window passed) judges waiting clicks. */
async function settle() {
  await t.app.hitRecorder.flush();
  now += 60_000;
  // both apps judge waiting clicks (each skips those the other has in hand)
  await t.app.hitRecorder.flush();
  await proxied.app.hitRecorder.flush();
  // Apps of other test files share the database and judge waiting clicks too (as the servers of
  // one deployment do): wait until none of ours waits in their hands.
  for (let i = 0; i < 100; i++) {
    const waiting = await sql<{ n: number }>`SELECT count(*)::int AS n FROM tracking_hits
      WHERE verdict IS NULL AND org_id = ${org.orgId}`.execute(t.deps.db);
    if (waiting.rows[0].n === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

// A second app that trusts 127.0.0.1 as its reverse proxy (PARLEY_TRUST_PROXY), so a test can
// send hits "from" any address in X-Forwarded-For.
let proxied: { url: string; app: FastifyInstance };
beforeAll(async () => {
  const app = await buildApp({ ...t.deps, config: { ...t.deps.config, trustProxy: '127.0.0.1' } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address();
  proxied = { app, url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}` };
});
afterAll(async () => {
  await proxied?.app.close();
});
const from = (ip: string, headers: Record<string, string> = { 'user-agent': BROWSER }) => ({
  ...headers,
  'x-forwarded-for': ip,
});

const hitsOf = async (messageId: string) =>
  (
    await sql<{
      kind: string;
      link: number | null;
      method: string;
      ip: string;
      verdict: string;
      reason: string;
    }>`
      SELECT kind, link, method, ip, verdict, reason FROM tracking_hits WHERE message_id = ${messageId} ORDER BY id`.execute(
      t.deps.db,
    )
  ).rows;
const totalsOf = (id: string) =>
  t.deps.db
    .selectFrom('messages')
    .select([
      'open_count',
      'machine_open_count',
      'click_count',
      'machine_click_count',
      'opened_at',
      'last_opened_at',
      'clicked_at',
      'last_clicked_at',
    ])
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
// Human events (what triggers and webhooks act on); machineEventsOf: the first machine open/click.
const eventsOf = async (id: string, human = true) =>
  (
    await sql<{ kind: string; human: boolean; data: Record<string, unknown> }>`
      SELECT kind, human, data FROM email_events WHERE message_id = ${id} AND human = ${human} ORDER BY id`.execute(
      t.deps.db,
    )
  ).rows;
const machineEventsOf = (id: string) => eventsOf(id, false);

describe('open pixel', () => {
  it('answers a no-store 1×1 GIF and records a human open with its event', async () => {
    const m = await sentMessage();
    const r = await pixel(m.open, { 'user-agent': BROWSER, via: '1.1 proxy.example' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('image/gif');
    expect(r.headers['cache-control']).toContain('no-store');
    expect(r.raw.equals(PIXEL_GIF)).toBe(true);
    await t.app.hitRecorder.flush();
    const [h] = await hitsOf(m.id);
    expect(h).toMatchObject({
      kind: 'open',
      method: 'GET',
      ip: '127.0.0.1',
      verdict: 'human',
      reason: 'human',
    });
    const stored = await t.deps.db
      .selectFrom('tracking_hits')
      .select(['user_agent', 'headers', 'org_id'])
      .where('message_id', '=', m.id)
      .executeTakeFirstOrThrow();
    expect(stored).toMatchObject({
      user_agent: BROWSER,
      headers: { via: '1.1 proxy.example' },
      org_id: org.orgId,
    });
    const tot = await totalsOf(m.id);
    expect(tot).toMatchObject({ open_count: 1, machine_open_count: 0, click_count: 0 });
    expect(tot.opened_at?.getTime()).toBe(now);
    expect(await eventsOf(m.id)).toEqual([{ kind: 'opened', human: true, data: {} }]);
  });

  it('HEAD, prefetch and Apple Mail Privacy Protection are machine opens, with no event', async () => {
    const m = await sentMessage();
    expect((await pixel(m.open, { 'user-agent': BROWSER }, 'HEAD')).statusCode).toBe(200);
    await pixel(m.open, { 'user-agent': BROWSER, 'sec-purpose': 'prefetch;prerender' });
    await get(proxied.url, `/t/o/${m.open}.gif`, from('17.58.101.7', { 'user-agent': 'Mozilla/5.0' }));
    await t.app.hitRecorder.flush();
    await proxied.app.hitRecorder.flush();
    expect((await hitsOf(m.id)).map((h) => [h.method, h.verdict, h.reason])).toEqual([
      ['HEAD', 'machine', 'head_request'],
      ['GET', 'machine', 'prefetch'],
      ['GET', 'machine', 'apple_mpp'],
    ]);
    expect(await totalsOf(m.id)).toMatchObject({ open_count: 0, machine_open_count: 3, opened_at: null });
    expect(await eventsOf(m.id)).toEqual([]);
    expect(await machineEventsOf(m.id)).toEqual([{ kind: 'opened', human: false, data: {} }]);
  });

  it('a forged, altered or other-kind token gets the GIF but records nothing', async () => {
    const m = await sentMessage();
    const flipped = m.open.slice(0, 30) + (m.open[30] === 'A' ? 'B' : 'A') + m.open.slice(31);
    const otherSecret = trackingToken('another-secret-0123456789-0123456789', m.id, 'open');
    for (const tok of [flipped, otherSecret, m.clicks[0], m.unsubscribe, 'x'.repeat(40), '..%2F..%2Fetc']) {
      const r = await pixel(tok);
      expect(r.statusCode).toBe(200);
      expect(r.headers['content-type']).toBe('image/gif');
    }
    // a valid token of a message that does not exist
    await pixel(trackingToken(t.deps.config.secret as string, randomUUID(), 'open'));
    await t.app.hitRecorder.flush();
    expect(await hitsOf(m.id)).toEqual([]);
    expect(await totalsOf(m.id)).toMatchObject({ open_count: 0, machine_open_count: 0 });
  });
});

describe('click redirect', () => {
  it("302s to the message's own link, records the click and an open, and one event each", async () => {
    const m = await sentMessage();
    const r = await click(m.clicks[0]);
    expect(r.statusCode).toBe(302);
    expect(r.headers.location).toBe(LINKS[0]);
    expect(r.headers['cache-control']).toContain('no-store');
    expect(r.headers['referrer-policy']).toBe('no-referrer');
    await t.app.hitRecorder.flush();
    // judged only once its burst window closed
    expect((await hitsOf(m.id)).map((h) => h.verdict)).toEqual([null]);
    expect(await eventsOf(m.id)).toEqual([]);
    now += 60_000; // a second click a minute later
    expect((await click(m.clicks[1])).headers.location).toBe(LINKS[1]);
    await settle();
    expect((await hitsOf(m.id)).map((h) => [h.kind, h.link, h.verdict])).toEqual([
      ['click', 0, 'human'],
      ['click', 1, 'human'],
    ]);
    const tot = await totalsOf(m.id);
    expect(tot).toMatchObject({
      click_count: 2,
      open_count: 2,
      machine_click_count: 0,
      machine_open_count: 0,
    });
    expect(tot.clicked_at && tot.last_clicked_at && tot.last_clicked_at > tot.clicked_at).toBe(true);
    expect(tot.opened_at?.getTime()).toBe(tot.clicked_at?.getTime());
    expect(await eventsOf(m.id)).toEqual([
      { kind: 'opened', human: true, data: {} },
      { kind: 'clicked', human: true, data: { link: 0, url: LINKS[0] } },
    ]);
  });

  it('looks the target up from the template version when the message has no HTML of its own', async () => {
    const tpl = await insertTemplate(t.deps, org.orgId, 'leads', {
      subject: 'S',
      html: '<a href="https://tpl.example/one">one</a> <a href="https://tpl.example/{{ lead.id }}">merged</a>',
      text: 'x',
    });
    const m = await sentMessage(org, { html: null, templateId: tpl });
    expect((await click(m.clicks[0])).headers.location).toBe('https://tpl.example/one');
    // the merged link is not tracked, so index 1 is the trap link here
    const trap = await click(m.clicks[1]);
    expect(trap.statusCode).toBe(200);
    expect(trap.headers.location).toBeUndefined();
    expect((await click(m.clicks[2])).statusCode).toBe(404);
  });

  it('no token, query or path can make it redirect anywhere else', async () => {
    const m = await sentMessage();
    for (const q of ['?url=https://evil.example', '?to=//evil.example&u=https%3A%2F%2Fevil.example']) {
      const r = await click(m.clicks[1], undefined, { query: q });
      expect(r.headers.location).toBe(LINKS[1]);
    }
    for (const bad of [
      'https:%2F%2Fevil.example',
      encodeURIComponent('https://evil.example/x'),
      '%2F%2Fevil.example',
      `${m.clicks[0]}x`,
      m.clicks[0].slice(0, 39),
      m.clicks[0].slice(0, 30) + (m.clicks[0][30] === 'A' ? 'B' : 'A') + m.clicks[0].slice(31),
      m.open,
      m.unsubscribe,
      trackingToken('another-secret-0123456789-0123456789', m.id, 'click', 0),
    ]) {
      const r = await click(bad);
      expect(r.statusCode, bad).toBe(404);
      expect(r.headers.location).toBeUndefined();
    }
    // a token of a link index the message does not have, and of a message that does not exist
    const secret = t.deps.config.secret as string;
    expect((await click(trackingToken(secret, m.id, 'click', LINKS.length + 1))).statusCode).toBe(404);
    expect((await click(trackingToken(secret, randomUUID(), 'click', 0))).statusCode).toBe(404);
    await settle();
    // only the two good clicks count
    expect((await hitsOf(m.id)).length).toBe(2);
  });

  it('a deleted message answers 404', async () => {
    const m = await sentMessage();
    await t.deps.db.deleteFrom('messages').where('id', '=', m.id).execute();
    expect((await click(m.clicks[0])).statusCode).toBe(404);
  });

  it('the trap link answers a page, no redirect, and is a machine click', async () => {
    const m = await sentMessage();
    const r = await click(m.trap);
    expect(r.statusCode).toBe(200);
    expect(r.headers.location).toBeUndefined();
    expect(r.body).toContain('Nothing here');
    await t.app.hitRecorder.flush();
    expect(await hitsOf(m.id)).toMatchObject([
      { kind: 'click', link: LINKS.length, verdict: 'machine', reason: 'trap_link' },
    ]);
    expect(await totalsOf(m.id)).toMatchObject({
      click_count: 0,
      machine_click_count: 1,
      machine_open_count: 1,
    });
  });

  it('a scanner clicking every link within seconds is a machine, even across flushes, and fires no event', async () => {
    const m = await sentMessage();
    await click(m.clicks[0]);
    await t.app.hitRecorder.flush();
    now += 1_500;
    await click(m.clicks[1]);
    await settle();
    expect((await hitsOf(m.id)).map((h) => h.reason)).toEqual(['all_links_at_once', 'all_links_at_once']);
    expect(await totalsOf(m.id)).toMatchObject({ click_count: 0, machine_click_count: 2, open_count: 0 });
    expect(await eventsOf(m.id)).toEqual([]);
    expect((await machineEventsOf(m.id)).map((e) => e.kind)).toEqual(['opened', 'clicked']);
  });

  it('HEAD, a click seconds after delivery, and a scanner agent are machine clicks', async () => {
    const m = await sentMessage(org, { sentAgoMs: 2_000 });
    await click(m.clicks[0], { 'user-agent': BROWSER }); // 2 s after the send
    now += 120_000;
    await click(m.clicks[0], { 'user-agent': BROWSER }, { method: 'HEAD' });
    now += 60_000;
    await click(m.clicks[1], { 'user-agent': 'Mozilla/5.0 (compatible; Barracuda Sentinel)' });
    await settle();
    expect((await hitsOf(m.id)).map((h) => h.reason)).toEqual([
      'click_too_soon',
      'head_request',
      'scanner_agent:barracuda',
    ]);
    expect(await eventsOf(m.id)).toEqual([]);
  });
});

describe('per-message totals and events', () => {
  it('counts people and machines apart, and writes each first event once', async () => {
    const m = await sentMessage();
    await pixel(m.open); // human
    await pixel(m.open, { 'user-agent': BROWSER }, 'HEAD'); // machine
    await t.app.hitRecorder.flush();
    now += 30_000;
    await pixel(m.open, { 'user-agent': 'Mozilla/5.0 (via ggpht.com GoogleImageProxy)' }); // a person via Gmail
    await click(m.clicks[1]);
    await settle();
    now += 600_000;
    await click(m.clicks[0]);
    await pixel(m.open);
    await settle();
    const tot = await totalsOf(m.id);
    // 3 human opens + 2 human clicks (each also an open) and 1 machine open
    expect(tot).toMatchObject({
      open_count: 5,
      machine_open_count: 1,
      click_count: 2,
      machine_click_count: 0,
    });
    const events = await eventsOf(m.id);
    expect(events.map((e) => e.kind)).toEqual(['opened', 'clicked']);
    expect(events[1].data).toEqual({ link: 1, url: LINKS[1] });
    const h = await hitsOf(m.id);
    expect(h.find((x) => x.reason === 'image_proxy:gmail')?.verdict).toBe('human');
  });
});

describe('the Insights switch', () => {
  it('off: nothing recorded, the link still works; only admins switch it', async () => {
    const o = await t.createOrg();
    const a = await login(t.app, o.adminEmail, o.adminPassword);
    expect((await a.req('GET', '/api/admin/insights')).body).toEqual({ enabled: true });
    expect((await a.req('PUT', '/api/admin/insights', { enabled: 'no' })).status).toBe(400);
    expect((await a.req('PUT', '/api/admin/insights', { enabled: false })).body).toEqual({ enabled: false });
    const m = await sentMessage(o);
    await pixel(m.open);
    expect((await click(m.clicks[0])).headers.location).toBe(LINKS[0]);
    await settle();
    expect(await hitsOf(m.id)).toEqual([]);
    expect(await totalsOf(m.id)).toMatchObject({ open_count: 0, machine_open_count: 0, click_count: 0 });
    expect(await eventsOf(m.id)).toEqual([]);
    // the other org is untouched
    expect((await admin.req('GET', '/api/admin/insights')).body).toEqual({ enabled: true });
    await a.req('PUT', '/api/admin/insights', { enabled: true });
    await pixel(m.open);
    await t.app.hitRecorder.flush();
    expect((await hitsOf(m.id)).length).toBe(1);
  });

  it('a non-admin cannot read or change it; no session, no access', async () => {
    const r = await admin.req('POST', '/api/users', {
      email: `std-${randomUUID().slice(0, 8)}@test.example`,
      name: 'Std',
      profileId: org.standardProfileId,
    });
    expect(r.status).toBe(201);
    const token = new URL(r.body.inviteUrl).searchParams.get('token');
    const acc = await t.app.inject({
      method: 'POST',
      url: '/api/auth/accept-invite',
      payload: { token, password: 'standard-user-pw-123' },
    });
    expect(acc.statusCode).toBeLessThan(300);
    const std = await login(t.app, r.body.user.email, 'standard-user-pw-123');
    expect((await std.req('GET', '/api/admin/insights')).status).toBe(403);
    expect((await std.req('PUT', '/api/admin/insights', { enabled: false })).status).toBe(403);
    expect((await t.app.inject({ method: 'GET', url: '/api/admin/insights' })).statusCode).toBe(401);
    expect((await admin.req('GET', '/api/admin/insights')).body).toEqual({ enabled: true });
  });
});

describe('behind a reverse proxy', () => {
  it('X-Forwarded-For counts only when PARLEY_TRUST_PROXY names the proxy', async () => {
    const m1 = await sentMessage();
    const m2 = await sentMessage();
    await get(proxied.url, `/t/o/${m1.open}.gif`, from('17.58.101.7'));
    await pixel(m2.open, from('17.58.101.7')); // the test app trusts no proxy
    await proxied.app.hitRecorder.flush();
    await t.app.hitRecorder.flush();
    expect(await hitsOf(m1.id)).toMatchObject([
      { ip: '17.58.101.7', verdict: 'machine', reason: 'apple_mpp' },
    ]);
    expect(await hitsOf(m2.id)).toMatchObject([{ ip: '127.0.0.1', verdict: 'human' }]);
  });
});

describe('retention', () => {
  it('a daily job deletes raw hits older than 100 days; the per-message totals stay', async () => {
    const m = await sentMessage();
    await pixel(m.open);
    await t.app.hitRecorder.flush();
    const day = 86_400_000;
    const backdate = (ms: number) =>
      sql`INSERT INTO tracking_hits (org_id, message_id, at, kind, ip, method, verdict, reason)
          VALUES (${org.orgId}, ${m.id}, ${new Date(now - ms).toISOString()}::timestamptz, 'open', '192.0.2.1', 'GET', 'human', 'human')`.execute(
        t.deps.db,
      );
    await backdate(101 * day);
    await backdate(100 * day + 60_000);
    await backdate(99 * day);
    expect((await hitsOf(m.id)).length).toBe(4);
    // the recorder's slice ids go after a day
    const [spent, recent] = [randomUUID(), randomUUID()];
    await t.deps.db
      .insertInto('tracking_batches')
      .values([
        { id: spent, written_at: new Date(now - 2 * day) },
        { id: recent, written_at: new Date(now - 3_600_000) },
      ])
      .execute();
    // through the scheduled job, in a pg-boss schema of this test's own
    const boss = new PgBoss({ connectionString: inject('dbUrl'), schema: 'pgboss_tracking_test', max: 2 });
    await boss.start();
    try {
      await schedulePurgeOldHits(boss, t.deps);
      expect((await boss.getSchedules()).map((s) => s.name)).toContain(PURGE_HITS);
      const id = (await boss.send(PURGE_HITS, {})) as string;
      for (let i = 0; i < 300; i++) {
        const job = await boss.getJobById(PURGE_HITS, id);
        if (job?.state === 'completed' || job?.state === 'failed') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect((await boss.getJobById(PURGE_HITS, id))?.state).toBe('completed');
    } finally {
      await boss.stop({ graceful: false, wait: true });
    }
    expect((await hitsOf(m.id)).length).toBe(2);
    expect(await totalsOf(m.id)).toMatchObject({ open_count: 1 });
    const batches = await t.deps.db
      .selectFrom('tracking_batches')
      .select('id')
      .where('id', 'in', [spent, recent])
      .execute();
    expect(batches.map((b) => b.id)).toEqual([recent]);
    expect(await purgeOldHits(t.deps)).toBe(0);
  });
});
