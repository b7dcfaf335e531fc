// Individual email in the browser: compose from a template on a lead's page, preview, send, see it
// as sent in the lead's Emails list and in the Outbox; then write one from scratch; then add an
// organization address in the settings and see it waiting for confirmation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliverDue } from '../../src/sending/delivery.ts';
import { login } from '../support/app.ts';
import { type BrowserApp, startBrowserApp } from './browser.ts';

describe('email UI', () => {
  let b: BrowserApp;
  let app: BrowserApp['app'];
  let page: BrowserApp['page'];
  beforeAll(async () => {
    b = await startBrowserApp();
    ({ app, page } = b);
  });
  afterAll(() => b?.stop());

  it('sends a template to a lead from its page, and shows it sent and in the outbox', async () => {
    const org = await app.createOrg();
    const api = await login(app.app, org.adminEmail, org.adminPassword);
    const lead = await api.req('POST', '/api/modules/leads/records', {
      data: { first_name: 'Ada', last_name: 'Lovelace', email: 'ada@engine.example' },
    });
    const tpl = await api.req('POST', '/api/templates', {
      name: 'Hello note',
      module: 'leads',
      subject: 'Hello {{ lead.first_name }}',
      htmlSource: '<p>Dear {{ lead.first_name }}, greetings from {{ sender.name }}.</p>',
    });
    expect(tpl.status).toBe(201);

    await b.signIn(org.adminEmail, org.adminPassword);
    await page.goto(`${app.url}/m/leads/${lead.body.id}`);
    await page.getByTestId('send-email').click();
    await page.getByTestId('compose-template').selectOption({ label: 'Hello note' });
    await page.getByRole('button', { name: 'Preview' }).click();
    await expect.poll(() => page.getByTestId('preview-subject').textContent()).toBe('Hello Ada');
    await page.getByTestId('compose-send').click();
    await page.getByText('The email is on its way.').waitFor();
    await b.screenshot('ui-email-compose');

    await deliverDue(app.deps, { orgId: org.orgId });
    await expect
      .poll(async () => page.getByTestId('emails-list').getByTestId('email-status').first().textContent(), {
        timeout: 10_000,
      })
      .toBe('Sent');
    await page.getByRole('button', { name: 'Hello Ada' }).click();
    await page.getByRole('region', { name: 'Message' }).first().waitFor();

    // From scratch, with the editor.
    await page.getByTestId('send-email').click();
    await page.getByTestId('compose-subject').fill('A quick word');
    await page.getByTestId('compose-body').click();
    await page.keyboard.type('Shall we meet on Friday?');
    await page.getByTestId('compose-send').click();
    await page.getByText('The email is on its way.').waitFor();
    await deliverDue(app.deps, { orgId: org.orgId });

    await page.getByRole('link', { name: 'Outbox' }).click();
    await page.waitForURL(/\/outbox$/);
    await page.getByTestId('outbox-list').getByRole('link', { name: 'Hello Ada' }).click();
    await page.getByTestId('outbox-frame').waitFor();
    await b.screenshot('ui-email-outbox');
    await page.goto(`${app.url}/outbox`);
    await page.getByTestId('outbox-list').getByRole('link', { name: 'A quick word' }).waitFor();

    await page.goto(`${app.url}/settings/email`);
    await page.getByTestId('org-address-email').fill('support@engine.example');
    await page.getByRole('button', { name: 'Add address' }).click();
    await page.getByTestId('org-addresses').getByText('Waiting for confirmation').waitFor();
    await page.getByTestId('usage').waitFor();
    await b.screenshot('ui-email-settings');
    expect(b.pageErrors).toEqual([]);
  });
});
