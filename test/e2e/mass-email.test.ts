// Mass email in the browser: recipients from criteria with the live count and a reason for leaving
// someone out, a scheduled send that is stopped (Scheduled → Stopped), then a send now whose
// statistics and recipient list are opened after the worker's steps run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliverDue } from '../../src/sending/delivery.ts';
import { launchDue } from '../../src/sending/mass-launch.ts';
import { renderTemplateRows } from '../../src/sending/render-rows.ts';
import { login } from '../support/app.ts';
import { type BrowserApp, startBrowserApp } from './browser.ts';

describe('mass email UI', () => {
  let b: BrowserApp;
  let app: BrowserApp['app'];
  let page: BrowserApp['page'];
  beforeAll(async () => {
    b = await startBrowserApp();
    ({ app, page } = b);
  });
  afterAll(() => b?.stop());

  async function compose(name: string, later: boolean) {
    await page.goto(`${app.url}/mass-email/new`);
    await page.getByTestId('mass-name').fill(name);
    await page.getByTestId('mass-module').selectOption('contacts');
    const filter = page.getByRole('form', { name: 'Advanced filter' });
    await filter.getByRole('button', { name: 'Add condition' }).click();
    await filter.getByLabel('Field of condition 1').selectOption('last_name');
    await filter.getByLabel('Operator of condition 1').selectOption('starts_with');
    await filter.getByLabel('Value of condition 1').fill('Member');
    await filter.getByRole('button', { name: 'Apply filter' }).click();
    await expect.poll(() => page.getByTestId('mass-count').textContent()).toContain('2 will receive it.');
    expect(await page.getByTestId('mass-count').textContent()).toContain('opted out: 1');
    await page.getByTestId('mass-template').selectOption({ label: 'Newsletter' });
    if (later) {
      await page.getByTestId('mass-when').selectOption('later');
      const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
      await page.getByTestId('mass-send-at').fill(`${tomorrow}T09:30`);
    }
    await page.getByTestId('mass-submit').click();
    await page.waitForURL(/\/mass-email$/);
  }

  it('schedules, stops, sends and shows the statistics of a mass email', async () => {
    const org = await app.createOrg();
    const api = await login(app.app, org.adminEmail, org.adminPassword);
    for (const [last, email, out] of [
      ['Member One', 'one@club.example', false],
      ['Member Two', 'two@club.example', false],
      ['Member Out', 'out@club.example', true],
    ] as const)
      await api.req('POST', '/api/modules/contacts/records', {
        data: { last_name: last, email, email_opt_out: out },
      });
    const tpl = await api.req('POST', '/api/templates', {
      name: 'Newsletter',
      module: 'contacts',
      subject: 'News for {{ contact.last_name }}',
      htmlSource: '<p>Hello {{ contact.last_name }}</p>',
    });
    expect(tpl.status).toBe(201);

    await b.signIn(org.adminEmail, org.adminPassword);

    await compose('Tomorrow news', true);
    await page.getByTestId('mass-list').getByText('Tomorrow news').waitFor();
    await page.getByRole('button', { name: 'Stop' }).click();
    await page.getByRole('tab', { name: 'Stopped' }).click();
    await page.getByTestId('mass-list').getByText('Stopped by its creator').waitFor();
    await b.screenshot('ui-mass-folders');

    await compose('Today news', false);
    await launchDue(app.deps, { orgId: org.orgId });
    await deliverDue(app.deps, { orgId: org.orgId, render: renderTemplateRows });
    await page.getByRole('tab', { name: 'Sent' }).click();
    await page.getByTestId('mass-list').getByRole('link', { name: 'Today news' }).click();
    await expect
      .poll(() => page.getByTestId('mass-stats').getByRole('button', { name: /Sent/ }).first().textContent())
      .toContain('2');
    await page
      .getByTestId('mass-stats')
      .getByRole('button', { name: /^2\s*Delivered/ })
      .click();
    await expect.poll(() => page.getByTestId('mass-stat-list').locator('tr').count()).toBe(2);
    await b.screenshot('ui-mass-stats');
    expect(b.pageErrors).toEqual([]);
  });
});
