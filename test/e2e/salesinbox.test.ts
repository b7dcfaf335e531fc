// SalesInbox in a real browser: filter the CRM mail by a sales condition of the linked lead, add a
// coloured label, set a ResponseWatch on a sent email; the bell counts a reminder.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorForUser, createRecord } from '../../src/crm/index.ts';
import { checkResponseWatches } from '../../src/mailbox/inbox/watches.ts';
import { deliver, mailbox } from '../salesinbox-fixtures.ts';
import { type BrowserApp, startBrowserApp } from './browser.ts';

let b: BrowserApp;
let adminEmail: string;
let adminPassword: string;
let orgId: string;
let adminId: string;
let tinaId: string;
const hour = 3_600_000;

beforeAll(async () => {
  b = await startBrowserApp();
  const deps = b.app.deps;
  const org = await b.app.createOrg();
  ({ adminEmail, adminPassword, orgId, adminId } = org);
  const actor = await actorForUser(deps, { userId: adminId });
  if (!actor) throw new Error('no actor');
  const tag = randomBytes(3).toString('hex');
  tinaId = (
    await createRecord(deps, actor, 'leads', {
      data: {
        first_name: 'Tina',
        last_name: 'Trade',
        email: `tina-${tag}@fair.example`,
        lead_source: 'Trade Show',
      },
    })
  ).id;
  await createRecord(deps, actor, 'leads', {
    data: {
      first_name: 'Walt',
      last_name: 'Web',
      email: `walt-${tag}@web.example`,
      lead_source: 'Web Download',
    },
  });
  const box = await mailbox(deps, orgId, adminId, `me-${tag}@acme.example`);
  const t0 = Date.now() - 10 * hour;
  await deliver(deps, orgId, box, {
    from: `tina-${tag}@fair.example`,
    fromName: 'Tina Trade',
    to: [box.address],
    subject: 'Great meeting at the booth',
    date: new Date(t0),
  });
  await deliver(deps, orgId, box, {
    from: `walt-${tag}@web.example`,
    fromName: 'Walt Web',
    to: [box.address],
    subject: 'Whitepaper question',
    date: new Date(t0 + hour),
  });
  await deliver(deps, orgId, box, {
    from: box.address,
    to: [`tina-${tag}@fair.example`],
    subject: 'Your quote',
    date: new Date(t0 + 2 * hour),
  });
  await deliver(deps, orgId, box, {
    from: `promo-${tag}@shop.example`,
    to: [box.address],
    subject: 'Big sale',
    date: new Date(t0 + 3 * hour),
  });
}, 120_000);
afterAll(() => b?.stop());

describe('SalesInbox (browser)', () => {
  it('filters by a sales condition, labels an email and sets a ResponseWatch', async () => {
    const { page } = b;
    await b.signIn(adminEmail, adminPassword);
    await page.getByRole('link', { name: 'SalesInbox' }).click();
    await page.waitForURL(/\/inbox$/);
    const rows = page.getByTestId('inbox-row');
    await expect.poll(() => rows.count()).toBe(3);
    await page.getByRole('tab', { name: 'Other mail' }).click();
    await expect.poll(() => rows.allInnerTexts()).toEqual([expect.stringContaining('Big sale')]);
    await page.getByRole('tab', { name: 'CRM mail' }).click();
    await expect.poll(() => rows.count()).toBe(3);

    // Sales condition: mail with leads whose Lead Source is Trade Show.
    await page.getByRole('button', { name: 'Filter', exact: true }).click();
    await page.getByLabel('Mail with').selectOption('leads');
    const filter = page.getByRole('form', { name: 'Advanced filter' });
    await filter.getByRole('button', { name: /Add condition/ }).click();
    await filter.getByLabel('Field of condition 1').selectOption('lead_source');
    await filter.getByLabel('Value of condition 1').selectOption(['Trade Show']);
    await filter.getByRole('button', { name: 'Apply filter' }).click();
    await expect
      .poll(() => rows.allInnerTexts())
      .toEqual([
        expect.stringContaining('Your quote'),
        expect.stringContaining('Great meeting at the booth'),
      ]);
    // Mixed with an email condition: only what was received.
    await page.getByLabel('Direction').selectOption('in');
    await page
      .getByRole('form', { name: 'Email conditions' })
      .getByRole('button', { name: 'Apply', exact: true })
      .click();
    await expect
      .poll(() => rows.allInnerTexts())
      .toEqual([expect.stringContaining('Great meeting at the booth')]);
    await page
      .getByRole('form', { name: 'Email conditions' })
      .getByRole('button', { name: 'Clear', exact: true })
      .click();
    await expect.poll(() => rows.count()).toBe(2);

    // A label, created and put on an email.
    await page.getByRole('button', { name: 'Labels', exact: true }).click();
    await page.getByLabel('Label name').fill('Hot lead');
    await page.getByLabel('Colour', { exact: true }).selectOption('red');
    await page.getByRole('button', { name: 'Add label' }).click();
    await expect.poll(() => page.locator('.label-list .label-chip.label-red').textContent()).toBe('Hot lead');
    await page.getByRole('button', { name: 'Great meeting at the booth' }).click();
    await page.getByRole('group', { name: 'Labels' }).getByLabel('Hot lead').click();
    await expect
      .poll(() => rows.filter({ hasText: 'Great meeting' }).locator('.label-chip.label-red').textContent())
      .toBe('Hot lead');

    // ResponseWatch on the sent email.
    await page.getByRole('button', { name: 'Your quote' }).click();
    await expect
      .poll(() => page.getByRole('region', { name: 'Email', exact: true }).textContent())
      .toContain('Your quote');
    await page.getByLabel('How long').fill('3');
    await page.getByLabel('Unit').selectOption('hours');
    await page.getByRole('button', { name: 'Set reminder' }).click();
    await expect.poll(() => page.getByTestId('watch-state').textContent()).toContain('Reminder set');
    await expect.poll(() => rows.filter({ hasText: 'Your quote' }).textContent()).toContain('Awaiting reply');
    await b.screenshot('salesinbox');

    // When it comes due with no reply, the bell counts the reminder (the worker runs on a later clock).
    const later = { ...b.app.deps, clock: { now: () => new Date(Date.now() + 4 * hour) } };
    await checkResponseWatches(later);
    await page.reload();
    await expect.poll(() => page.getByTestId('bell-count').textContent()).toBe('1');
    await page.getByRole('button', { name: /Notifications: 1 unread/ }).click();
    await expect
      .poll(() => page.getByRole('dialog', { name: 'Notifications' }).textContent())
      .toContain('No reply: Your quote');
  });

  it('sets a ResponseWatch on an email Parley sent, from the record’s Emails list', async () => {
    const { page } = b;
    const deps = b.app.deps;
    const mod = await deps.db
      .selectFrom('modules')
      .select('id')
      .where('org_id', '=', orgId)
      .where('api_name', '=', 'leads')
      .executeTakeFirstOrThrow();
    await deps.db
      .insertInto('messages')
      .values({
        org_id: orgId,
        kind: 'individual',
        sender_id: adminId,
        module_id: mod.id,
        record_id: tinaId,
        from_address: adminEmail,
        to_address: 'tina@fair.example',
        subject: 'Brochure from Parley',
        text: 'Hello',
        message_id_header: `<e2e.${randomBytes(6).toString('hex')}@parley.test>`,
        transport: 'relay',
        status: 'sent',
        sent_at: new Date(),
        expires_at: new Date(Date.now() + 86_400_000),
      })
      .execute();
    await page.goto(`${b.app.url}/m/leads/${tinaId}`);
    await page.getByTestId('emails-list').getByRole('button', { name: 'Brochure from Parley' }).click();
    await page.getByLabel('How long').fill('2');
    await page.getByLabel('Unit').selectOption('days');
    await page.getByRole('button', { name: 'Set reminder' }).click();
    await expect.poll(() => page.getByTestId('watch-state').textContent()).toContain('Reminder set');
    const w = await deps.db
      .selectFrom('response_watches')
      .select(['state', 'record_id'])
      .where('org_id', '=', orgId)
      .where('subject', '=', 'Brochure from Parley')
      .executeTakeFirstOrThrow();
    expect(w).toEqual({ state: 'waiting', record_id: tinaId });
  });
});
