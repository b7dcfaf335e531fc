// Conversations in the browser: a lead's page shows the thread of Parley's sent email and the
// lead's reply; opening a hostile email runs none of its script, and its remote image is fetched
// (by the browser) only after "Show remote images".
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingestMail } from '../../src/mailbox/ingest.ts';
import { login } from '../support/app.ts';
import { itemOf, mailOf } from '../support/mail-fixtures.ts';
import { type BrowserApp, startBrowserApp } from './browser.ts';

// A 1×1 transparent GIF.
const PIXEL = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');

describe('conversations UI', () => {
  let b: BrowserApp;
  let images: Server;
  let imageHits = 0;
  let imageUrl: string;
  beforeAll(async () => {
    b = await startBrowserApp();
    images = createServer((req, res) => {
      if (req.url?.startsWith('/pixel.gif')) imageHits++;
      res.writeHead(200, { 'content-type': 'image/gif' }).end(PIXEL);
    });
    await new Promise<void>((r) => images.listen(0, '127.0.0.1', r));
    imageUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}/pixel.gif`;
  });
  afterAll(async () => {
    await new Promise((r) => images.close(r));
    await b?.stop();
  });

  it('shows the conversation and keeps a hostile email harmless', async () => {
    const { app, page } = b;
    const org = await app.createOrg();
    const api = await login(app.app, org.adminEmail, org.adminPassword);
    const tag = randomBytes(4).toString('hex');
    const leadEmail = `ada.${tag}@engine.example`;
    const lead = (
      await api.req('POST', '/api/modules/leads/records', {
        data: { first_name: 'Ada', last_name: 'Lovelace', email: leadEmail },
      })
    ).body.id as string;
    const mod = await app.deps.db
      .selectFrom('modules')
      .select('id')
      .where('org_id', '=', org.orgId)
      .where('api_name', '=', 'leads')
      .executeTakeFirstOrThrow();
    const sentMsgId = `<${tag}@ourco.example>`;
    await app.deps.db
      .insertInto('messages')
      .values({
        org_id: org.orgId,
        kind: 'individual',
        module_id: mod.id,
        record_id: lead,
        from_address: org.adminEmail,
        to_address: leadEmail,
        subject: 'Engine pricing',
        text: 'Here is our price list.',
        message_id_header: sentMsgId,
        transport: 'outbox',
        status: 'sent',
        sent_at: new Date(Date.now() - 7_200_000),
        expires_at: new Date(Date.now() + 3_600_000),
      })
      .execute();
    const account = await app.deps.db
      .insertInto('mailbox_accounts')
      .values({
        org_id: org.orgId,
        user_id: org.adminId,
        protocol: 'imap',
        host: 'imap.test',
        port: 993,
        security: 'tls',
        username: org.adminEmail,
        secret_enc: 'x',
        email_address: org.adminEmail,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const hostile =
      `<p id="body">Thanks, looks good <img src="${imageUrl}" alt="tracker"></p>` +
      `<script>parent.document.title = 'pwned'; window.top.pwned = 1;</script>` +
      `<img src="x" onerror="parent.document.title = 'pwned'">` +
      `<a href="javascript:parent.document.title='pwned'">click</a>` +
      `<div style="background: url(${imageUrl}?css)">bg</div>`;
    await ingestMail(app.deps, org.orgId, [
      itemOf(
        await mailOf({
          from: `Ada <${leadEmail}>`,
          to: org.adminEmail,
          subject: 'Re: Engine pricing',
          messageId: `<reply.${tag}@engine.example>`,
          inReplyTo: sentMsgId,
          date: new Date(Date.now() - 3_600_000),
          html: hostile,
          text: 'Thanks, looks good',
        }),
        {
          accountId: account.id,
          userId: org.adminId,
          folder: 'INBOX',
          uid: 1,
          uidl: null,
          direction: 'in',
          seen: false,
        },
      ),
    ]);

    await b.signIn(org.adminEmail, org.adminPassword);
    await page.goto(`${app.url}/m/leads/${lead}`);
    const section = page.getByRole('region', { name: 'Conversations' });
    await section.getByTestId('conv-thread').first().waitFor();
    const emails = section.getByTestId('conv-email');
    await expect.poll(() => emails.count()).toBe(2);
    expect(await emails.nth(0).textContent()).toContain('Sent');
    expect(await emails.nth(0).getByTestId('conv-status').textContent()).toBe('Replied');
    expect(await emails.nth(1).textContent()).toContain('Thanks, looks good');
    const title = await page.title();

    await emails.nth(1).getByRole('button').first().click();
    const view = section.getByTestId('mail-view');
    await view.waitFor();
    const frame = page.frameLocator('iframe.mail-frame');
    await frame.locator('#body').waitFor();
    expect(await frame.locator('#body').textContent()).toContain('Thanks, looks good');
    expect(await view.locator('iframe').getAttribute('sandbox')).toBe(
      'allow-popups allow-popups-to-escape-sandbox',
    );
    expect(await frame.locator('script').count()).toBe(0);
    expect(await frame.locator('img[src="x"]').count()).toBe(0);
    expect(await page.title()).toBe(title);
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
    expect(imageHits).toBe(0);
    await b.screenshot('conversations-blocked');

    await view.getByRole('button', { name: 'Show remote images' }).click();
    await expect.poll(() => imageHits, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    await frame.locator('img[alt="tracker"]').waitFor();
    expect(await page.title()).toBe(title);
    expect(b.pageErrors).toEqual([]);
    await b.screenshot('conversations-images');
  }, 90_000);
});
