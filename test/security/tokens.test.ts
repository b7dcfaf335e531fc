import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verpReturnPath } from '../../src/sending/verp.ts';
import { type BounceListener, startBounceListener } from '../../src/tracking/bounces/inbound.ts';
import { messageTrackingTokens, trackingToken } from '../../src/tracking/tokens.ts';
import { type Client, login, queueMessage, startTestApp, type TestOrg } from '../support/app.ts';
import { dsn, smtpSend } from '../support/bounce-mail.ts';

// Links in sent mail carry the only authority their endpoints accept: signed tokens. Forged,
// altered, guessed, swapped or foreign-secret tokens record nothing, change nothing and redirect
// nowhere; a valid click token redirects only to its message's own http(s) link, whatever the URL.
let t: Awaited<ReturnType<typeof startTestApp>>;
let org: TestOrg;
let admin: Client;
let listener: BounceListener;
let secret: string;
const OTHER_SECRET = 'another-secret-0123456789-0123456789-xyz';
const DOMAIN = 'bounces.parley.test';
const GOOD = 'https://good.example/pricing';
// Link 0 is fine; the rest must never become a redirect.
const LINKS = [
  GOOD,
  'javascript:alert(document.cookie)',
  'data:text/html,<script>alert(1)</script>',
  '//evil.example/x',
];
const HTML = `<p>${LINKS.map((l, i) => `<a href="${l.replaceAll('&', '&amp;').replaceAll('<', '&lt;')}">link ${i}</a>`).join(' ')}</p>`;

beforeAll(async () => {
  t = await startTestApp();
  secret = t.deps.config.secret as string;
  org = await t.createOrg();
  admin = await login(t.app, org.adminEmail, org.adminPassword);
  listener = await startBounceListener(t.deps, { port: 0, host: '127.0.0.1', maxBytes: 64 * 1024 });
});
afterAll(async () => {
  await listener?.close();
  await t?.stop();
});

async function sentMessage(to = `lead-${randomBytes(4).toString('hex')}@remote.example`) {
  const id = await queueMessage(t.deps, org, {
    to_address: to,
    subject: 'Hello',
    html: HTML,
    text: 'Hello',
    transport: 'relay',
    status: 'sent',
    tracked: true,
    sent_at: new Date(Date.now() - 3_600_000),
    expires_at: new Date(Date.now() + 86_400_000),
  });
  return { id, to };
}

const get = async (path: string, method = 'GET') => {
  const r = await fetch(t.url + path, {
    method,
    redirect: 'manual',
    headers: {
      'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36',
    },
  });
  return { status: r.status, location: r.headers.get('location'), body: await r.text() };
};
const hits = async (messageId: string) => {
  await t.app.hitRecorder.flush();
  return (
    await t.deps.db.selectFrom('tracking_hits').select(['kind']).where('message_id', '=', messageId).execute()
  ).length;
};
/** The token with one bit of its tag flipped, and its kind byte changed. */
function altered(token: string): string[] {
  const b = Buffer.from(token, 'base64url');
  const tag = Buffer.from(b);
  tag[b.length - 1] ^= 1;
  const kind = Buffer.from(b);
  kind[0] = kind[0] === 2 ? 1 : 2;
  const index = Buffer.from(b);
  index.writeUInt16BE(index.readUInt16BE(17) + 1, 17);
  return [tag, kind, index].map((x) => x.toString('base64url'));
}

describe('open redirect through click URLs', () => {
  it("redirects only to the message's own http(s) link, whatever is added to the URL", async () => {
    const m = await sentMessage();
    const tokens = messageTrackingTokens(secret, m.id, LINKS.length + 1);
    const good = await get(`/t/c/${tokens.clicks[0]}`);
    expect(good).toMatchObject({ status: 302, location: GOOD });
    for (const extra of [
      '?url=https://evil.example/',
      '?redirect=https%3A%2F%2Fevil.example',
      '/https://evil.example',
      '/../../https://evil.example',
      '%2F%2Fevil.example',
      '#https://evil.example',
    ]) {
      const r = await get(`/t/c/${tokens.clicks[0]}${extra}`);
      expect([r.status, r.location ?? GOOD], extra).toEqual([r.status, GOOD]);
    }
    // javascript:, data: and scheme-relative links are never tracked nor handed out as a Location:
    // whatever index a valid token names, the only Location ever given is the good link.
    for (let i = 1; i <= LINKS.length; i++) {
      const r = await get(`/t/c/${tokens.clicks[i]}`);
      expect(r.location, `link ${i}`).toBeNull();
    }
    // Forged click tokens, and made-up ones, redirect nowhere.
    for (const forged of [
      ...altered(tokens.clicks[0]),
      trackingToken(OTHER_SECRET, m.id, 'click', 0),
      tokens.open,
      tokens.unsubscribe,
      randomBytes(30).toString('base64url'),
    ]) {
      const r = await get(`/t/c/${forged}`);
      expect({ status: r.status, location: r.location }).toEqual({ status: 404, location: null });
    }
  });
});

describe('forged or guessed tokens', () => {
  it('tracking: an altered, swapped, foreign or random token records no open and no click', async () => {
    const m = await sentMessage();
    const tokens = messageTrackingTokens(secret, m.id, 1);
    const forgedOpens = [
      ...altered(tokens.open),
      trackingToken(OTHER_SECRET, m.id, 'open'),
      tokens.unsubscribe, // an unsubscribe token is no pixel
      tokens.clicks[0],
      randomBytes(30).toString('base64url'),
      `${tokens.open.slice(0, -1)}`,
    ];
    for (const f of forgedOpens) expect((await get(`/t/o/${f}.gif`)).status).toBe(200); // still an image
    for (const f of [...altered(tokens.clicks[0]), trackingToken(OTHER_SECRET, m.id, 'click', 0)])
      expect((await get(`/t/c/${f}`)).status).toBe(404);
    expect(await hits(m.id)).toBe(0);
    // The genuine token is counted: the zero above is the forgery's refusal.
    await get(`/t/o/${tokens.open}.gif`);
    expect(await hits(m.id)).toBe(1);
  });

  it('unsubscribe: only the message’s own unsubscribe token unsubscribes', async () => {
    const m = await sentMessage();
    const tokens = messageTrackingTokens(secret, m.id, 1);
    const suppressed = () =>
      t.deps.db
        .selectFrom('suppressions')
        .select('email')
        .where('org_id', '=', org.orgId)
        .where('email', '=', m.to)
        .executeTakeFirst();
    for (const f of [
      ...altered(tokens.unsubscribe),
      tokens.open, // seen by every image proxy: must not unsubscribe
      tokens.clicks[0],
      trackingToken(OTHER_SECRET, m.id, 'unsubscribe'),
      trackingToken(secret, randomUUID(), 'unsubscribe'), // a guessed message id
      randomBytes(30).toString('base64url'),
    ]) {
      expect((await get(`/u/${f}`)).status).toBe(404);
      expect((await get(`/u/${f}`, 'POST')).status).toBe(404);
    }
    expect(await suppressed()).toBeUndefined();
    expect((await get(`/u/${tokens.unsubscribe}`, 'POST')).status).toBe(200);
    expect(await suppressed()).toEqual({ email: m.to });
  });

  it('VERP: a bounce to an altered, foreign-secret or guessed return path is refused and records nothing', async () => {
    const m = await sentMessage();
    const verp = verpReturnPath(m.id, DOMAIN, secret);
    const [local, domain] = verp.split('@');
    const forged = [
      `${local.slice(0, -1)}${local.at(-1) === 'a' ? 'b' : 'a'}@${domain}`,
      verpReturnPath(m.id, DOMAIN, OTHER_SECRET),
      verpReturnPath(randomUUID(), DOMAIN, OTHER_SECRET),
      `b-${m.id.replaceAll('-', '')}-${'a'.repeat(local.length - 35)}@${domain}`,
    ];
    const r = await smtpSend(
      listener.port,
      '',
      forged,
      dsn({
        to: forged[0],
        recipient: m.to,
        status: '5.1.1',
        diagnostic: 'user unknown',
        messageId: '<x@y>',
      }),
    );
    expect(r.rcpt).toEqual(forged.map(() => 550));
    const row = await t.deps.db
      .selectFrom('messages')
      .select(['bounce_kind'])
      .where('id', '=', m.id)
      .executeTakeFirstOrThrow();
    expect(row.bounce_kind).toBeNull();
    const ok = await smtpSend(
      listener.port,
      '',
      [verp],
      dsn({ to: verp, recipient: m.to, status: '5.1.1', diagnostic: 'user unknown', messageId: '<x@y>' }),
    );
    expect(ok.rcpt).toEqual([250]);
  });

  it('bounce webhooks: a wrong or guessed URL token records nothing', async () => {
    const hook = await admin.req('PUT', '/api/bounce-webhooks/postmark', {
      username: 'pm',
      password: 'pm-password-0123456789',
    });
    expect(hook.status).toBe(200);
    const real = new URL(hook.body.url).pathname;
    const m = await sentMessage();
    const body = JSON.stringify({
      RecordType: 'Bounce',
      Type: 'HardBounce',
      Email: m.to,
      BouncedAt: new Date().toISOString(),
      Description: 'gone',
    });
    const auth = `Basic ${Buffer.from('pm:pm-password-0123456789').toString('base64')}`;
    for (const path of [
      real.replace(/.$/, (c) => (c === 'a' ? 'b' : 'a')),
      `/hooks/bounces/postmark/${randomBytes(24).toString('base64url')}`,
      real.replace('/postmark/', '/mailgun/'),
    ]) {
      const r = await fetch(t.url + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: auth },
        body,
      });
      expect(r.status, path).toBe(404);
    }
    // The right URL with the wrong credentials is refused too.
    const wrong = await fetch(t.url + real, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Basic ${Buffer.from('pm:nope').toString('base64')}`,
      },
      body,
    });
    expect(wrong.status).toBeGreaterThanOrEqual(400);
    const row = await t.deps.db
      .selectFrom('messages')
      .select(['bounce_kind'])
      .where('id', '=', m.id)
      .executeTakeFirstOrThrow();
    expect(row.bounce_kind).toBeNull();
  });

  it('address confirmations: a guessed token confirms nothing', async () => {
    const add = await admin.req('POST', '/api/admin/org-addresses', {
      email: `sales-${randomBytes(3).toString('hex')}@x.example`,
    });
    expect(add.status).toBe(201);
    for (const token of [randomBytes(32).toString('base64url'), '', "' OR 1=1 --"]) {
      const r = await fetch(`${t.url}/org-addresses/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token }).toString(),
      });
      expect(r.status).toBeLessThan(500);
    }
    const row = await t.deps.db
      .selectFrom('org_addresses')
      .select('verified_at')
      .where('id', '=', add.body.id)
      .executeTakeFirstOrThrow();
    expect(row.verified_at).toBeNull();
  });
});
