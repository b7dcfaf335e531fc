// `npm run bench:startup`: how long `parley start` takes to answer /health on a fresh data folder and
// on an existing one (issue target: < 5 s on an existing data dir).
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../src/db/embedded.ts';

async function startOnce(dataDir: string): Promise<number> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, ['bin/parley.mjs', 'start', '--no-demo'], {
    env: { ...process.env, PARLEY_DATA_DIR: dataDir, PARLEY_PORT: String(port), PARLEY_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    while (performance.now() - t0 < 60_000) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/health`);
        if (r.status === 200) return performance.now() - t0;
      } catch {}
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error('parley start did not become ready within 60 s');
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGINT');
    await exited;
  }
}

const dir = mkdtempSync(join(tmpdir(), 'parley-startup-'));
chmodSync(dir, 0o755);
try {
  const first = await startOnce(dir);
  const again: number[] = [];
  for (let i = 0; i < 3; i++) again.push(await startOnce(dir));
  again.sort((a, b) => a - b);
  console.log(
    `startup: ${again[1].toFixed(0)} ms ready on an existing data dir (first start ${first.toFixed(0)} ms)`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
