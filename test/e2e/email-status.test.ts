// Email statuses in the browser: a lead's Emails list shows each email's status bar (a bounce in
// red), the details on hover with people and machines side by side, the lead's latest status, and
// a toast from the live feed when the lead opens an email while the page is open.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordEvents } from '../../src/tracking/events.ts';
import { login } from '../support/app.ts';
import { type BrowserApp, startBrowserApp } from './browser.ts';

describe('email status UI', () => {
  let b: BrowserApp;
  let app: BrowserApp['app'];
  let page: BrowserApp['page'];
  beforeAll(async () => {
    b = await startBrowserApp();
    ({ app, page } = b);
  });
  afterAll(() => b?.stop());

  it('shows the status bar with details on hover, the latest status, and a live toast', async () => {
    const org = await app.createOrg();
    const api = await login(app.app, org.adminEmail, org.adminPassword);
    const lead = (
      await api.req('POST', '/api/modules/leads/records', {
        data: { first_name: 'Ada', last_name: 'Lovelace', email: 'ada@engine.example' },
      })
    ).body.id as string;
    const mod = await app.deps.db
      .selectFrom('modules')
      .select('id')
      .where('org_id', '=', org.orgId)
      .where('api_name', '=', 'leads')
      .executeTakeFirstOrThrow();
    const at = (h: number) => new Date(Date.UTC(2026, 2, 2, 9 + h));
    const message = (subject: string, f: Record<string, unknown>) =>
      app.deps.db
        .insertInto('messages')
        .values({
          org_id: org.orgId,
          kind: 'individual',
          module_id: mod.id,
          record_id: lead,
          from_address: 'me@ourco.example',
          to_address: 'ada@engine.example',
          subject,
          message_id_header: `<${randomBytes(8).toString('hex')}@ourco.example>`,
          transport: 'relay',
          status: 'sent',
          expires_at: new Date(Date.now() + 3_600_000),
          tracked: true,
          ...f,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
    await message('Old address', {
      sent_at: at(0),
      created_at: at(0),
      bounced_at: at(1),
      bounce_kind: 'hard',
      bounce_reason: '5.1.1 user unknown',
    });
    const pricing = await message('Pricing', {
      sent_at: at(2),
      created_at: at(2),
      opened_at: at(3),
      last_opened_at: at(5),
      open_count: 2,
      machine_open_count: 3,
      clicked_at: at(4),
      last_clicked_at: at(4),
      click_count: 1,
      machine_click_count: 1,
    });

    await b.signIn(org.adminEmail, org.adminPassword);
    await page.goto(`${app.url}/m/leads/${lead}`);
    const list = page.getByTestId('emails-list');
    const pricingRow = list.getByRole('row').filter({ hasText: 'Pricing' });
    const bouncedRow = list.getByRole('row').filter({ hasText: 'Old address' });
    await pricingRow.getByTestId('status-bar').waitFor();
    expect(await pricingRow.getByTestId('status-bar').getAttribute('data-state')).toBe('clicked');
    expect(await pricingRow.locator('.status-step.on').allTextContents()).toEqual([
      'Sent',
      'Delivered',
      'Opened',
      'Clicked',
    ]);
    expect(await bouncedRow.locator('.status-step.bounced').textContent()).toBe('Bounced');
    expect(await page.getByTestId('latest-status').getAttribute('data-state')).toBe('clicked');

    // Details only on hover: people and machines side by side, first and last times.
    const detail = pricingRow.getByTestId('status-detail');
    expect(await detail.isVisible()).toBe(false);
    await pricingRow.getByTestId('status-bar').hover();
    await detail.waitFor({ state: 'visible' });
    expect(await detail.getByTestId('detail-opens').textContent()).toContain('2 by people · 3 by machines');
    // (ICU puts a narrow no-break space before PM)
    expect(await detail.getByTestId('detail-opens').textContent()).toMatch(
      /first Mar 2, 2026, 12:00\s?PM, last Mar 2, 2026, 2:00\s?PM/u,
    );
    expect(await detail.getByTestId('detail-clicks').textContent()).toContain(
      '1 by a person · 1 by a machine',
    );
    await b.screenshot('ui-email-status-hover');
    await bouncedRow.getByTestId('status-bar').hover();
    await bouncedRow.getByTestId('status-detail').waitFor({ state: 'visible' });
    expect(await bouncedRow.getByTestId('status-detail').textContent()).toContain('5.1.1 user unknown');

    // The lead replies while the page is open: a toast from the live feed, and the list follows.
    await app.deps.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('messages')
        .set({ replied_at: new Date() })
        .where('id', '=', pricing.id)
        .execute();
      await recordEvents(trx, [
        {
          orgId: org.orgId,
          messageId: pricing.id,
          recordId: lead,
          massEmailId: null,
          kind: 'replied',
          human: true,
          at: new Date(),
        },
      ]);
    });
    const toast = page.getByTestId('feed-toast');
    await toast.waitFor();
    expect(await toast.textContent()).toContain('Ada Lovelace replied to “Pricing”');
    await expect
      .poll(() => pricingRow.getByTestId('status-bar').getAttribute('data-state'), { timeout: 10_000 })
      .toBe('replied');
    await b.screenshot('ui-email-status-toast');
    expect(b.pageErrors).toEqual([]);
  });

  it('filters a list by email status with a time window, from the advanced filter', async () => {
    const org = await app.createOrg();
    const api = await login(app.app, org.adminEmail, org.adminPassword);
    const make = async (last: string) =>
      (
        await api.req('POST', '/api/modules/leads/records', {
          data: { last_name: last, email: `${last}@x.example` },
        })
      ).body.id as string;
    const clicked = await make('Clicker');
    await make('Silent');
    const mod = await app.deps.db
      .selectFrom('modules')
      .select('id')
      .where('org_id', '=', org.orgId)
      .where('api_name', '=', 'leads')
      .executeTakeFirstOrThrow();
    const fiveDaysAgo = new Date(Date.now() - 5 * 86_400_000);
    await app.deps.db
      .insertInto('messages')
      .values({
        org_id: org.orgId,
        kind: 'mass',
        module_id: mod.id,
        record_id: clicked,
        from_address: 'me@ourco.example',
        to_address: 'clicker@x.example',
        subject: 'Offer',
        message_id_header: `<${randomBytes(8).toString('hex')}@ourco.example>`,
        transport: 'relay',
        status: 'sent',
        expires_at: new Date(Date.now() + 3_600_000),
        tracked: true,
        sent_at: fiveDaysAgo,
        clicked_at: fiveDaysAgo,
        click_count: 1,
      })
      .execute();

    await b.signIn(org.adminEmail, org.adminPassword);
    await page.goto(`${app.url}/m/leads`);
    await page.getByRole('button', { name: 'Filter' }).click();
    const filter = page.getByRole('form', { name: 'Advanced filter' });
    await filter.getByRole('button', { name: 'Add condition' }).click();
    await filter.getByLabel('Field of condition 1').selectOption({ label: 'Email status' });
    await filter.getByLabel('Operator of condition 1').selectOption({ label: 'Clicked' });
    await filter.getByRole('button', { name: 'Apply filter' }).click();
    const rows = page.locator('table.data-table tbody tr');
    await expect.poll(() => rows.count()).toBe(1);
    await expect.poll(() => rows.first().textContent()).toContain('Clicker');

    // Clicked in the last 2 days: nobody; in the last 7: the clicker again (the filter stays open).
    await filter.getByLabel('Value of condition 1').selectOption({ label: 'in the last N days' });
    await filter.getByLabel('Days (condition 1)').fill('2');
    await filter.getByRole('button', { name: 'Apply filter' }).click();
    await page.getByText('No records match.').waitFor();
    await filter.getByLabel('Days (condition 1)').fill('7');
    await filter.getByRole('button', { name: 'Apply filter' }).click();
    await expect.poll(() => rows.count()).toBe(1);
    await b.screenshot('ui-email-status-filter');
    expect(b.pageErrors).toEqual([]);
  });
});
