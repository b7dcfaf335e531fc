// The BCC dropbox in the browser: an admin reads the address, adds a sender (a confirmation link is
// mailed), finds an email from an unverified sender in the unmatched list with its SPF/DKIM, and
// assigns it to a lead picked by search; the email is then the lead's.
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BounceListener, startBounceListener } from '../../src/tracking/bounces/inbound.ts';
import { login } from '../support/app.ts';
import { type BrowserApp, startBrowserApp } from './browser.ts';

// No DNS in tests: every lookup answers "no such record", so SPF and DKIM read none.
const resolver = async (name: string) => {
  throw Object.assign(new Error(`no record for ${name}`), { code: 'ENOTFOUND' });
};

// A loaded machine (tests share two cores) renders slowly: wait as long as a click would.
const poll = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: 15_000 });

describe('BCC dropbox UI', () => {
  let b: BrowserApp;
  let listener: BounceListener;
  beforeAll(async () => {
    b = await startBrowserApp();
    listener = await startBounceListener(b.app.deps, { port: 0, host: '127.0.0.1', resolver });
  });
  afterAll(async () => {
    await listener?.close();
    await b?.stop();
  });

  it('an admin sees the address, adds a sender and assigns an unmatched email to a lead', async () => {
    const { app, page } = b;
    const org = await app.createOrg();
    const api = await login(app.app, org.adminEmail, org.adminPassword);
    const leadId = (
      await api.req('POST', '/api/modules/leads/records', {
        data: { first_name: 'Lena', last_name: 'Lindqvist', email: 'lena@client.example' },
      })
    ).body.id as string;

    await b.signIn(org.adminEmail, org.adminPassword);
    await page.goto(`${app.url}/settings`);
    await page.getByRole('link', { name: 'BCC Dropbox' }).click();
    const shown = page.getByTestId('dropbox-address');
    await poll(() => shown.textContent()).toMatch(/^dropbox-[a-z2-7]{32}@localhost$/);
    const address = (await shown.textContent()) as string;
    expect((await api.req('GET', '/api/admin/dropbox')).body.address).toBe(address);

    // A sender outside the org's users gets a confirmation link.
    await page.getByLabel('Sender address').fill('rep@sender.example');
    await page.getByRole('button', { name: 'Add sender' }).click();
    await expect
      .poll(() => page.getByText('A confirmation link was sent to rep@sender.example').count())
      .toBe(1);
    await expect
      .poll(() => page.getByTestId('dropbox-senders').textContent())
      .toContain('Waiting for confirmation');
    const sent = await app.deps.db
      .selectFrom('messages')
      .select('text')
      .where('org_id', '=', org.orgId)
      .where('to_address', '=', 'rep@sender.example')
      .executeTakeFirstOrThrow();
    expect(sent.text).toContain('/dropbox/verify?token=');

    // Mail BCC'd by someone who is not a verified sender waits, unmatched.
    const transport = nodemailer.createTransport({
      host: '127.0.0.1',
      port: listener.port,
      secure: false,
      ignoreTLS: true,
    });
    await transport.sendMail({
      from: 'Someone <someone@elsewhere.example>',
      to: 'lena@client.example',
      bcc: address,
      subject: 'Our offer for Lena',
      text: 'Please find our offer.',
    });
    transport.close();
    await page.reload();
    const item = page.getByTestId('dropbox-item').filter({ hasText: 'Our offer for Lena' });
    await poll(() => item.count()).toBe(1);
    expect(await item.textContent()).toContain('not from a verified sender');
    expect(await item.getByTestId('auth-spf').textContent()).toBe('SPF none');
    expect(await item.getByTestId('auth-dkim').textContent()).toBe('DKIM none');
    await b.screenshot('dropbox-unmatched');

    await item.getByRole('button', { name: 'Assign…' }).click();
    await item.getByLabel('Find leads and contacts by name').fill('Lindq');
    await item.getByRole('checkbox', { name: /Lena Lindqvist/ }).check();
    await item.getByRole('button', { name: 'Attach to 1 record' }).click();
    await poll(() => page.getByText('The email is now attached to 1 record.').count()).toBe(1);
    await poll(() => page.getByTestId('dropbox-item').count()).toBe(0);

    // Listed among the attached emails now, with its record.
    await page.getByLabel('Show').selectOption('attached');
    const done = page.getByTestId('dropbox-item').filter({ hasText: 'Our offer for Lena' });
    await poll(() => done.textContent()).toContain('Attached to Lena Lindqvist');
    const attached = (await api.req('GET', '/api/admin/dropbox/items?state=attached')).body.items;
    expect(attached.map((i: any) => [i.subject, i.records])).toEqual([
      ['Our offer for Lena', [{ id: leadId, module: 'leads', displayName: 'Lena Lindqvist' }]],
    ]);

    // The lead's page shows it in its conversations.
    await page.goto(`${app.url}/m/leads/${leadId}`);
    const conversations = page.getByRole('region', { name: 'Conversations' });
    await poll(() => conversations.textContent()).toContain('Our offer for Lena');
    expect(b.pageErrors).toEqual([]);
  });
});
