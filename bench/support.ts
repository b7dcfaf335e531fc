import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { loadConfig } from '../src/config.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { migrate } from '../src/db/migrate.ts';
import { openDatabase } from '../src/db/pool.ts';
import { type Deps, systemClock } from '../src/deps.ts';

/** A throwaway database for a benchmark: embedded in a temp folder, or a new one on PARLEY_DATABASE_URL. */
export async function benchDatabase(name: string) {
  let url: string;
  let cleanup: () => Promise<void>;
  const external = process.env.PARLEY_DATABASE_URL;
  if (external) {
    const db = `parley_bench_${name}_${process.pid}`;
    const admin = new pg.Client({ connectionString: external });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${db}`);
    await admin.end();
    const u = new URL(external);
    u.pathname = `/${db}`;
    url = u.toString();
    cleanup = async () => {
      const a = new pg.Client({ connectionString: external });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await a.end();
    };
  } else {
    const dir = mkdtempSync(join(tmpdir(), `parley-bench-${name}-`));
    chmodSync(dir, 0o755);
    const e = await startEmbeddedPostgres({ dataDir: dir });
    url = e.url;
    cleanup = async () => {
      await e.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  const database = openDatabase(url, 4);
  await migrate(database.pool);
  const config = loadConfig({
    PARLEY_DATABASE_URL: url,
    PARLEY_LOG_LEVEL: 'silent',
    PARLEY_SECRET: 'bench-secret-0123456789-0123456789-abcd',
  });
  const deps: Deps = { db: database.db, clock: systemClock, log: pino({ level: 'silent' }), config };
  return {
    deps,
    url,
    async close() {
      await database.close();
      await cleanup();
    },
  };
}

export function median(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export function percentile(xs: number[], p: number) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

export async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const r = await fn();
  return [performance.now() - t, r];
}
