import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
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

/** /proc/<pid>/stat from the state field on: utime is [11], stime [12], cutime [13], cstime [14]. */
const procStat = (pid: number) =>
  readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /, '')
    .split(' ');
/** USER_HZ = 100 on Linux: one tick is 10 ms. */
const TICK_MS = 10;

/** CPU time (ms) a live process on this machine has used so far (Linux). */
export function processCpuMs(pid: number): number {
  const s = procStat(pid);
  return (Number(s[11]) + Number(s[12])) * TICK_MS;
}

/**
 * CPU time (ms) used so far by the PostgreSQL server behind `deps` (postmaster, its live processes,
 * and the ones that exited): read from /proc, so it only works for a server on this machine (Linux).
 */
export async function postgresCpuMs(deps: Deps): Promise<number | null> {
  try {
    const dir = (await sql<{ d: string }>`SELECT current_setting('data_directory') AS d`.execute(deps.db))
      .rows[0].d;
    const postmaster = Number(readFileSync(join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const p = procStat(postmaster); // its own time and that of children it has reaped
    let ms = (Number(p[13]) + Number(p[14])) * TICK_MS + processCpuMs(postmaster);
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        if (Number(procStat(Number(d))[1]) === postmaster) ms += processCpuMs(Number(d));
      } catch {
        // exited meanwhile
      }
    }
    return ms;
  } catch {
    return null;
  }
}
