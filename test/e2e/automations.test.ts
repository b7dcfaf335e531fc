// Automations in the browser: an admin creates a workflow email rule and an autoresponder (the
// template picked by search, its performance beside the picker, criteria from the filter editor,
// the API's errors shown in the form), edits, switches off and deletes them; a lead created
// afterwards that matches the workflow rule is sent its email, one that does not is not.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptInvite, inviteUser } from '../../src/crm/index.ts';
import { runAutomations } from '../../src/sending/automation.service.ts';
import { adminActor, login } from '../support/app.ts';
import { type BrowserApp, startBrowserApp } from './browser.ts';

describe('automations UI', () => {
  let b: BrowserApp;
  let app: BrowserApp['app'];
  let page: BrowserApp['page'];
  beforeAll(async () => {
    b = await startBrowserApp();
    ({ app, page } = b);
  }, 120_000);
  afterAll(() => b?.stop());

  it('creates, edits, switches and deletes rules, and a matching new lead is sent the email', async () => {
    const org = await app.createOrg();
    const api = await login(app.app, org.adminEmail, org.adminPassword);
    for (const name of ['Welcome lead', 'Price list'])
      expect(
        (
          await api.req('POST', '/api/templates', {
            name,
            module: 'leads',
            subject: `${name} for {{ lead.last_name }}`,
            htmlSource: `<p>${name}, {{ lead.last_name }}</p>`,
          })
        ).status,
      ).toBe(201);
    const db = app.deps.db;
    await b.signIn(org.adminEmail, org.adminPassword);

    // The page sits among the admin's email settings.
    await page.goto(`${app.url}/settings`);
    await page
      .getByRole('navigation', { name: 'Settings' })
      .getByRole('link', { name: 'Automations' })
      .click();
    await page.getByText('No workflow rule yet.').waitFor();

    // A workflow rule: search the template, see how it did, filter, and fix what the API refuses.
    await page.getByRole('link', { name: 'New workflow rule' }).click();
    await page.getByTestId('automation-name').fill('Hot web leads');
    await page.getByTestId('automation-module').selectOption('leads');
    await page.getByTestId('automation-template-search').fill('Welc');
    await expect
      .poll(() => page.getByTestId('automation-template').locator('option').allTextContents())
      .toEqual(['—', 'Welcome lead']);
    await page.getByTestId('automation-template').selectOption({ label: 'Welcome lead' });
    const perf = page.getByTestId('template-perf-mini');
    await perf.waitFor();
    // The chosen template's versions (one, nothing sent yet) and the way to its full report.
    await expect.poll(() => perf.locator('tbody tr').allTextContents()).toEqual(['v100%0%']);
    const welcomeId = (await page.getByTestId('automation-template').inputValue()) as string;
    expect(await perf.getByRole('link', { name: 'Details' }).getAttribute('href')).toBe(
      `/reports/template-performance/${welcomeId}`,
    );
    const [pickBox, perfBox] = [
      await page.getByTestId('automation-template').boundingBox(),
      await perf.boundingBox(),
    ];
    expect(perfBox!.x).toBeGreaterThan(pickBox!.x + pickBox!.width - 1); // beside the picker, not below
    const filter = page.getByRole('form', { name: 'Advanced filter' });
    await filter.getByRole('button', { name: 'Add condition' }).click();
    await filter.getByLabel('Field of condition 1').selectOption('last_name');
    await filter.getByLabel('Operator of condition 1').selectOption('starts_with');
    await filter.getByLabel('Value of condition 1').fill('Hot');
    await filter.getByRole('button', { name: 'Apply filter' }).click();
    await expect
      .poll(() => page.getByTestId('automation-criteria').textContent())
      .toContain('Last Name starts with Hot');
    await page.getByTestId('automation-to-record').uncheck();
    await page.getByTestId('automation-save').click();
    await page.getByRole('alert').getByText('Choose who receives it: the record, users, or both').waitFor();
    expect(page.url()).toMatch(/\/settings\/automations\/new\/workflow$/);
    await page.getByTestId('automation-to-record').check();
    await b.screenshot('ui-automation-workflow-form');
    await page.getByTestId('automation-save').click();
    await page.waitForURL(/\/settings\/automations$/);
    const wfRow = page.getByTestId('workflow-rules').locator('tbody tr', { hasText: 'Hot web leads' });
    await wfRow.getByText('Last Name starts with Hot').waitFor();
    expect(await wfRow.textContent()).toContain('Welcome lead');
    expect(await wfRow.textContent()).toContain('the record');
    const wf = await db
      .selectFrom('workflow_rules')
      .selectAll()
      .where('org_id', '=', org.orgId)
      .executeTakeFirstOrThrow();
    expect(wf).toMatchObject({
      name: 'Hot web leads',
      on_create: true,
      on_edit: false,
      to_record: true,
      active: true,
    });

    // An autoresponder: a name of blanks is refused by the API, and the form says so on the field.
    await page.getByRole('link', { name: 'New autoresponder' }).click();
    await page.getByTestId('automation-name').fill('   ');
    await page.getByTestId('automation-template').selectOption({ label: 'Price list' });
    await page.getByTestId('template-perf-mini').waitFor();
    await page.getByTestId('automation-days').fill('2');
    expect(await page.getByTestId('automation-anchor').inputValue()).toBe('created_at');
    await page.getByTestId('automation-save').click();
    await page.locator('.field-error', { hasText: 'required' }).waitFor();
    await page.getByRole('alert').getByText('Give it a name (1 to 200 characters)').waitFor();
    await page.getByTestId('automation-name').fill('Day two');
    await page.getByTestId('automation-save').click();
    await page.waitForURL(/\/settings\/automations$/);
    const arRow = page.getByTestId('autoresponders').locator('tbody tr', { hasText: 'Day two' });
    await arRow.getByText('2 days after Created Time').waitFor();
    expect(await arRow.textContent()).toContain('Every record');
    await b.screenshot('ui-automations');

    // Switch it off and on, then delete it (after confirming).
    const arSwitch = arRow.getByRole('switch', { name: 'Day two is active' });
    const arActive = async () =>
      (
        await db
          .selectFrom('autoresponders')
          .select('active')
          .where('org_id', '=', org.orgId)
          .executeTakeFirstOrThrow()
      ).active;
    await arSwitch.uncheck();
    await arRow.getByText('Off').waitFor();
    expect(await arActive()).toBe(false);
    await arSwitch.check();
    await arRow.getByText('On', { exact: true }).waitFor();
    expect(await arActive()).toBe(true);
    page.once('dialog', (d) => void d.dismiss());
    await arRow.getByRole('button', { name: 'Delete' }).click();
    expect(await arRow.count()).toBe(1);
    page.once('dialog', (d) => void d.accept());
    await arRow.getByRole('button', { name: 'Delete' }).click();
    await page.getByText('No autoresponder yet.').waitFor();
    const left = await db.selectFrom('autoresponders').select('id').where('org_id', '=', org.orgId).execute();
    expect(left).toEqual([]);

    // Edit the workflow rule: the form opens with its settings, and the change is saved.
    await wfRow.getByRole('link', { name: 'Edit' }).click();
    expect(await page.getByTestId('automation-template').inputValue()).toBe(wf.template_id);
    await page.getByTestId('template-perf-mini').waitFor();
    await page.getByTestId('automation-criteria').getByText('Last Name starts with Hot').waitFor();
    await page.getByTestId('automation-name').fill('Hot leads');
    await page.getByTestId('automation-save').click();
    await page.waitForURL(/\/settings\/automations$/);
    await page.getByTestId('workflow-rules').getByText('Hot leads', { exact: true }).waitFor();

    // Two leads are created; a minute later the worker's pass sends the rule's email to the one that matches.
    for (const [last, email] of [
      ['Hot Prospect', 'hot@lead.example'],
      ['Cold Prospect', 'cold@lead.example'],
    ])
      expect(
        (await api.req('POST', '/api/modules/leads/records', { data: { last_name: last, email } })).status,
      ).toBe(201);
    // Time moves on by a minute for the rule and the records alike (the rule looks a few seconds back).
    await sql`UPDATE workflow_rules SET checked_until = checked_until - interval '1 minute' WHERE id = ${wf.id}`.execute(
      db,
    );
    await sql`UPDATE records SET created_at = created_at - interval '1 minute', updated_at = updated_at - interval '1 minute'
      WHERE org_id = ${org.orgId}`.execute(db);
    expect(await runAutomations(app.deps, { orgId: org.orgId })).toBe(1);
    const sent = await db
      .selectFrom('messages')
      .select(['to_address', 'template_id', 'kind', 'status'])
      .where('org_id', '=', org.orgId)
      .where('workflow_rule_id', '=', wf.id)
      .execute();
    expect(sent).toEqual([
      {
        to_address: 'hot@lead.example',
        template_id: wf.template_id,
        kind: 'workflow',
        status: expect.any(String),
      },
    ]);
    expect(await runAutomations(app.deps, { orgId: org.orgId })).toBe(0);

    // Switched off from the list, it sends nothing for the next matching lead.
    await page.getByTestId('workflow-rules').getByRole('switch', { name: 'Hot leads is active' }).uncheck();
    await page.getByTestId('workflow-rules').getByText('Off').waitFor();
    await api.req('POST', '/api/modules/leads/records', {
      data: { last_name: 'Hot Again', email: 'again@lead.example' },
    });
    await sql`UPDATE records SET created_at = created_at - interval '1 minute', updated_at = updated_at - interval '1 minute'
      WHERE org_id = ${org.orgId} AND data->>'last_name' = 'Hot Again'`.execute(db);
    expect(await runAutomations(app.deps, { orgId: org.orgId })).toBe(0);

    // Someone without the admin profile has no Automations entry, and the page turns them away.
    const email = `sam-${Date.now()}@test.example`;
    const invited = await inviteUser(app.deps, adminActor(org), {
      email,
      name: 'Sam Standard',
      profileId: org.standardProfileId,
    });
    await acceptInvite(app.deps, { token: invited.inviteToken, password: 'user-password-123' });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/login/);
    await b.signIn(email, 'user-password-123');
    await page.goto(`${app.url}/settings/automations`);
    await page.getByText('Only administrators can open this page.').waitFor();
    expect(
      await page
        .getByRole('navigation', { name: 'Settings' })
        .getByRole('link', { name: 'Automations' })
        .count(),
    ).toBe(0);
    expect(b.pageErrors).toEqual([]);
  });
});
