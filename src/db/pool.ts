import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { DB } from './schema.ts';

// Counts come back as int8; they fit a JS number. Dates stay 'YYYY-MM-DD' strings (no time-zone shift).
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1082, (v) => v);

export type Db = Kysely<DB>;

export interface Database {
  db: Db;
  pool: pg.Pool;
  close(): Promise<void>;
}

export function openDatabase(url: string, max = 10): Database {
  const pool = new pg.Pool({ connectionString: url, max, idleTimeoutMillis: 30_000 });
  // A pooled client that loses its server (restart, network) must not crash the process: the pool
  // hears idle clients' errors, and a checked-out client (Kysely holds one for each query and
  // transaction) gets a listener of its own, since pg emits 'error' on it as well as failing the
  // query, and an 'error' without a listener kills the process. The pool drops the broken client.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  return { db, pool, close: () => db.destroy() };
}
