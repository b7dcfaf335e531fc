// The web UI end to end: a real server on the test database, the built SPA, Debian's Chromium.
// Signs in, creates a lead through the form (server validation first), filters the list with the
// advanced filter, saves it as a view, opens the record, and leaves a screenshot in test-results/.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import { ensureWebBuilt } from './web-build.ts';

const root = join(import.meta.dirname, '..', '..');
const CHROMIUM = process.env.PARLEY_CHROMIUM ?? '/usr/bin/chromium';

describe('web UI', () => {
  let app: Awaited<ReturnType<typeof startTestApp>>;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  async function newPage(): Promise<Page> {
    const context = await browser.newContext({
      viewport: { width: 1360, height: 900 },
      locale: 'en-US',
      timezoneId: 'UTC',
    });
    const p = await context.newPage();
    p.setDefaultTimeout(15_000);
    p.on('pageerror', (e) => pageErrors.push(String(e)));
    return p;
  }

  async function signIn(p: Page, email: string, password: string) {
    await p.goto(`${app.url}/login`);
    await p.getByLabel('Email').fill(email);
    await p.getByLabel('Password').fill(password);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.waitForURL(/\/m\/[a-z_]+$/);
  }

  beforeAll(async () => {
    mkdirSync(join(root, 'test-results'), { recursive: true });
    ensureWebBuilt(); // before the server starts: it lists web/dist's files when it starts
    app = await startTestApp();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await app?.stop();
  });

  it('signs in, creates a lead, filters, saves a view and opens the record', async () => {
    const org = await app.createOrg();
    const tag = Math.random().toString(36).slice(2, 8);

    // Any page asks for a login first, and comes back after it.
    await page.goto(`${app.url}/m/leads`);
    await page.waitForURL(/\/login/);
    await page.getByLabel('Email').fill(org.adminEmail);
    await page.getByLabel('Password').fill('wrong-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toBeTruthy();
    await page.getByLabel('Password').fill(org.adminPassword);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/m\/leads$/);
    const tabs = page.getByRole('navigation', { name: 'Modules' });
    for (const name of ['Leads', 'Contacts', 'Accounts', 'Deals'])
      await tabs.getByRole('link', { name }).waitFor();

    // Two leads through the API (the same session and CSRF token the UI uses), one through the form.
    await page.evaluate(async (t) => {
      const me = await (await fetch('/api/me')).json();
      for (const data of [
        {
          first_name: 'Grace',
          last_name: `Hopper-${t}`,
          company: `Analytical ${t}`,
          lead_status: 'Not Contacted',
        },
        { first_name: 'Alan', last_name: `Turing-${t}`, company: `Bletchley ${t}`, lead_status: 'Contacted' },
      ]) {
        const r = await fetch('/api/modules/leads/records', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrfToken },
          body: JSON.stringify({ data }),
        });
        if (r.status !== 201) throw new Error(`create failed: ${r.status} ${await r.text()}`);
      }
    }, tag);

    await page.getByRole('link', { name: 'New', exact: true }).click();
    await page.waitForURL(/\/m\/leads\/new$/);
    // The server's validation errors appear next to their fields.
    await page.getByLabel('Email', { exact: true }).fill('not-an-email');
    await page.getByRole('button', { name: 'Save' }).click();
    await expect.poll(() => page.locator('#f-last_name-error').textContent()).toContain('required');
    await expect.poll(() => page.locator('#f-email-error').textContent()).toContain('not a valid email');

    await page.getByLabel('First Name').fill('Ada');
    await page.getByLabel('Last Name').fill(`Lovelace-${tag}`);
    await page.getByLabel('Company').fill(`Analytical ${tag}`);
    await page.getByLabel('Email', { exact: true }).fill(`ada-${tag}@example.com`);
    await page.getByLabel('Lead Status').selectOption('Contacted');
    await page.getByLabel('Annual Revenue').fill('250000');
    await page.getByLabel('Description').fill('<script>alert(1)</script> stays text');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: `Ada Lovelace-${tag}` }).waitFor();
    expect(await page.getByText('$250,000.00').count()).toBe(1);
    expect(await page.getByText('<script>alert(1)</script> stays text').count()).toBe(1);

    // The list, filtered: Company contains "Analytical <tag>" AND Lead Status is Contacted.
    await tabs.getByRole('link', { name: 'Leads' }).click();
    await page.waitForURL(/\/m\/leads$/);
    await page.getByRole('button', { name: 'Filter' }).click();
    const filter = page.getByRole('form', { name: 'Advanced filter' });
    await filter.getByRole('button', { name: 'Add condition' }).click();
    await filter.getByLabel('Field of condition 1').selectOption('company');
    await filter.getByLabel('Operator of condition 1').selectOption('contains');
    await filter.getByLabel('Value of condition 1').fill(`Analytical ${tag}`);
    await filter.getByRole('button', { name: 'Add condition' }).click();
    await filter.getByLabel('Field of condition 2').selectOption('lead_status');
    await filter.getByLabel('Operator of condition 2').selectOption('is');
    await filter.getByLabel('Value of condition 2').selectOption(['Contacted']);
    await filter.getByRole('button', { name: 'Apply filter' }).click();
    const rows = page.locator('table.data-table tbody tr');
    await expect.poll(() => rows.count()).toBe(1);
    await expect.poll(() => rows.first().textContent()).toContain(`Lovelace-${tag}`);
    await page.getByText('1 record', { exact: true }).waitFor();

    // Sorting by a column header asks the server again, ascending then descending.
    await page.getByRole('button', { name: 'Company' }).click();
    await page.locator('th[aria-sort="ascending"]').waitFor();

    // Save as view, and the view is chosen with its criteria.
    await page.getByRole('button', { name: 'Save as view' }).click();
    await page.getByLabel('View name').fill(`Analytical ${tag}`);
    await page.getByRole('button', { name: 'Save view' }).click();
    await page.getByText(`View “Analytical ${tag}” saved.`).waitFor();
    const picker = page.getByLabel('View', { exact: true });
    await expect.poll(() => picker.locator('option:checked').textContent()).toBe(`Analytical ${tag}`);
    await expect.poll(() => rows.count()).toBe(1);
    await page.screenshot({ path: join(root, 'test-results', 'ui-list.png'), fullPage: true });

    // Export downloads the view's records as CSV.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Export CSV' }).click(),
    ]);
    const csv = readFileSync((await download.path())!, 'utf8');
    expect(csv).toContain(`Lovelace-${tag}`);
    expect(csv).not.toContain(`Turing-${tag}`);
    expect(csv).not.toContain(`Hopper-${tag}`);

    // Open the record from the list.
    await rows.first().getByRole('link').first().click();
    await page.waitForURL(/\/m\/leads\/[0-9a-f-]{36}$/);
    await page.getByRole('heading', { name: `Ada Lovelace-${tag}` }).waitFor();
    await page.getByText(`ada-${tag}@example.com`).waitFor();

    // Edit sends only the changed field; the page shows the new value.
    await page.getByRole('link', { name: 'Edit' }).click();
    await page.getByLabel('Title').fill('Countess');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: `Ada Lovelace-${tag}` }).waitFor();
    await page.getByText('Countess', { exact: true }).waitFor();
    await page.screenshot({ path: join(root, 'test-results', 'ui.png'), fullPage: true });

    expect(pageErrors).toEqual([]);
  });
  it('admin pages, import, mass update, invitations, API keys, and formats in the user locale', async () => {
    const org = await app.createOrg();
    const p = await newPage();
    await signIn(p, org.adminEmail, org.adminPassword);
    const settingsNav = p.getByRole('navigation', { name: 'Settings' });

    // A custom picklist field on Leads, then used in the lead form.
    await p.goto(`${app.url}/settings/modules`);
    await p.getByRole('link', { name: 'Leads' }).last().click();
    await p.getByRole('heading', { name: 'Fields of Leads' }).waitFor();
    await p.getByLabel('Label').fill('Tier');
    await p.getByLabel('Type').selectOption('picklist');
    await p.getByLabel('Picklist values').fill('Gold\nSilver');
    await p.getByRole('button', { name: 'Add field' }).click();
    await p.getByRole('cell', { name: 'tier', exact: true }).waitFor();

    await p.goto(`${app.url}/m/leads/new`);
    await p.getByLabel('Last Name').fill('Babbage');
    await p.getByLabel('Tier').selectOption('Gold');
    await p.getByLabel('Annual Revenue').fill('1234.5');
    await p.getByRole('button', { name: 'Save' }).click();
    await p.getByRole('heading', { name: 'Babbage' }).waitFor();
    await p.getByText('$1,234.50').waitFor();
    const babbage = p.url();

    // CSV import: mapped columns, imported count, rejected rows with line numbers and reasons.
    const rows = Array.from({ length: 52 }, (_, i) => `Napier ${i},Logs ${i},n${i}@example.com`);
    rows.splice(1, 0, 'Pascal,Calc SA,not-an-email');
    await p.goto(`${app.url}/m/leads/import`);
    await p.getByLabel('CSV file').setInputFiles({
      name: 'leads.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(`Last,Company,Mail\n${rows.join('\n')}\n`),
    });
    await p.getByLabel('Field for column Last').selectOption('last_name');
    await p.getByLabel('Field for column Mail').selectOption('email');
    await p.getByRole('button', { name: 'Import', exact: true }).click();
    await p.getByText('52 records imported · 1 row rejected').waitFor();
    const rejected = p.getByRole('region', { name: 'Result' }).locator('tbody tr');
    await expect.poll(() => rejected.count()).toBe(1);
    expect(await rejected.first().textContent()).toMatch(/^3.*not a valid email/);

    // Keyset paging: 50 rows, then "Load more".
    await p.goto(`${app.url}/m/leads`);
    await p.getByText('53 records', { exact: true }).waitFor();
    const listRows = p.locator('table.data-table tbody tr');
    await expect.poll(() => listRows.count()).toBe(50);
    await p.getByRole('button', { name: 'Load more' }).click();
    await expect.poll(() => listRows.count()).toBe(53);
    await expect.poll(() => p.getByRole('button', { name: 'Load more' }).count()).toBe(0);

    // Select all results (not only the loaded page) and mass update one field.
    await p.reload();
    await expect.poll(() => listRows.count()).toBe(50);
    await p.getByLabel('Select all on this page').check();
    await p.getByRole('button', { name: 'Select all 53 results' }).click();
    await p.getByText('53 records selected').waitFor();
    await p.getByRole('button', { name: 'Mass update' }).click();
    await p.getByLabel('Field to update').selectOption('lead_status');
    await p.getByLabel('New value').selectOption('Pre-Qualified');
    p.once('dialog', (d) => void d.accept());
    await p.getByRole('button', { name: 'Update 53 records' }).click();
    await p.getByText('53 records updated.').waitFor();

    // Invite a user; the link works in another browser.
    await p.goto(`${app.url}/settings/users`);
    await settingsNav.getByRole('link', { name: 'Users' }).waitFor();
    await p.getByLabel('Email').fill(`grace-${org.orgId.slice(0, 8)}@test.example`);
    await p.getByLabel('Name', { exact: true }).fill('Grace');
    await p.getByRole('button', { name: 'Invite', exact: true }).click();
    const link = await p.getByLabel('Invitation link').inputValue();
    expect(link).toMatch(/\/accept-invite\?token=/);
    await p.getByRole('cell', { name: 'Invited' }).waitFor();
    const invited = await newPage();
    await invited.goto(`${app.url}${new URL(link).pathname}${new URL(link).search}`);
    await invited.getByLabel('Your name').fill('Grace Hopper');
    await invited.getByLabel('New password').fill('grace-secret-1');
    await invited.getByLabel('Confirm password').fill('grace-secret-1');
    await invited.getByRole('button', { name: 'Create account' }).click();
    await invited.getByText('Grace Hopper', { exact: true }).waitFor();
    await invited.context().close();

    // An API key is shown once, then listed by prefix and revocable.
    await settingsNav.getByRole('link', { name: 'API keys' }).click();
    await p.getByLabel('Key name').fill('Zapier');
    await p.getByRole('button', { name: 'Create key' }).click();
    expect(await p.getByLabel('New API key').inputValue()).toMatch(/^pk_/);
    p.once('dialog', (d) => void d.accept());
    await p.getByRole('button', { name: 'Revoke' }).click();
    await p.getByText(/^Revoked /).waitFor();

    // The user's locale and time zone drive every number and date.
    await settingsNav.getByRole('link', { name: 'My settings' }).click();
    await p.getByLabel('Language and region').selectOption('de-DE');
    await p.getByLabel('Time zone').selectOption('Europe/Berlin');
    await p.getByRole('button', { name: 'Save', exact: true }).click();
    await p.getByText('Saved.').waitFor();
    await p.goto(babbage);
    await p.getByText(/^1\.234,50\s\$$/).waitFor();
    await p.screenshot({ path: join(root, 'test-results', 'ui-admin.png'), fullPage: true });
    await p.context().close();

    expect(pageErrors).toEqual([]);
  });
});
