// The top bar holds six modules and six tools: at common laptop widths every one stays on screen.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BrowserApp, startBrowserApp } from './browser.ts';

let b: BrowserApp;
beforeAll(async () => {
  b = await startBrowserApp();
  const org = await b.app.createOrg();
  await b.signIn(org.adminEmail, org.adminPassword);
}, 120_000);
afterAll(() => b?.stop());

describe('top bar', () => {
  for (const width of [1280, 1440]) {
    it(`shows every module tab and tool link whole at ${width} px`, async () => {
      await b.page.setViewportSize({ width, height: 900 });
      const links = b.page.locator('header.topbar a');
      await expect.poll(() => b.page.locator('.module-tabs a').count()).toBeGreaterThanOrEqual(6);
      const boxes = await links.evaluateAll((els) =>
        els.map((e) => {
          const r = e.getBoundingClientRect();
          const nav = e.closest('nav');
          const n = nav?.getBoundingClientRect();
          return { text: e.textContent, left: r.left, right: r.right, navRight: n ? n.right : null };
        }),
      );
      for (const x of boxes) {
        expect(x.left, x.text ?? '').toBeGreaterThanOrEqual(0);
        expect(x.right, x.text ?? '').toBeLessThanOrEqual(width);
        if (x.navRight !== null)
          expect(x.right, `${x.text} inside its nav`).toBeLessThanOrEqual(x.navRight + 0.5);
      }
    });
  }
});
