// Reports in the browser: the Reports page lists every report; each opens with its chart beside
// its table and a CSV download; a Sent Email Status report saved with chosen, reordered columns
// comes back with them; template settings show the template's performance.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rebuildRollups } from '../../src/reports/rollups.ts';
import { recordEvents } from '../../src/tracking/events.ts';
import { drain } from '../reports-fixture.ts';
import { insertTemplate, login, type TestOrg } from '../support/app.ts';
import { type BrowserApp, startBrowserApp } from './browser.ts';

describe('reports UI', () => {
  let b: BrowserApp;
  let app: BrowserApp['app'];
  let page: BrowserApp['page'];
  let org: TestOrg;
  let templateId: string;
  let lead: string;

  beforeAll(async () => {
    b = await startBrowserApp();
    ({ app, page } = b);
    org = await app.createOrg();
    const api = await login(app.app, org.adminEmail, org.adminPassword);
    lead = (
      await api.req('POST', '/api/modules/leads/records', {
        data: { first_name: 'Grace', last_name: 'Hopper', email: 'grace@navy.example' },
      })
    ).body.id as string;
    await api.req('POST', '/api/modules/calls/records', {
      data: {
        subject: 'Intro call',
        call_type: 'Outbound',
        call_result: 'Interested',
        call_duration_seconds: 600,
      },
    });
    templateId = await insertTemplate(app.deps, org.orgId, 'leads', {
      name: 'Welcome',
      subject: 'Welcome aboard',
      html: '<p>Hi</p>',
      text: 'Hi',
      createdBy: org.adminId,
    });
    const mod = await app.deps.db
      .selectFrom('modules')
      .select('id')
      .where('org_id', '=', org.orgId)
      .where('api_name', '=', 'leads')
      .executeTakeFirstOrThrow();
    // Hours ago, but within this month (UTC, the org's zone): early on the 1st, sends three hours
    // back fell in the month before, and the monthly rows split.
    const now = new Date();
    const step = Math.min(
      3_600_000,
      (now.getTime() - Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)) / 4,
    );
    for (let i = 0; i < 3; i++) {
      const m = await app.deps.db
        .insertInto('messages')
        .values({
          org_id: org.orgId,
          kind: 'individual',
          module_id: mod.id,
          record_id: lead,
          template_id: templateId,
          template_version: 1,
          sender_id: org.adminId,
          from_address: org.adminEmail,
          to_address: 'grace@navy.example',
          subject: `Subject ${i}`,
          message_id_header: `<${randomBytes(8).toString('hex')}@ourco.example>`,
          transport: 'relay',
          status: 'sent',
          sent_at: new Date(now.getTime() - (i + 1) * step),
          tracked: true,
          opened_at: i === 0 ? new Date() : null,
          open_count: i === 0 ? 1 : 0,
          expires_at: new Date(Date.now() + 3_600_000),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      // The open as the tracker records it (the report rollups count events).
      if (i === 0)
        await recordEvents(app.deps.db, [
          {
            orgId: org.orgId,
            messageId: m.id,
            recordId: lead,
            massEmailId: null,
            kind: 'opened',
            human: true,
            at: new Date(),
          },
        ]);
    }
    // The report rollups: the worker's passes, then the org's rebuild (the sends are in the past).
    await drain(app.deps);
    await rebuildRollups(app.deps, { orgId: org.orgId });
    await b.signIn(org.adminEmail, org.adminPassword);
  }, 120_000);
  afterAll(() => b?.stop());

  const download = async () => {
    const [d] = await Promise.all([page.waitForEvent('download'), page.getByTestId('report-csv').click()]);
    return readFileSync((await d.path()) as string, 'utf8');
  };
  const seeChartAndTable = async () => {
    await page.getByTestId('report-chart').first().locator('canvas').waitFor();
    await page.getByTestId('report-table').first().waitFor();
  };

  it('lists the reports and opens each with a chart, a table and a CSV', async () => {
    await page.getByRole('link', { name: 'Reports' }).click();
    await page.waitForURL(/\/reports$/);
    for (const path of [
      'email-analytics',
      'email-calls',
      'sent-status',
      'leaderboards',
      'template-performance',
    ])
      await page.getByTestId(`report-link-${path}`).waitFor();

    await page.getByTestId('report-link-email-calls').click();
    await seeChartAndTable();
    await page.getByTestId('report-group-by').selectOption('month');
    await page.getByTestId('report-by').selectOption('both');
    await page.getByRole('columnheader', { name: 'User' }).waitFor();
    const calls = await download();
    expect(calls.split('\n')[0]).toBe(
      'Period,User,sent,received,replied,dialledAttended,dialledUnattended,callsReceived,callsMissed,callMinutes',
    );
    expect(calls).toMatch(/,3,0,0,1,0,0,0,10\n/);

    for (const path of ['email-analytics', 'leaderboards', 'template-performance']) {
      await page.goto(`${app.url}/reports/${path}`);
      await seeChartAndTable();
      const csv = await download();
      expect(csv.length, path).toBeGreaterThan(10);
    }
    expect(b.pageErrors).toEqual([]);
  });

  it('saves a Sent Email Status report with chosen, reordered columns', async () => {
    await page.goto(`${app.url}/reports/sent-status`);
    await seeChartAndTable();
    await expect.poll(() => page.getByTestId('report-table').locator('tbody tr').count()).toBe(3);
    // Drop Sender and Record; bring Status to the front.
    await page.getByTestId('column-sender').uncheck();
    await page.getByTestId('column-record').uncheck();
    for (let i = 0; i < 4; i++) await page.getByTestId('column-left-status').click();
    const headers = () => page.getByTestId('report-table').locator('thead th').allTextContents();
    expect(await headers()).toEqual([
      'Status',
      'Recipient',
      'Subject',
      'Template',
      'Sent at',
      'Opens',
      'Clicks',
    ]);
    const csv = await download();
    expect(csv.split('\n')[0]).toBe('Status,Recipient,Subject,Template,Sent At,Opens,Clicks');
    expect(csv).toContain('opened,grace@navy.example,Subject 0,Welcome (v1)');

    await page.getByTestId('report-name').fill('My status report');
    await page.getByTestId('report-save').click();
    await page.getByText('Saved “My status report”.').waitFor();

    // A fresh page starts with every column; loading the saved report brings the choice back.
    await page.reload();
    await seeChartAndTable();
    expect((await headers()).length).toBe(9);
    await page.getByTestId('report-saved').selectOption({ label: 'My status report' });
    await expect
      .poll(headers)
      .toEqual(['Status', 'Recipient', 'Subject', 'Template', 'Sent at', 'Opens', 'Clicks']);
    await b.screenshot('reports-sent-status');
    expect(b.pageErrors).toEqual([]);
  });

  it('shows a template’s performance in its settings, version by version', async () => {
    await page.goto(`${app.url}/templates/${templateId}`);
    const perf = page.getByTestId('template-performance');
    await perf.locator('canvas').waitFor();
    await expect.poll(() => perf.getByTestId('report-table').locator('tbody tr').count()).toBe(1);
    await perf.getByRole('tab', { name: 'As count' }).click();
    await perf.locator('canvas').waitFor();
    expect(b.pageErrors).toEqual([]);
  });

  it('shows a small performance panel beside the template pickers of compose and mass email', async () => {
    await page.goto(`${app.url}/m/leads/${lead}`);
    await page.getByTestId('send-email').click();
    await page.getByTestId('compose-template').selectOption({ label: 'Welcome' });
    const mini = page.getByTestId('template-perf-mini');
    // Version 1: 3 sent, 1 of them opened, none clicked.
    await expect.poll(() => mini.locator('tbody td').allTextContents()).toEqual(['v1', '3', '33.3%', '0%']);
    await page.goto(`${app.url}/mass-email/new`);
    await page.getByTestId('mass-module').selectOption('leads');
    await page.getByTestId('mass-template').selectOption({ label: 'Welcome' });
    await expect.poll(() => page.getByTestId('template-perf-mini').locator('tbody tr').count()).toBe(1);
    expect(b.pageErrors).toEqual([]);
  });
});
