#!/usr/bin/env node
// The package's bin. Runs the server bundle (dist/parley.mjs), rebuilt first when any source is
// newer (so a clone needs no build step, and an edit is never run stale); without esbuild, the
// sources run through tsx.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildServer, bundlePath } from '../scripts/build-server.mjs';

const src = join(import.meta.dirname, '..', 'src');
function newestSource(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestSource(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}
let fresh = false;
try {
  fresh = statSync(bundlePath).mtimeMs > newestSource(src);
} catch {}
// A failed build (a read-only install, say) falls back to the sources, which report any error.
if (fresh || (await buildServer().catch(() => false))) await import(pathToFileURL(bundlePath).href);
else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
