// Bundles the server (src/cli.ts and what it imports; packages stay in node_modules) into
// dist/parley.mjs, which bin/parley.mjs runs. Why: running the sources through tsx kept ~50 MB more
// memory in every process (the transformed modules and their source maps), measured on a worker.
// Returns false when esbuild is missing (bin/parley.mjs then runs the sources through tsx).
import { renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const bundlePath = join(root, 'dist', 'parley.mjs');

export async function buildServer() {
  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    return false;
  }
  // Written aside and renamed: processes starting together never read a half-written bundle.
  const tmp = `${bundlePath}.${process.pid}.tmp`;
  await esbuild.build({
    entryPoints: [join(root, 'src', 'cli.ts')],
    outfile: tmp,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    define: { PARLEY_BUNDLE: 'true' },
    logLevel: 'warning',
  });
  renameSync(tmp, bundlePath);
  return true;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildServer();
