// A real server on the test database, the built SPA and Debian's Chromium, for browser tests.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { closeSignPool } from '../../src/sending/delivery.ts';
import { startTestApp } from '../support/app.ts';
import { ensureWebBuilt } from './web-build.ts';

export const root = join(import.meta.dirname, '..', '..');
const CHROMIUM = process.env.PARLEY_CHROMIUM ?? '/usr/bin/chromium';

export async function startBrowserApp() {
  mkdirSync(join(root, 'test-results'), { recursive: true });
  ensureWebBuilt(); // before the server starts: it lists web/dist's files when it starts
  const app = await startTestApp();
  const browser = await chromium.launch({
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
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  return {
    app,
    page,
    pageErrors,
    screenshot: (name: string) =>
      page.screenshot({ path: join(root, 'test-results', `${name}.png`), fullPage: true }),
    async signIn(email: string, password: string) {
      await page.goto(`${app.url}/login`);
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(/\/m\/[a-z_]+$/);
    },
    async stop() {
      await browser.close();
      await closeSignPool(app.deps);
      await app.stop();
    },
  };
}

export type BrowserApp = Awaited<ReturnType<typeof startBrowserApp>>;
export type { Page };
