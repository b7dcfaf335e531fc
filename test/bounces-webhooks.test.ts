// Provider webhooks for bounces and complaints, with real signatures made in the test: Amazon SES
// via SNS (a test CA and signing certificate made with openssl; the certificate fetch is the one
// thing mocked), SendGrid (ECDSA P-256), Mailgun (HMAC), Postmark (basic auth). Tampered or
// misdirected calls are refused and change nothing. Also the admin API for suppressions, alerts
// and webhook settings: admins only, one org only.
import { execFileSync } from 'node:child_process';
import { createHmac, createSign, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snsHttp, snsStringToSign } from '../src/tracking/bounces/providers/ses.ts';
import { type Client, login, startTestApp, type TestOrg } from './support/app.ts';

let t: Awaited<ReturnType<typeof startTestApp>>;
let org: TestOrg;
let admin: Client;
const DOMAIN = 'bounces.parley.test';
const tag = () => randomBytes(4).toString('hex');

// An SNS-like signing certificate issued by a test CA.
const pki = mkdtempSync(join(tmpdir(), 'parley-sns-'));
const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:ses-bounces';
const CERT_URL = 'https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem';
let snsKey: string;
let snsCert: string;
const fetched: string[] = [];

beforeAll(async () => {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: pki, stdio: 'pipe' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '30',
    '-subj',
    '/CN=Test Root CA',
  );
  ssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'sns.key',
    '-out',
    'sns.csr',
    '-subj',
    '/CN=sns.amazonaws.com',
  );
  ssl(
    'x509',
    '-req',
    '-in',
    'sns.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'sns.pem',
    '-days',
    '30',
  );
  snsKey = readFileSync(join(pki, 'sns.key'), 'utf8');
  snsCert = readFileSync(join(pki, 'sns.pem'), 'utf8');
  snsHttp.get = async (url: string) => {
    fetched.push(url);
    if (url === CERT_URL) return snsCert;
    if (url.startsWith('https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription')) return '<ok/>';
    throw new Error(`unexpected fetch ${url}`);
  };
  t = await startTestApp();
  org = await t.createOrg();
  admin = await login(t.app, org.adminEmail, org.adminPassword);
});
afterAll(async () => {
  rmSync(pki, { recursive: true, force: true });
  await t?.stop();
});

async function sent(to: string) {
  const row = await t.deps.db
    .insertInto('messages')
    .values({
      org_id: org.orgId,
      kind: 'individual',
      from_address: org.adminEmail,
      to_address: to,
      subject: 'Hello',
      text: 'Hello',
      message_id_header: `<${tag()}.${tag()}@${DOMAIN}>`,
      transport: 'relay',
      status: 'sent',
      sent_at: new Date(Date.now() - 60_000),
      expires_at: new Date(Date.now() + 86_400_000),
    })
    .returning(['id', 'message_id_header'])
    .executeTakeFirstOrThrow();
  return { id: row.id, header: row.message_id_header };
}
const message = (id: string) =>
  t.deps.db.selectFrom('messages').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const suppressed = async (email: string) =>
  (
    await t.deps.db
      .selectFrom('suppressions')
      .select('reason')
      .where('org_id', '=', org.orgId)
      .where('email', '=', email)
      .executeTakeFirst()
  )?.reason ?? null;

async function hook(url: string, body: string | Buffer, headers: Record<string, string> = {}) {
  const res = await t.app.inject({
    method: 'POST',
    url: new URL(url).pathname,
    payload: body,
    headers: { 'content-type': 'application/json', ...headers },
  });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
}

async function configure(provider: string, settings: Record<string, unknown>) {
  const r = await admin.req('PUT', `/api/bounce-webhooks/${provider}`, settings);
  expect(r.status).toBe(200);
  expect(r.body.url).toMatch(new RegExp(`/hooks/bounces/${provider}/[A-Za-z0-9_-]{32}$`));
  return r.body.url as string;
}

function snsMessage(fields: Record<string, string>, version = '1') {
  const m: Record<string, string> = {
    MessageId: randomBytes(8).toString('hex'),
    TopicArn: TOPIC,
    Timestamp: new Date().toISOString(),
    SignatureVersion: version,
    SigningCertURL: CERT_URL,
    ...fields,
  };
  m.Signature = createSign(version === '2' ? 'RSA-SHA256' : 'RSA-SHA1')
    .update(snsStringToSign(m))
    .sign(snsKey, 'base64');
  return m;
}

describe('Amazon SES via SNS', () => {
  let url: string;
  it('confirms the subscription for a configured topic only', async () => {
    url = await configure('ses', { topicArns: [TOPIC] });
    const sub = snsMessage({
      Type: 'SubscriptionConfirmation',
      Message: 'You have chosen to subscribe',
      Token: 'tok',
      SubscribeURL: 'https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok',
    });
    const r = await hook(url, JSON.stringify(sub), { 'content-type': 'text/plain; charset=UTF-8' });
    expect(r).toMatchObject({ status: 200, body: { subscribed: true } });
    expect(fetched).toContain(sub.SubscribeURL);
    // Another topic, validly signed, is refused and not confirmed.
    const n = fetched.length;
    const other = snsMessage({
      Type: 'SubscriptionConfirmation',
      TopicArn: 'arn:aws:sns:eu-west-1:999999999999:evil',
      Message: 'x',
      Token: 'tok2',
      SubscribeURL: 'https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok2',
    });
    expect((await hook(url, JSON.stringify(other))).status).toBe(403);
    expect(fetched.slice(n)).not.toContain(other.SubscribeURL);
  });

  it('records a signed bounce and complaint by our Message-ID; a tampered one is refused', async () => {
    const to = `ses-${tag()}@remote.example`;
    const m = await sent(to);
    const bounce = {
      notificationType: 'Bounce',
      bounce: {
        bounceType: 'Permanent',
        bounceSubType: 'General',
        timestamp: new Date().toISOString(),
        bouncedRecipients: [
          {
            emailAddress: to,
            status: '5.1.1',
            action: 'failed',
            diagnosticCode: 'smtp; 550 5.1.1 user unknown',
          },
        ],
      },
      mail: {
        source: 'ada@parley.test',
        commonHeaders: { messageId: m.header },
        headers: [{ name: 'Message-ID', value: m.header }],
      },
    };
    const signed = snsMessage({ Type: 'Notification', Message: JSON.stringify(bounce) }, '2');
    const tampered = {
      ...signed,
      Message: JSON.stringify({ ...bounce, bounce: { ...bounce.bounce, bounceType: 'Transient' } }),
    };
    expect((await hook(url, JSON.stringify(tampered))).status).toBe(403);
    expect((await message(m.id)).bounce_kind).toBeNull();
    const r = await hook(url, JSON.stringify(signed));
    expect(r).toMatchObject({ status: 200, body: { recorded: 1 } });
    expect((await message(m.id)).bounce_kind).toBe('hard');
    expect(await suppressed(to)).toBe('hard_bounce');
    // The same notification again (SNS retries) is a no-op.
    expect((await hook(url, JSON.stringify(signed))).body).toMatchObject({ recorded: 0, duplicates: 1 });

    const to2 = `ses2-${tag()}@remote.example`;
    const m2 = await sent(to2);
    const complaint = snsMessage({
      Type: 'Notification',
      Message: JSON.stringify({
        notificationType: 'Complaint',
        complaint: {
          complaintFeedbackType: 'abuse',
          timestamp: new Date().toISOString(),
          complainedRecipients: [{ emailAddress: to2 }],
        },
        mail: { commonHeaders: { messageId: m2.header } },
      }),
    });
    expect((await hook(url, JSON.stringify(complaint))).body).toMatchObject({ recorded: 1 });
    expect(await suppressed(to2)).toBe('complaint');
  });

  it('never fetches a certificate from outside SNS, and refuses what it cannot verify', async () => {
    const n = fetched.length;
    for (const bad of [
      'https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem',
      'http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem',
      'https://evil.example/SimpleNotificationService-test.pem',
      'https://user:pw@sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem',
    ]) {
      const m = snsMessage({ Type: 'Notification', Message: '{}', SigningCertURL: bad });
      const r = await hook(url, JSON.stringify(m));
      expect(r.status).toBe(403);
      expect(String((r.body.error as { message: string }).message)).toMatch(/certificate URL/);
    }
    expect(fetched.length).toBe(n);
    // Signed with another key than the certificate's.
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const m = snsMessage({ Type: 'Notification', Message: '{}' });
    m.Signature = createSign('RSA-SHA1').update(snsStringToSign(m)).sign(privateKey, 'base64');
    expect((await hook(url, JSON.stringify(m))).status).toBe(403);
    expect((await hook(url, 'not json')).status).toBe(400);
    // A wrong token is a 404, whatever the signature.
    expect(
      (
        await hook(
          `${url.slice(0, -4)}AAAA`,
          JSON.stringify(snsMessage({ Type: 'Notification', Message: '{}' })),
        )
      ).status,
    ).toBe(404);
  });
});

describe('SendGrid, Mailgun and Postmark', () => {
  it('SendGrid: ECDSA-signed events are recorded by smtp-id; a tampered body or another key is refused', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const url = await configure('sendgrid', {
      publicKey: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    });
    const to = `sg-${tag()}@remote.example`;
    const to2 = `sg2-${tag()}@remote.example`;
    const m = await sent(to);
    const m2 = await sent(to2);
    const body = JSON.stringify([
      {
        email: to,
        event: 'bounce',
        type: 'bounce',
        status: '5.1.1',
        reason: '550 5.1.1 unknown user',
        'smtp-id': m.header,
        timestamp: Math.floor(Date.now() / 1000),
      },
      { email: to2, event: 'spamreport', 'smtp-id': m2.header, timestamp: Math.floor(Date.now() / 1000) },
      { email: to2, event: 'delivered', 'smtp-id': m2.header, timestamp: Math.floor(Date.now() / 1000) },
    ]);
    const ts = String(Math.floor(Date.now() / 1000));
    const sig = (b: string, key = privateKey) =>
      sign('sha256', Buffer.from(ts + b), { key, dsaEncoding: 'der' }).toString('base64');
    const headers = (s: string) => ({
      'x-twilio-email-event-webhook-signature': s,
      'x-twilio-email-event-webhook-timestamp': ts,
    });
    expect((await hook(url, body.replace('5.1.1', '4.2.2'), headers(sig(body)))).status).toBe(403);
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    expect((await hook(url, body, headers(sig(body, other)))).status).toBe(403);
    expect((await hook(url, body)).status).toBe(401);
    expect((await message(m.id)).bounce_kind).toBeNull();
    expect((await hook(url, body, headers(sig(body)))).body).toMatchObject({ recorded: 2 });
    expect((await message(m.id)).bounce_kind).toBe('hard');
    expect(await suppressed(to2)).toBe('complaint');
  });

  it('Mailgun: HMAC-signed permanent failures and complaints; a wrong or stale signature is refused', async () => {
    const key = `key-${randomBytes(16).toString('hex')}`;
    const url = await configure('mailgun', { signingKey: key });
    const to = `mg-${tag()}@remote.example`;
    const m = await sent(to);
    const call = (event: Record<string, unknown>, o: { key?: string; ts?: number } = {}) => {
      const timestamp = String(o.ts ?? Math.floor(Date.now() / 1000));
      const token = randomBytes(25).toString('hex');
      const signature = createHmac('sha256', o.key ?? key)
        .update(timestamp + token)
        .digest('hex');
      return JSON.stringify({ signature: { timestamp, token, signature }, 'event-data': event });
    };
    const failed = {
      event: 'failed',
      severity: 'permanent',
      recipient: to,
      timestamp: Date.now() / 1000,
      message: { headers: { 'message-id': m.header.slice(1, -1) } },
      'delivery-status': {
        code: 550,
        message: '5.1.1 The email account that you tried to reach does not exist',
      },
    };
    expect((await hook(url, call(failed, { key: 'key-wrong-0123456789abcdef' }))).status).toBe(403);
    expect((await hook(url, call(failed, { ts: Math.floor(Date.now() / 1000) - 3 * 86_400 }))).status).toBe(
      403,
    );
    const signed = JSON.parse(call(failed));
    signed['event-data'].recipient = 'someone-else@remote.example';
    signed.signature.signature = 'ab'.repeat(32);
    expect((await hook(url, JSON.stringify(signed))).status).toBe(403);
    expect((await hook(url, call({ ...failed, severity: 'temporary' }))).body).toMatchObject({ recorded: 0 });
    expect((await hook(url, call(failed))).body).toMatchObject({ recorded: 1 });
    expect((await message(m.id)).bounce_kind).toBe('hard');
    const to2 = `mg2-${tag()}@remote.example`;
    const m2 = await sent(to2);
    await hook(
      url,
      call({
        event: 'complained',
        recipient: to2,
        timestamp: Date.now() / 1000,
        message: { headers: { 'message-id': m2.header.slice(1, -1) } },
      }),
    );
    expect(await suppressed(to2)).toBe('complaint');
  });

  it('Postmark: basic auth; a bounce without our Message-ID matches the newest message to that address', async () => {
    const url = await configure('postmark', { username: 'pm-hook', password: 'correct horse battery' });
    const to = `pm-${tag()}@remote.example`;
    const m = await sent(to);
    const body = JSON.stringify({
      RecordType: 'Bounce',
      Type: 'HardBounce',
      Email: to,
      BouncedAt: new Date().toISOString(),
      Description: 'The server was unable to deliver your message (ex: unknown user, mailbox not found).',
      Details: 'smtp;550 5.1.1 The email account that you tried to reach does not exist.',
      MessageID: '883953f4-6105-42a2-a16a-77a8eac79483',
    });
    const basic = (u: string, p: string) => ({
      authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`,
    });
    expect((await hook(url, body)).status).toBe(401);
    expect((await hook(url, body, basic('pm-hook', 'wrong password!!'))).status).toBe(403);
    expect((await message(m.id)).bounce_kind).toBeNull();
    expect((await hook(url, body, basic('pm-hook', 'correct horse battery'))).body).toMatchObject({
      recorded: 1,
    });
    expect(await message(m.id)).toMatchObject({ bounce_kind: 'hard' });
    // A bounce for an address this org never wrote to matches nothing.
    const stray = body.replace(to, 'stranger@remote.example');
    expect((await hook(url, stray, basic('pm-hook', 'correct horse battery'))).body).toMatchObject({
      recorded: 0,
      unmatched: 1,
    });
  });
});

describe('the admin API', () => {
  it('lists, searches, pages, adds and removes suppressions; unsubscribes need confirming', async () => {
    const base = `page-${tag()}`;
    for (let i = 0; i < 5; i++)
      expect(
        (await admin.req('POST', '/api/suppressions', { email: `${base}-${i}@x.example`, note: 'asked' }))
          .status,
      ).toBe(201);
    expect((await admin.req('POST', '/api/suppressions', { email: 'not an address' })).status).toBe(400);
    const p1 = await admin.req('GET', `/api/suppressions?q=${base}&limit=2`);
    expect(p1.status).toBe(200);
    expect(p1.body.total).toBe(5);
    expect(p1.body.items).toHaveLength(2);
    const p2 = await admin.req('GET', `/api/suppressions?q=${base}&limit=2&after=${p1.body.next}`);
    const p3 = await admin.req('GET', `/api/suppressions?q=${base}&limit=2&after=${p2.body.next}`);
    const all = [...p1.body.items, ...p2.body.items, ...p3.body.items].map((i: { email: string }) => i.email);
    expect(new Set(all).size).toBe(5);
    expect(p3.body.next).toBeNull();
    expect(p1.body.items[0]).toMatchObject({ reason: 'manual', detail: 'asked' });
    expect((await admin.req('GET', '/api/suppressions?after=garbage')).status).toBe(400);
    // A search with LIKE wildcards is taken literally.
    expect((await admin.req('GET', `/api/suppressions?q=${encodeURIComponent('%')}`)).body.total).toBe(0);

    expect(
      (await admin.req('DELETE', `/api/suppressions/${encodeURIComponent(`${base}-0@x.example`)}`)).status,
    ).toBe(204);
    expect(
      (await admin.req('DELETE', `/api/suppressions/${encodeURIComponent(`${base}-0@x.example`)}`)).status,
    ).toBe(404);
    await t.deps.db
      .insertInto('suppressions')
      .values({ org_id: org.orgId, email: `${base}-u@x.example`, reason: 'unsubscribe' })
      .execute();
    const u = encodeURIComponent(`${base}-u@x.example`);
    expect((await admin.req('DELETE', `/api/suppressions/${u}`)).status).toBe(409);
    expect((await admin.req('DELETE', `/api/suppressions/${u}?force=true`)).status).toBe(204);
    const h = await admin.req(
      'GET',
      `/api/suppressions/${encodeURIComponent(`${base}-0@x.example`)}/history`,
    );
    expect(h.body.map((x: { action: string }) => x.action)).toEqual(['removed', 'added']);
  });

  it('is for admins of the org only; secrets never come back', async () => {
    const other = await t.createOrg();
    const otherAdmin = await login(t.app, other.adminEmail, other.adminPassword);
    await admin.req('POST', '/api/suppressions', { email: 'mine-only@x.example' });
    expect((await otherAdmin.req('GET', '/api/suppressions?q=mine-only')).body.total).toBe(0);
    expect(
      (await otherAdmin.req('DELETE', `/api/suppressions/${encodeURIComponent('mine-only@x.example')}`))
        .status,
    ).toBe(404);

    // A standard user of the org: every route refuses.
    const r = await admin.req('POST', '/api/users', {
      email: `std-${tag()}@test.example`,
      name: 'Std',
      profileId: org.standardProfileId,
    });
    const invite = new URL(r.body.inviteUrl).searchParams.get('token') as string;
    const acc = await t.app.inject({
      method: 'POST',
      url: '/api/auth/accept-invite',
      payload: { token: invite, password: 'a-long-password-1' },
    });
    expect(acc.statusCode).toBeLessThan(300);
    const std = await login(t.app, r.body.user.email, 'a-long-password-1');
    for (const [method, path, body] of [
      ['GET', '/api/suppressions'],
      ['POST', '/api/suppressions', { email: 'x@x.example' }],
      ['DELETE', '/api/suppressions/mine-only%40x.example'],
      ['GET', '/api/admin-alerts'],
      ['GET', '/api/bounce-webhooks'],
      ['PUT', '/api/bounce-webhooks/mailgun', { signingKey: 'key-0123456789abcdef0123' }],
    ] as [string, string, unknown?][])
      expect((await std.req(method, path, body)).status).toBe(403);

    const list = await admin.req('GET', '/api/bounce-webhooks');
    expect(list.status).toBe(200);
    const text = JSON.stringify(list.body);
    expect(text).not.toContain('correct horse');
    expect(text).not.toMatch(/key-[0-9a-f]{32}/);
    expect(list.body.find((w: { provider: string }) => w.provider === 'postmark')).toMatchObject({
      configured: true,
      settings: { username: 'pm-hook' },
    });
    // Updating keeps the URL (none returned) unless rotated.
    expect(
      (
        await admin.req('PUT', '/api/bounce-webhooks/postmark', {
          username: 'pm-hook',
          password: 'another long password',
        })
      ).body.url,
    ).toBeNull();
    expect(
      (
        await admin.req('PUT', '/api/bounce-webhooks/postmark', {
          username: 'pm-hook',
          password: 'another long password',
          rotate: true,
        })
      ).body.url,
    ).toMatch(/\/hooks\/bounces\/postmark\//);
  });

  it('lists admin alerts and dismisses them', async () => {
    const m = await sent(`pol-${tag()}@strict.example`);
    const { recordBounces } = await import('../src/tracking/bounces/record.ts');
    await recordBounces(t.deps, [
      {
        messageId: m.id,
        kind: 'policy',
        status: '5.7.26',
        reason: 'DMARC policy',
        at: new Date(),
        source: 'dsn',
      },
    ]);
    const a = await admin.req('GET', '/api/admin-alerts');
    const alert = a.body.find((x: { title: string }) => x.title.includes('strict.example'));
    expect(alert).toMatchObject({ count: 1, dismissedAt: null });
    const other = await t.createOrg();
    const otherAdmin = await login(t.app, other.adminEmail, other.adminPassword);
    expect((await otherAdmin.req('POST', `/api/admin-alerts/${alert.id}/dismiss`)).status).toBe(404);
    expect((await admin.req('POST', `/api/admin-alerts/${alert.id}/dismiss`)).status).toBe(204);
    expect(
      (await admin.req('GET', '/api/admin-alerts')).body.find((x: { id: string }) => x.id === alert.id)
        .dismissedAt,
    ).not.toBeNull();
  });
});
