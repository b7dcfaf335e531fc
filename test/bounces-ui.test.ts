// Settings › Suppressions in headless Chromium: an admin sees the alert of a policy bounce and
// dismisses it, finds the address a hard bounce suppressed, adds and removes addresses (an
// unsubscribe asks first, in plain words), and sets up a Mailgun webhook whose URL is shown once.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordBounces } from '../src/tracking/bounces/record.ts';
import { type BrowserApp, startBrowserApp } from './e2e/browser.ts';

describe('suppressions page', () => {
  let b: BrowserApp;
  beforeAll(async () => {
    b = await startBrowserApp();
  });
  afterAll(() => b?.stop());

  it('shows alerts and the list, adds, removes and sets up a provider webhook', async () => {
    const { app, page } = b;
    const org = await app.createOrg();
    const tag = randomBytes(3).toString('hex');
    const sent = async (to: string) =>
      (
        await app.deps.db
          .insertInto('messages')
          .values({
            org_id: org.orgId,
            kind: 'individual',
            from_address: org.adminEmail,
            to_address: to,
            subject: 'Hello',
            text: 'Hello',
            message_id_header: `<${tag}.${randomBytes(6).toString('hex')}@parley.test>`,
            transport: 'relay',
            status: 'sent',
            sent_at: new Date(),
            expires_at: new Date(Date.now() + 86_400_000),
          })
          .returning('id')
          .executeTakeFirstOrThrow()
      ).id;
    const at = new Date();
    await recordBounces(app.deps, [
      {
        messageId: await sent(`gone-${tag}@remote.example`),
        kind: 'hard',
        status: '5.1.1',
        reason: 'user unknown',
        at,
        source: 'dsn',
      },
      {
        messageId: await sent(`a-${tag}@strict.example`),
        kind: 'policy',
        status: '5.7.1',
        reason: 'listed on a block list',
        at,
        source: 'dsn',
      },
    ]);
    await app.deps.db
      .insertInto('suppressions')
      .values({ org_id: org.orgId, email: `left-${tag}@remote.example`, reason: 'unsubscribe' })
      .execute();

    await b.signIn(org.adminEmail, org.adminPassword);
    await page.goto(`${app.url}/settings/suppressions`);
    const alert = page.getByTestId('admin-alert');
    await alert.getByText('Mail to strict.example refused for policy reasons (5.7.1)').waitFor();
    await expect.poll(() => page.getByTestId('supp-total').textContent()).toBe('2 addresses');
    const row = page.getByRole('row', { name: new RegExp(`gone-${tag}@remote\\.example`) });
    await row.getByText('Hard bounce').waitFor();
    await b.screenshot('bounces-suppressions');

    await alert.getByRole('button', { name: 'Dismiss' }).click();
    await page.getByText('Nothing needs your attention.').waitFor();

    // Add one by hand, then find it by searching.
    await page.getByLabel('Email address').fill(`manual-${tag}@x.example`);
    await page.getByLabel('Note').fill('asked by phone');
    await page.getByRole('button', { name: 'Suppress an address' }).click();
    await expect.poll(() => page.getByTestId('supp-total').textContent()).toBe('3 addresses');
    await page.getByLabel('Search').fill('manual-');
    await expect.poll(() => page.getByTestId('supp-total').textContent()).toBe('1 address');
    await page.getByText('asked by phone').waitFor();

    // Removing asks; an unsubscribe asks in words that say what it means.
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.accept();
    });
    await page.getByRole('button', { name: `Remove manual-${tag}@x.example` }).click();
    await expect.poll(() => page.getByTestId('supp-total').textContent()).toBe('0 addresses');
    await page.getByLabel('Search').fill('');
    await page.getByRole('button', { name: `Remove left-${tag}@remote.example` }).click();
    await expect.poll(() => page.getByTestId('supp-total').textContent()).toBe('1 address');
    expect(dialogs[0]).toMatch(/receive mass email again/);
    expect(dialogs[1]).toMatch(/asked not to receive your email/);
    const left = await app.deps.db
      .selectFrom('suppressions')
      .select('email')
      .where('org_id', '=', org.orgId)
      .execute();
    expect(left.map((r) => r.email)).toEqual([`gone-${tag}@remote.example`]);

    // A Mailgun webhook: the URL is shown once; the key is never shown back.
    const mailgun = page.getByRole('form', { name: 'Mailgun' });
    await mailgun.getByLabel('HTTP webhook signing key').fill('key-0123456789abcdef0123456789');
    await mailgun.getByRole('button', { name: 'Save' }).click();
    await expect
      .poll(() => page.getByTestId('hook-url').textContent())
      .toMatch(/\/hooks\/bounces\/mailgun\/[\w-]{32}/);
    await mailgun.getByText('configured, nothing received yet').waitFor();
    expect(await mailgun.getByLabel('HTTP webhook signing key').inputValue()).toBe(
      'key-0123456789abcdef0123456789',
    );
    await page.reload();
    await page.getByRole('form', { name: 'Mailgun' }).getByText('configured, nothing received yet').waitFor();
    expect(
      await page.getByRole('form', { name: 'Mailgun' }).getByLabel('HTTP webhook signing key').inputValue(),
    ).toBe('');
    expect(b.pageErrors).toEqual([]);
  });
});
