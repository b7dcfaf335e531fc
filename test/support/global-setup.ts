import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { type EmbeddedDb, startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { migrate } from '../../src/db/migrate.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    dbUrl: string;
  }
}

// One real PostgreSQL for the whole run: the embedded one in a temporary folder, or, when
// PARLEY_DATABASE_URL is set, a fresh database created on that server. Tests isolate by org.
let embedded: EmbeddedDb | undefined;
let dir: string | undefined;
let dropUrl: { admin: string; name: string } | undefined;

export async function setup(project: TestProject) {
  let url: string;
  const external = process.env.PARLEY_DATABASE_URL;
  if (external) {
    const name = `parley_test_${process.pid}_${Date.now()}`;
    const admin = new pg.Client({ connectionString: external });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    await admin.end();
    const u = new URL(external);
    u.pathname = `/${name}`;
    url = u.toString();
    dropUrl = { admin: external, name };
  } else {
    dir = mkdtempSync(join(tmpdir(), 'parley-test-'));
    chmodSync(dir, 0o755); // the postgres user must be able to enter it
    embedded = await startEmbeddedPostgres({ dataDir: dir, database: 'parley_test' });
    url = embedded.url;
  }
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  await migrate(pool);
  await pool.end();
  process.env.PARLEY_TEST_DB_URL = url;
  project.provide('dbUrl', url);
}

export async function teardown() {
  await embedded?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (dropUrl) {
    const admin = new pg.Client({ connectionString: dropUrl.admin });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(dropUrl.name)} WITH (FORCE)`);
    await admin.end();
  }
}
