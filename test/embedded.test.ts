import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { checkReachableByPostgres, startEmbeddedPostgres } from '../src/db/embedded.ts';

const isRoot = process.getuid?.() === 0;
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'parley-emb-'));
  chmodSync(d, 0o755);
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('embedded PostgreSQL', () => {
  it.runIf(isRoot)('names the folder and the fix when the postgres user cannot reach the data dir', () => {
    const parent = tmp();
    chmodSync(parent, 0o700);
    expect(() => checkReachableByPostgres(join(parent, 'data'), 'data folder')).toThrow(
      new RegExp(`${parent}.*not searchable.*PARLEY_DATA_DIR.*chmod o\\+x ${parent}`),
    );
  });

  it('keeps its data across restarts, and recovers after its parent process was killed', async () => {
    const dir = tmp();
    const first = await startEmbeddedPostgres({ dataDir: dir });
    const c = new pg.Client({ connectionString: first.url });
    await c.connect();
    await c.query('CREATE TABLE kept (v text)');
    await c.query("INSERT INTO kept VALUES ('still here')");
    await c.end();
    await first.stop();

    // A process that starts Postgres and is then SIGKILLed leaves an orphaned postmaster behind.
    const child = spawn(process.execPath, ['bin/run-ts.mjs', 'test/support/hold-embedded.ts', dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((ok) => child.stdout.on('data', (d) => String(d).includes('up') && ok()));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const again = await startEmbeddedPostgres({ dataDir: dir });
    const c2 = new pg.Client({ connectionString: again.url });
    await c2.connect();
    expect((await c2.query('SELECT v FROM kept')).rows).toEqual([{ v: 'still here' }]);
    await c2.end();
    await again.stop();
  });

  it('reports a data dir it cannot create', async () => {
    const dir = tmp();
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    await expect(startEmbeddedPostgres({ dataDir: join(file, 'data') })).rejects.toThrow(
      /Cannot create the data folder .*PARLEY_DATA_DIR/,
    );
  });
});
