// Webhooks and trigger actions in the browser: an admin adds an endpoint and sees its secret once,
// reads a delivery's response code in the log; a mass email's creator sets trigger actions on its
// edit page; a fired trigger shows in the record's history with the mass email's name.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../src/crm/index.ts';
import { fireTriggers } from '../../src/sending/triggers.ts';
import { recordEvents } from '../../src/tracking/events.ts';
import { deliverDueWebhooks } from '../../src/webhooks/dispatcher.ts';
import { createEndpoint, sendTestEvent } from '../../src/webhooks/service.ts';
import { adminActor, insertTemplate, login } from '../support/app.ts';
import { type BrowserApp, startBrowserApp } from './browser.ts';

describe('webhooks and trigger actions UI', () => {
  let b: BrowserApp;
  let app: BrowserApp['app'];
  let page: BrowserApp['page'];
  const received: string[] = [];
  const receiver = createServer((req, res) => {
    received.push(req.url ?? '');
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  beforeAll(async () => {
    b = await startBrowserApp();
    ({ app, page } = b);
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    await b?.stop();
    await new Promise((r) => receiver.close(r));
  });

  it('adds an endpoint, shows its secret once, and logs deliveries', async () => {
    const org = await app.createOrg();
    await b.signIn(org.adminEmail, org.adminPassword);
    await page.goto(`${app.url}/settings/webhooks`);
    await page.getByTestId('webhook-url').fill('https://hooks.example.com/parley');
    await page.getByRole('checkbox', { name: 'Bounced' }).first().check();
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    const secret = page.getByTestId('webhook-secret');
    await expect.poll(() => secret.textContent()).toMatch(/whsec_[A-Za-z0-9_-]{43}/);
    expect(await secret.textContent()).toContain('Parley-Signature');
    await page.getByRole('button', { name: 'I have copied it' }).click();
    await expect.poll(() => secret.count()).toBe(0);

    // A refused target says why, next to the URL.
    await page.getByTestId('webhook-url').fill('https://127.0.0.1/hook');
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    await expect.poll(() => page.getByText('private or loopback').count()).toBeGreaterThan(0);

    // An endpoint on this machine (the operator's setting, here for the test), a test event sent.
    const local = { ...app.deps, config: { ...app.deps.config, webhooksAllowPrivate: true } };
    const actor: Actor = adminActor(org);
    const port = (receiver.address() as AddressInfo).port;
    const { endpoint } = await createEndpoint(local, actor, {
      url: `http://127.0.0.1:${port}/ui-hook`,
      events: ['opened'],
    });
    await sendTestEvent(local, actor, endpoint.id);
    await deliverDueWebhooks(local);
    expect(received).toContain('/ui-hook');
    await page.reload();
    const row = page.getByTestId('webhook-endpoint').filter({ hasText: '/ui-hook' });
    await row.getByRole('button', { name: 'Delivery log' }).click();
    const log = row.getByTestId('webhook-log');
    await expect.poll(() => log.locator('tbody tr').count()).toBe(1);
    const cells = await log.locator('tbody tr td').allTextContents();
    expect(cells.slice(1, 4)).toEqual(['Test', 'Delivered', '200']);
    expect(cells[4]).toMatch(/^\d+ ms$/);
    await log.locator('tbody tr td button').first().click();
    await expect.poll(() => row.getByTestId('webhook-delivery').textContent()).toContain('#1 at');
    await b.screenshot('webhooks-log');
    expect(b.pageErrors).toEqual([]);
  });

  it('sets trigger actions on a mass email and shows what they did in the record history', async () => {
    const org = await app.createOrg({ edition: 'enterprise' });
    const api = await login(app.app, org.adminEmail, org.adminPassword);
    const lead = (
      await api.req('POST', '/api/modules/leads/records', {
        data: { last_name: 'Hopper', email: 'grace@navy.example', lead_status: 'Not Contacted' },
      })
    ).body.id as string;
    const leads = await app.deps.db
      .selectFrom('modules')
      .select('id')
      .where('org_id', '=', org.orgId)
      .where('api_name', '=', 'leads')
      .executeTakeFirstOrThrow();
    const templateId = await insertTemplate(app.deps, org.orgId, 'leads', {
      subject: 'Hi',
      html: '<p>Hi</p>',
      text: 'Hi',
    });
    const mass = await app.deps.db
      .insertInto('mass_emails')
      .values({
        org_id: org.orgId,
        module_id: leads.id,
        created_by: org.adminId,
        name: 'Autumn launch',
        template_id: templateId,
        from_choice: JSON.stringify({ kind: 'user' }),
        audience: JSON.stringify({ kind: 'ids', ids: [lead] }),
        status: 'sent',
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await b.signIn(org.adminEmail, org.adminPassword);
    await page.goto(`${app.url}/mass-email/${mass.id}/edit`);
    const opened = page.getByTestId('trigger-opened');
    for (let i = 0; i < 3; i++) await opened.getByRole('button', { name: 'Add a field update' }).click();
    // The limit: a fourth cannot be added.
    expect(await opened.getByRole('button', { name: 'Add a field update' }).count()).toBe(0);
    await opened.getByRole('button', { name: 'Remove' }).nth(2).click();
    await opened.getByRole('button', { name: 'Remove' }).nth(1).click();
    await opened.getByLabel('Field').selectOption('lead_status');
    await opened.locator('#trg-opened-f0').selectOption('Contacted');
    await opened.getByRole('button', { name: 'Add a task' }).click();
    await opened.getByLabel('Subject').fill('Call Grace');
    // Bounced offers field updates only.
    expect(
      await page.getByTestId('trigger-bounced').getByRole('button', { name: 'Add a task' }).count(),
    ).toBe(0);
    await b.screenshot('trigger-actions');
    await page.getByTestId('triggers-save').click();
    await expect.poll(() => page.getByText('Trigger actions saved.').count()).toBe(1);
    const saved = await api.req('GET', `/api/mass-emails/${mass.id}/triggers`);
    expect(saved.body.opened).toMatchObject({
      fieldUpdates: [{ field: 'lead_status', value: 'Contacted' }],
      tasks: [{ subject: 'Call Grace', dueInDays: 1, assignee: 'record_owner' }],
    });

    const msg = await app.deps.db
      .insertInto('messages')
      .values({
        org_id: org.orgId,
        kind: 'mass',
        module_id: leads.id,
        record_id: lead,
        mass_email_id: mass.id,
        from_address: 'me@ourco.example',
        to_address: 'grace@navy.example',
        subject: 'Hi',
        message_id_header: `<${randomBytes(8).toString('hex')}@ourco.example>`,
        transport: 'relay',
        status: 'sent',
        sent_at: new Date(),
        expires_at: new Date(Date.now() + 3_600_000),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await recordEvents(app.deps.db, [
      {
        orgId: org.orgId,
        messageId: msg.id,
        recordId: lead,
        massEmailId: mass.id,
        kind: 'opened',
        human: true,
        at: new Date(),
      },
    ]);
    for (let i = 0; i < 50 && (await fireTriggers(app.deps)) !== 0; i++);
    await page.goto(`${app.url}/m/leads/${lead}`);
    const history = page.getByTestId('record-history');
    await expect.poll(() => history.textContent()).toContain('Mass email "Autumn launch" was opened');
    expect(await history.textContent()).toContain('set Lead Status to Contacted');
    expect(await history.textContent()).toContain('task "Call Grace"');
    expect(b.pageErrors).toEqual([]);
  });
});
