// Settings → Mailbox in Chromium against a private Dovecot: test a connection (a wrong password
// says so in words), connect, see the sync's result, pause and resume, a refused password pausing
// the account with its reason, sync now, remove.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syncAccountOnce } from '../../src/mailbox/sync/worker.ts';
import { type Dovecot, rawMail, startDovecot } from '../support/dovecot.ts';
import { type BrowserApp, startBrowserApp } from './browser.ts';

describe('mailbox settings UI', () => {
  let b: BrowserApp;
  let dov: Dovecot;
  beforeAll(async () => {
    dov = await startDovecot({ users: [{ user: 'ui@test.local', password: 'ui-secret' }] });
    b = await startBrowserApp();
  });
  afterAll(async () => {
    await b?.stop();
    await dov?.stop();
  });

  it('tests, connects, shows the sync and its errors, pauses, resumes and removes a mailbox', async () => {
    const { app, page } = b;
    dov.writeMaildir('ui@test.local', 'INBOX', [
      rawMail({ from: 'client@remote.example', to: 'ui@test.local', subject: 'Hello from a client' }),
    ]);
    const org = await app.createOrg();
    await b.signIn(org.adminEmail, org.adminPassword);
    await page.goto(`${app.url}/settings`);
    await page.getByRole('link', { name: 'Mailbox' }).click();
    await page.waitForURL(/\/settings\/mailbox$/);
    await expect.poll(() => page.getByText('No mailbox connected yet.').count()).toBe(1);

    const form = page.getByRole('form', { name: 'Connect a mailbox' });
    await form.getByLabel('Security').selectOption('none');
    await form.getByLabel('Server').fill('127.0.0.1');
    await form.getByLabel('Port').fill(String(dov.imapPort));
    await form.getByLabel('User name').fill('ui@test.local');
    await form.getByLabel('Password', { exact: true }).fill('not-the-password');
    await form.getByRole('button', { name: 'Test connection' }).click();
    const result = form.getByTestId('mailbox-test-result');
    await expect
      .poll(() => result.textContent(), { timeout: 20_000 })
      .toContain('refused the user name, password or token');
    expect(await result.getAttribute('data-code')).toBe('auth');

    await form.getByLabel('Password', { exact: true }).fill('ui-secret');
    await form.getByRole('button', { name: 'Test connection' }).click();
    await expect.poll(() => result.textContent(), { timeout: 20_000 }).toContain('Connected and signed in.');
    await form.getByRole('button', { name: 'Connect', exact: true }).click();

    const row = page.getByTestId('mailbox-account');
    await expect.poll(() => row.count()).toBe(1);
    expect(await row.textContent()).toContain('ui@test.local');
    expect(await row.getByTestId('mailbox-last-sync').textContent()).toBe('Not synced yet');
    const list = await app.deps.db
      .selectFrom('mailbox_accounts')
      .select(['id'])
      .where('org_id', '=', org.orgId)
      .execute();
    expect(list).toHaveLength(1);
    const id = list[0].id;

    // A worker syncs it; the page shows when.
    expect((await syncAccountOnce(app.deps, id))?.fetched).toBe(1);
    await expect
      .poll(() => row.getByTestId('mailbox-last-sync').textContent(), { timeout: 10_000 })
      .toMatch(/^Last sync /);

    await row.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => row.getByTestId('mailbox-state').textContent()).toBe('Paused');
    await row.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => row.getByTestId('mailbox-state').textContent()).not.toBe('Paused');

    // The password is changed on the server: the next sync pauses the account and says why.
    await app.deps.db
      .updateTable('mailbox_accounts')
      .set({ username: 'nobody@test.local' })
      .where('id', '=', id)
      .execute();
    await syncAccountOnce(app.deps, id);
    const error = row.getByTestId('mailbox-error');
    await expect.poll(() => error.count(), { timeout: 10_000 }).toBe(1);
    expect(await error.getAttribute('data-code')).toBe('auth');
    expect(await error.textContent()).toContain('Correct the password or token, then resume.');
    expect(await row.getByTestId('mailbox-state').textContent()).toBe('Paused');

    await row.getByRole('button', { name: 'Sync now' }).click();
    await expect.poll(() => row.getByText('A sync starts within seconds.').count()).toBe(1);

    page.once('dialog', (d) => void d.accept());
    await row.getByRole('button', { name: 'Remove' }).click();
    await expect.poll(() => page.getByText('No mailbox connected yet.').count()).toBe(1);
    expect(b.pageErrors).toEqual([]);
  });
});
