import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import type { Config } from './config.ts';
import { type EmbeddedDb, startEmbeddedPostgres } from './db/embedded.ts';
import { migrate } from './db/migrate.ts';
import { type Database, openDatabase } from './db/pool.ts';
import { type Deps, systemClock } from './deps.ts';

export interface Runtime {
  deps: Deps;
  database: Database;
  url: string;
  embedded?: EmbeddedDb;
  close(): Promise<void>;
}

/** The HMAC/encryption secret: configured, or generated once and kept in the data folder. */
export function loadSecret(config: Config): string {
  if (config.secret) return config.secret;
  const file = join(config.dataDir, 'secret');
  if (!existsSync(file)) {
    mkdirSync(config.dataDir, { recursive: true });
    writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600 });
  }
  return readFileSync(file, 'utf8').trim();
}

/** Opens the database (starting the embedded one unless PARLEY_DATABASE_URL is set) and migrates it. */
export async function openRuntime(config: Config, opts: { migrate?: boolean } = {}): Promise<Runtime> {
  const log = pino({ level: config.logLevel, base: undefined });
  let embedded: EmbeddedDb | undefined;
  let url = config.databaseUrl;
  if (!url) {
    embedded = await startEmbeddedPostgres({
      dataDir: config.dataDir,
      port: config.embeddedPgPort,
      log: (line) => log.debug({ postgres: line }),
    });
    url = embedded.url;
  }
  const database = openDatabase(url, config.dbPoolSize);
  try {
    if (opts.migrate !== false) {
      const applied = await migrate(database.pool);
      if (applied.length) log.info({ applied }, 'database migrated');
    }
  } catch (e) {
    await database.close();
    await embedded?.stop();
    throw e;
  }
  const deps: Deps = {
    db: database.db,
    clock: systemClock,
    log,
    // databaseUrl is the one in use (the embedded one too): LISTEN connections open their own.
    config: { ...config, databaseUrl: url, secret: loadSecret(config) },
  };
  return {
    deps,
    database,
    url,
    embedded,
    async close() {
      await database.close();
      await embedded?.stop();
    },
  };
}
