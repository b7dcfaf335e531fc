// Mass email in the browser: recipients from criteria with the live count and a reason for leaving
// someone out, a scheduled send that is stopped (Scheduled → Stopped), then a send now whose
// statistics and recipient list are opened after the worker's steps run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliverDue } from '../../src/sending/delivery.ts';
import { launchDue } from '../../src/sending/mass-launch.ts';
import { gmtDay, MASS, massDailyLimit } from '../../src/sending/mass-limits.ts';
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
    expect(await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href')).toMatch(
      /\/stats\/delivered\?format=csv$/,
    );
    expect(b.pageErrors).toEqual([]);
  });

  it('sends to records selected in a list, opens a left-out list and the preview, and says when a late edit stopped a send', async () => {
    // An edition with follow-ups; a user zone away from the browser's UTC, without daylight saving.
    const org = await app.createOrg({ edition: 'enterprise', timeZone: 'Asia/Kolkata' });
    const api = await login(app.app, org.adminEmail, org.adminPassword);
    for (const [last, email, out] of [
      ['Pick Ann', 'ann@pick.example', false],
      ['Pick Bob', 'bob@pick.example', true],
      ['Other Cid', 'cid@pick.example', false],
    ] as const)
      await api.req('POST', '/api/modules/contacts/records', {
        data: { last_name: last, email, email_opt_out: out },
      });
    const tpl = await api.req('POST', '/api/templates', {
      name: 'Picked',
      module: 'contacts',
      subject: 'For {{ contact.last_name }}',
      htmlSource: '<p>Dear {{ contact.last_name }}</p>',
    });
    expect(tpl.status).toBe(201);
    await b.signIn(org.adminEmail, org.adminPassword);

    // The list page hands its selection to a new mass email.
    await page.goto(`${app.url}/m/contacts`);
    for (const who of ['Pick Ann', 'Pick Bob'])
      await page.locator('tbody tr', { hasText: who }).getByRole('checkbox').check();
    await page.getByRole('region', { name: 'Selection' }).getByRole('link', { name: 'Mass email' }).click();
    await page.waitForURL(/\/mass-email\/new$/);
    expect(await page.getByTestId('mass-source').inputValue()).toBe('ids');
    await expect.poll(() => page.getByTestId('mass-count').textContent()).toContain('1 will receive it.');
    // The left-out number opens the people behind it.
    await page.getByTestId('mass-count').getByRole('button', { name: 'opted out: 1' }).click();
    await expect.poll(() => page.getByTestId('mass-people').textContent()).toContain('bob@pick.example');
    // The template, merged with the first recipient, in a sandboxed frame.
    await page.getByTestId('mass-template').selectOption({ label: 'Picked' });
    const frame = page.getByTestId('mass-preview').locator('iframe');
    await frame.waitFor();
    expect(await frame.getAttribute('sandbox')).toBe('');
    await expect.poll(() => frame.getAttribute('srcdoc')).toContain('Dear Pick Ann');
    // The send time is read in the user's zone and shown back.
    await page.getByTestId('mass-name').fill('Picked people');
    await page.getByTestId('mass-when').selectOption('later');
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    await page.getByTestId('mass-send-at').fill(`${tomorrow}T10:15`);
    expect(await page.getByTestId('mass-send-at-shown').textContent()).toMatch(/10:15 AM \(Asia\/Kolkata\)/);
    // A follow-up to those who opened it: it only ever goes a number of days after.
    await page.getByTestId('mass-add-followup').click();
    const fu = page.getByRole('group', { name: 'Follow-up 1' });
    await fu.getByLabel('Follow-up to').selectOption('opened');
    expect(await fu.getByLabel(/^When/).isDisabled()).toBe(true);
    await fu.getByLabel('Days after the send', { exact: true }).fill('2');
    await b.screenshot('ui-mass-new');
    await page.getByTestId('mass-submit').click();
    await page.waitForURL(/\/mass-email$/);
    await page.getByTestId('mass-list').getByText('Picked people').waitFor();
    const listed = await api.req('GET', '/api/mass-emails?folder=scheduled');
    const picked = listed.body.massEmails.find((m: { name: string }) => m.name === 'Picked people');
    const detail = await api.req('GET', `/api/mass-emails/${picked.id}`);
    expect(detail.body.audience).toMatchObject({ kind: 'ids' });
    expect(detail.body.sendAt).toBe(`${tomorrow}T04:45:00.000Z`); // 10:15 at UTC+05:30
    expect(detail.body.followups).toMatchObject([{ audience: 'opened', days: 2 }]);

    // Its follow-up is edited from the summary; far from the send time, it stays scheduled.
    await page
      .getByTestId('mass-list')
      .locator('tr', { hasText: 'Picked people' })
      .getByRole('link', { name: 'Edit' })
      .click();
    const fuEdit = page.getByRole('group', { name: 'Follow-up 1' });
    await fuEdit.getByLabel('Follow-up to').selectOption('not_opened');
    await fuEdit.getByLabel('Days after the send', { exact: true }).fill('4');
    await page.getByTestId('mass-edit-save').click();
    await page.waitForURL(/\/mass-email$/);
    expect(await page.getByTestId('mass-edit-outcome').textContent()).toBe('"Picked people" was saved.');
    const edited = await api.req('GET', `/api/mass-emails/${picked.id}`);
    expect(edited.body.status).toBe('scheduled');
    expect(edited.body.sendAt).toBe(`${tomorrow}T04:45:00.000Z`);
    expect(edited.body.followups).toMatchObject([{ audience: 'not_opened', days: 4 }]);

    // An edit saved less than 15 minutes before the send time moves it to Stopped, and says so.
    const soon = await api.req('POST', '/api/mass-emails', {
      module: 'contacts',
      name: 'Soon news',
      templateId: tpl.body.id,
      from: { kind: 'user' },
      audience: {
        kind: 'criteria',
        criteria: { conditions: [{ field: 'last_name', op: 'starts_with', value: 'Pick' }] },
      },
      sendAt: new Date(Date.now() + 10 * 60_000).toISOString(),
    });
    expect(soon.status).toBe(201);
    await page.goto(`${app.url}/mass-email`);
    await page
      .getByTestId('mass-list')
      .locator('tr', { hasText: 'Soon news' })
      .getByRole('link', { name: 'Edit' })
      .click();
    await page.getByTestId('mass-edit-name').fill('Soon news, edited');
    await page.getByTestId('mass-edit-save').click();
    await page.waitForURL(/\/mass-email$/);
    expect(await page.getByTestId('mass-edit-outcome').textContent()).toContain('moved to Stopped');
    expect(await page.getByRole('tab', { name: 'Stopped' }).getAttribute('aria-selected')).toBe('true');
    await page
      .getByTestId('mass-list')
      .getByText('Edited less than 15 minutes before its send time')
      .waitFor();
    await b.screenshot('ui-mass-edited-late');

    // Today's limit leaves room for one of two: the refusal shows its numbers, and letting the
    // remainder wait sends it anyway.
    const limit = await massDailyLimit(app.deps.db, org.orgId);
    await app.deps.db
      .insertInto('daily_usage')
      .values({ org_id: org.orgId, day: gmtDay(new Date()), kind: MASS, used: limit - 1 })
      .execute();
    await page.goto(`${app.url}/mass-email/new`);
    await page.getByTestId('mass-name').fill('Over the limit');
    await page.getByTestId('mass-module').selectOption('contacts');
    await page.getByTestId('mass-source').selectOption('view');
    await page.getByTestId('mass-view').selectOption({ label: 'All Contacts' });
    await expect.poll(() => page.getByTestId('mass-count').textContent()).toContain('2 will receive it.');
    await page.getByTestId('mass-template').selectOption({ label: 'Picked' });
    await page.getByTestId('mass-submit').click();
    await expect
      .poll(() => page.getByTestId('mass-limit').textContent())
      .toContain(`2 recipients, but only 1 of ${limit.toLocaleString('en-US')} are left today`);
    await b.screenshot('ui-mass-limit');
    await page.getByTestId('mass-let-wait').click();
    await page.waitForURL(/\/mass-email$/);
    await page.getByRole('tab', { name: 'Sent' }).click();
    await page.getByTestId('mass-list').getByText('Over the limit').waitFor();
    expect(b.pageErrors).toEqual([]);
  });
});
