import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snsUrlOk } from '../../src/tracking/bounces/providers/ses.ts';
import { deliverDueWebhooks } from '../../src/webhooks/dispatcher.ts';
import { type Client, login, startTestApp } from '../support/app.ts';

// SSRF: the URLs and hosts the server connects to for a user. Webhook targets must be public https
// (checked when saved and again when connecting, so a name that resolves to a private address is
// refused too); SNS URLs only on Amazon's SNS hosts; and the connection tests of mailboxes and
// relays never hand back what an internal service said.
let t: Awaited<ReturnType<typeof startTestApp>>;
let admin: Client;
let internal: Server;
let port: number;
let connections = 0;
const BANNER = 'internal-service-banner-7f3a SECRET=hunter2';

beforeAll(async () => {
  t = await startTestApp();
  const org = await t.createOrg({ edition: 'enterprise' });
  admin = await login(t.app, org.adminEmail, org.adminPassword);
  // An "internal service" on loopback that greets with something worth stealing.
  internal = createServer((s) => {
    connections++;
    s.end(`${BANNER}\r\n`);
  });
  await new Promise<void>((r) => internal.listen(0, '127.0.0.1', () => r()));
  port = (internal.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((r) => internal.close(r));
  await t.stop();
});

describe('SSRF', () => {
  it('webhook URLs to loopback, private, link-local or metadata addresses are refused when saved', async () => {
    const urls = [
      `http://hooks.example.com/x`,
      `https://127.0.0.1:${port}/x`,
      'https://127.1/x',
      'https://2130706433/x',
      'https://0x7f000001/x',
      'https://0177.0.0.1/x',
      'https://0.0.0.0/x',
      'https://localhost/x',
      'https://api.localhost/x',
      'https://[::1]/x',
      'https://[::]/x',
      'https://[::ffff:127.0.0.1]/x',
      'https://[::ffff:7f00:1]/x',
      'https://[::ffff:169.254.169.254]/latest',
      'https://[fd00::1]/x',
      'https://[fe80::1]/x',
      'https://10.0.0.1/x',
      'https://172.16.5.4/x',
      'https://192.168.1.1/x',
      'https://100.64.0.1/x',
      'https://169.254.169.254/latest/meta-data/',
      'https://user:pw@hooks.example.com/x',
      'file:///etc/passwd',
      'gopher://127.0.0.1:25/x',
    ];
    const accepted: string[] = [];
    for (const url of urls) {
      const r = await admin.req('POST', '/api/webhooks', { url, events: ['opened'] });
      if (r.status !== 400) accepted.push(`${url} -> ${r.status}`);
      const p = await admin.req('PATCH', '/api/webhooks/00000000-0000-4000-8000-000000000000', { url });
      expect(p.status).toBeGreaterThanOrEqual(400);
    }
    expect(accepted).toEqual([]);
  });

  it('a webhook host that resolves to a private address is refused when connecting', async () => {
    // A URL that passed the save-time check, whose name now resolves to loopback (DNS changed, or
    // rebinding): written straight to the table, as if saved when the name was public.
    const r = await admin.req('POST', '/api/webhooks', {
      url: 'https://hooks.example.com/hook',
      events: ['opened'],
    });
    expect(r.status).toBe(201);
    await t.deps.db
      .updateTable('webhook_endpoints')
      .set({ url: `https://localhost:${port}/hook` })
      .where('id', '=', r.body.endpoint.id)
      .execute();
    const ping = await admin.req('POST', `/api/webhooks/${r.body.endpoint.id}/test`);
    expect(ping.status).toBe(202);
    const before = connections;
    await deliverDueWebhooks(t.deps, { limit: 1000 });
    expect(connections).toBe(before);
    const d = await admin.req('GET', `/api/webhooks/deliveries/${ping.body.deliveryId}`);
    expect(JSON.stringify(d.body)).toMatch(/private/i);
  });

  it('SNS certificate and subscription URLs are fetched only from Amazon SNS hosts', () => {
    expect(snsUrlOk('https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem', 'cert')).toBe(
      true,
    );
    for (const url of [
      'https://sns.us-east-1.amazonaws.com.evil.example/x.pem',
      'https://evil.example/sns.us-east-1.amazonaws.com/x.pem',
      'https://sns.us-east-1.amazonaws.com@evil.example/x.pem',
      'https://user:pw@sns.us-east-1.amazonaws.com/x.pem',
      'http://sns.us-east-1.amazonaws.com/x.pem',
      'https://sns.us-east-1.amazonaws.com:8443/x.pem',
      'https://169.254.169.254/latest/meta-data/x.pem',
      'https://sns.us-east-1.amazonaws.com/not-a-cert',
    ])
      expect(snsUrlOk(url, 'cert'), url).toBe(false);
    expect(snsUrlOk('https://127.0.0.1/?Action=ConfirmSubscription', 'subscribe')).toBe(false);
  });

  it('connection tests of mailboxes and relays never return what an internal service said', async () => {
    const tries = [
      [
        'POST',
        '/api/mailbox/test',
        {
          protocol: 'imap',
          host: '127.0.0.1',
          port,
          security: 'none',
          username: 'x',
          secret: 'x',
          emailAddress: 'x@x.example',
        },
      ],
      [
        'POST',
        '/api/mailbox/test',
        {
          protocol: 'pop3',
          host: '127.0.0.1',
          port,
          security: 'none',
          username: 'x',
          secret: 'x',
          emailAddress: 'x@x.example',
        },
      ],
    ] as const;
    for (const [method, url, body] of tries) {
      const r = await admin.req(method, url, body);
      expect(r.status, r.text).toBeLessThan(500);
      expect(r.text).not.toContain('hunter2');
      expect(r.text).not.toContain('internal-service-banner');
    }
    const relay = await admin.req('PUT', '/api/admin/smtp-relay', {
      host: '127.0.0.1',
      port,
      security: 'none',
      username: 'x',
      password: 'x',
    });
    if (relay.status === 200) {
      const r = await admin.req('POST', '/api/admin/smtp-relay/test', {});
      expect(r.text).not.toContain('hunter2');
      expect(r.text).not.toContain('internal-service-banner');
    } else expect(relay.status).toBe(400);
  });
});
