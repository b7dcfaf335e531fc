// Templates in the browser: a real server on the test database, the built SPA, Debian's Chromium.
// Writes a template (an unknown merge field is refused first), previews it against a lead in the
// sandboxed frame (its <script> never runs), saves a second version and views the first again.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../support/app.ts';
import { ensureWebBuilt } from './web-build.ts';

const root = join(import.meta.dirname, '..', '..');
const CHROMIUM = process.env.PARLEY_CHROMIUM ?? '/usr/bin/chromium';

describe('templates UI', () => {
  let app: Awaited<ReturnType<typeof startTestApp>>;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    mkdirSync(join(root, 'test-results'), { recursive: true });
    ensureWebBuilt(); // before the server starts: it lists web/dist's files when it starts
    app = await startTestApp();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-sync',
      ],
    });
    const context = await browser.newContext({
      viewport: { width: 1440, height: 1000 },
      locale: 'en-US',
      timezoneId: 'UTC',
    });
    page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (e) => pageErrors.push(String(e)));
  });

  afterAll(async () => {
    await browser?.close();
    await app?.stop();
  });

  it('creates a template, previews it against a lead and saves a second version', async () => {
    const org = await app.createOrg();
    const tag = Math.random().toString(36).slice(2, 8);
    await page.goto(`${app.url}/login`);
    await page.getByLabel('Email').fill(org.adminEmail);
    await page.getByLabel('Password').fill(org.adminPassword);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/m\/[a-z_]+$/);
    // A lead to preview with, created through the API with the page's own session.
    await page.evaluate(async (t) => {
      const me = await (await fetch('/api/me')).json();
      const r = await fetch('/api/modules/leads/records', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrfToken },
        body: JSON.stringify({
          data: { first_name: 'Grace', last_name: `Hopper-${t}`, company: 'Navy <&> Co' },
        }),
      });
      if (r.status !== 201) throw new Error(`create failed: ${r.status}`);
      // The preview frame's script, if it ever ran, would tell the page.
      (window as unknown as { ran: string[] }).ran = [];
      window.addEventListener('message', (e) =>
        (window as unknown as { ran: string[] }).ran.push(String(e.data)),
      );
    }, tag);

    await page.getByRole('link', { name: 'Templates' }).click();
    await page.waitForURL(/\/templates$/);
    await page.getByText('No templates here yet.').waitFor();
    await page.getByRole('link', { name: 'New template' }).click();
    await page.waitForURL(/\/templates\/new$/);

    await page.getByLabel('Template name').fill(`Intro ${tag}`);
    await page.getByLabel('Subject').fill('Hello {{ lead.frist_name }}');
    await page
      .getByLabel('HTML body')
      .fill(
        '<style>.hi { color: #c00 }</style><p class="hi">Dear {{ lead.first_name | default: "friend" }} at {{ lead.company }}</p><script>parent.postMessage("script ran", "*")</script>',
      );
    await page.getByLabel('Comment').fill('first cut');
    await page.getByRole('button', { name: 'Save' }).click();
    // The unknown field is refused at save time, next to the subject.
    await expect.poll(() => page.locator('#tpl-subject-error').textContent()).toContain('lead.frist_name');
    await page.getByRole('alert').filter({ hasText: 'Unknown merge field: lead.frist_name' }).waitFor();

    // Fixed with the merge-field picker: the field goes where the cursor is.
    await page.getByLabel('Subject').fill('Hello ');
    await page.getByLabel('Subject').focus();
    await page.getByLabel('Merge field', { exact: true }).selectOption('lead.first_name');
    await page.getByRole('button', { name: 'Insert' }).click();
    await expect.poll(() => page.getByLabel('Subject').inputValue()).toBe('Hello {{ lead.first_name }}');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.waitForURL(/\/templates\/[0-9a-f-]{36}$/);
    await page.getByRole('heading', { name: `Intro ${tag}` }).waitFor();

    // Preview against the lead: merged, escaped, in a sandboxed frame where no script runs.
    const preview = page.getByRole('region', { name: 'Preview', exact: true });
    await preview.getByRole('combobox').fill(`Hopper-${tag}`);
    await preview.getByRole('option', { name: `Grace Hopper-${tag}` }).click();
    await preview.getByRole('button', { name: 'Preview' }).click();
    await expect.poll(() => preview.getByTestId('preview-subject').textContent()).toBe('Hello Grace');
    const frame = preview.locator('iframe.tpl-frame');
    expect(await frame.getAttribute('sandbox')).toBe('');
    const srcdoc = (await frame.getAttribute('srcdoc')) ?? '';
    expect(srcdoc).toContain('<p class="hi" style="color: #c00;">Dear Grace at Navy &lt;&amp;&gt; Co</p>');
    expect(srcdoc).toContain('Content-Security-Policy');
    await expect
      .poll(() => page.frameLocator('iframe.tpl-frame').first().locator('p.hi').textContent())
      .toBe('Dear Grace at Navy <&> Co');
    await preview.getByText('Plain-text version').click();
    await preview.getByText('Dear Grace at Navy <&> Co').last().waitFor();

    // A second version, with its comment.
    await page.getByLabel('Subject').fill('Hi again {{ lead.first_name }}');
    await page.getByLabel('Comment').fill('friendlier subject');
    await page.getByRole('button', { name: 'Save as new version' }).click();
    await page.getByText('Saved as version 2.').waitFor();
    const versions = page.getByRole('region', { name: 'Versions' });
    const rows = versions.locator('tbody tr');
    await expect.poll(() => rows.count()).toBe(2);
    await expect.poll(() => rows.first().textContent()).toContain('friendlier subject');
    await expect.poll(() => rows.nth(1).textContent()).toContain('first cut');

    // Version 1 is still there, as it was, and merges with the lead too.
    await versions.getByRole('button', { name: 'View version 1' }).click();
    await versions.getByRole('heading', { name: 'Version 1' }).waitFor();
    await expect
      .poll(() => versions.getByTestId('preview-subject').textContent())
      .toBe('Hello {{ lead.first_name }}');
    await versions.getByRole('button', { name: 'Preview with the record' }).click();
    await expect.poll(() => versions.getByTestId('preview-subject').textContent()).toBe('Hello Grace');
    await expect
      .poll(() => page.frameLocator('.tpl-version-view iframe').locator('p.hi').textContent())
      .toBe('Dear Grace at Navy <&> Co');
    await page.screenshot({ path: join(root, 'test-results', 'ui-templates.png'), fullPage: true });

    // The list shows it at version 2.
    await page.getByRole('link', { name: '← All templates' }).click();
    const listRow = page.locator('table.data-table tbody tr').filter({ hasText: `Intro ${tag}` });
    await expect.poll(() => listRow.textContent()).toContain('Hi again {{ lead.first_name }}');
    await page.screenshot({ path: join(root, 'test-results', 'ui-templates-list.png') });
    expect(await page.evaluate(() => (window as unknown as { ran?: string[] }).ran ?? [])).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
