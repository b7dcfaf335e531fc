// Builds web/dist for the browser tests when it is missing or older than its sources. Several test
// files (in parallel forks) may ask at once: a lock directory makes them build one at a time, and
// whoever comes second finds the build fresh and skips it (two Vite builds at once would empty
// web/dist under a server that is already serving it).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const lock = join(root, 'web', '.dist-build-lock');

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let max = st.mtimeMs;
  for (const e of readdirSync(path)) max = Math.max(max, newestMtime(join(path, e)));
  return max;
}

function fresh(): boolean {
  const built = join(root, 'web', 'dist', 'index.html');
  const sources = Math.max(
    newestMtime(join(root, 'web', 'src')),
    newestMtime(join(root, 'web', 'index.html')),
    newestMtime(join(root, 'web', 'vite.config.ts')),
  );
  return existsSync(built) && statSync(built).mtimeMs >= sources;
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function acquire() {
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(lock);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A lock left by a killed run is stale after two minutes (a build takes seconds).
      try {
        if (Date.now() - statSync(lock).mtimeMs > 120_000) rmSync(lock, { recursive: true, force: true });
      } catch {}
      if (Date.now() > deadline) throw new Error(`web build lock ${lock} held for too long`);
      sleep(200);
    }
  }
}

/** Builds web/dist unless it is up to date (about a second with Vite). */
export function ensureWebBuilt() {
  if (fresh()) return;
  acquire();
  try {
    if (fresh()) return;
    execFileSync(
      process.execPath,
      [
        join(root, 'node_modules', 'vite', 'bin', 'vite.js'),
        'build',
        '--config',
        'web/vite.config.ts',
        '--logLevel',
        'warn',
      ],
      { cwd: root, stdio: 'pipe' },
    );
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
