import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingestMail } from '../../src/mailbox/ingest.ts';
import { recordBounces } from '../../src/tracking/bounces/record.ts';
import { trackingToken } from '../../src/tracking/tokens.ts';
import { type BrowserApp, startBrowserApp } from '../e2e/browser.ts';
import { mailbox } from '../salesinbox-fixtures.ts';
import { login, type TestOrg } from '../support/app.ts';
import { itemOf, mailOf } from '../support/mail-fixtures.ts';

// Stored XSS, checked in the real browser: hostile markup in record fields, received mail, the user
// agents of tracking hits and bounce text is shown on the pages that display them, and none of it
// runs. Each payload sets window.__xss when it executes; every frame of every page is asked.
let b: BrowserApp;
let org: TestOrg;
let lead: string;
const MARK = `XSS${randomBytes(3).toString('hex')}`;
const payload = (where: string) =>
  `${MARK}-${where}<img src=x onerror="window.__xss='${where}-img'"><script>window.__xss='${where}-script'</script><svg onload="window.__xss='${where}-svg'"></svg>`;
const dialogs: string[] = [];

beforeAll(async () => {
  b = await startBrowserApp();
  b.page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  const { app } = b;
  org = await app.createOrg();
  const api = await login(app.app, org.adminEmail, org.adminPassword);
  const email = `victim-${MARK.toLowerCase()}@client.example`;
  // Record fields.
  const r = await api.req('POST', '/api/modules/leads/records', {
    data: { first_name: payload('first'), last_name: payload('last'), company: payload('company'), email },
  });
  expect(r.status, r.text).toBe(201);
  lead = r.body.id;
  const mod = await app.deps.db
    .selectFrom('modules')
    .select('id')
    .where('org_id', '=', org.orgId)
    .where('api_name', '=', 'leads')
    .executeTakeFirstOrThrow();
  // An email to the lead: hostile subject and HTML, opened by a hostile user agent, then bounced
  // with hostile bounce text.
  const m = await app.deps.db
    .insertInto('messages')
    .values({
      org_id: org.orgId,
      kind: 'individual',
      module_id: mod.id,
      record_id: lead,
      sender_id: org.adminId,
      from_address: org.adminEmail,
      to_address: email,
      subject: payload('subject'),
      html: payload('html'),
      text: 'x',
      message_id_header: `<${randomBytes(8).toString('hex')}@ourco.example>`,
      transport: 'outbox',
      status: 'sent',
      tracked: true,
      sent_at: new Date(Date.now() - 3_600_000),
      expires_at: new Date(Date.now() + 86_400_000),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const hit = await fetch(
    `${app.url}/t/o/${trackingToken(app.deps.config.secret as string, m.id, 'open')}.gif`,
    {
      headers: { 'user-agent': payload('agent') },
    },
  );
  expect(hit.status).toBe(200);
  await app.app.hitRecorder.flush();
  await recordBounces(app.deps, [
    {
      messageId: m.id,
      kind: 'hard',
      status: '5.1.1',
      reason: payload('bounce'),
      at: new Date(),
      source: 'dsn',
    },
  ]);
  // Received mail from the lead: hostile subject, sender name and HTML body.
  const box = await mailbox(app.deps, org.orgId, org.adminId, org.adminEmail);
  await ingestMail(app.deps, org.orgId, [
    itemOf(
      await mailOf({
        from: `"${payload('from').replaceAll('"', "'")}" <${email}>`,
        to: org.adminEmail,
        subject: payload('received'),
        html: `<p>${payload('body')}</p><a href="javascript:window.__xss='href'">click</a><iframe srcdoc="<script>parent.__xss='srcdoc'</script>"></iframe>`,
        text: 'plain',
      }),
      {
        accountId: box.accountId,
        userId: org.adminId,
        folder: 'INBOX',
        uid: 1,
        uidl: null,
        direction: 'in',
        seen: false,
      },
    ),
  ]);
}, 180_000);
afterAll(() => b?.stop());

/** window.__xss in every frame of the page: undefined everywhere when nothing ran. */
async function ran(): Promise<string[]> {
  const out: string[] = [];
  for (const f of b.page.frames()) {
    const v = await f.evaluate(() => (window as unknown as { __xss?: string }).__xss).catch(() => undefined);
    if (v !== undefined) out.push(`${f.url()}: ${v}`);
  }
  return out;
}

describe('stored XSS (browser)', () => {
  it('hostile record fields, received mail, user agents and bounce text are shown as text and never run', async () => {
    const { page, app } = b;
    // The detector works: the same payload, put into a page as markup, runs and is seen.
    await page.goto(`${app.url}/login`);
    await page.evaluate((html) => document.body.insertAdjacentHTML('beforeend', html), payload('probe'));
    await expect.poll(ran).toEqual([expect.stringContaining('probe-img')]);
    await b.signIn(org.adminEmail, org.adminPassword);
    const seen: string[] = [];
    const visit = async (path: string, then?: () => Promise<void>) => {
      await page.goto(`${app.url}${path}`);
      await page.getByText(MARK).first().waitFor();
      if (then) await then();
      // Every image has loaded or failed: an onerror payload would have run by now.
      await page.waitForFunction(() => [...document.images].every((i) => i.complete));
      seen.push(...(await ran()).map((r) => `${path} ${r}`));
    };
    await visit('/m/leads');
    expect(await page.getByText(`${MARK}-last<img`).count()).toBeGreaterThan(0); // shown as text
    await visit(`/m/leads/${lead}`, async () => {
      const row = page
        .getByTestId('emails-list')
        .getByRole('row')
        .filter({ hasText: `${MARK}-subject` });
      await row.getByTestId('status-bar').hover();
      await row.getByTestId('status-detail').waitFor({ state: 'visible' });
      expect(await row.getByTestId('status-detail').textContent()).toContain(`${MARK}-bounce<img`);
    });
    await visit('/inbox', async () => {
      await page
        .getByTestId('inbox-row')
        .filter({ hasText: `${MARK}-received` })
        .first()
        .getByRole('button', { name: new RegExp(`${MARK}-received`) })
        .click();
      await page.locator('iframe.mail-frame').first().waitFor();
      // A javascript: link in the mail does nothing when clicked.
      const frame = page.frameLocator('iframe.mail-frame').first();
      await frame
        .getByText('click')
        .click({ timeout: 5_000 })
        .catch(() => {});
    });
    expect(seen).toEqual([]);
    expect(dialogs).toEqual([]);
    expect(b.pageErrors.filter((e) => e.includes('__xss'))).toEqual([]);
  });
});
