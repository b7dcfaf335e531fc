import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DEMO_ADMIN } from '../../src/crm/seed.ts';
import { recordFaults } from './tally.ts';

// The embedded database's data folder on a read-only or full filesystem. `parley start` must say
// what is wrong and exit non-zero (never hang, never start half-way); a disk that fills up while
// Parley runs must fail the writes with a clear error and leave the process up; and once the
// folder is writable again, everything written before is intact and Parley starts.
//
// Real filesystems: a small tmpfs mounted for the test (read-only by remounting it, full by filling
// it), which needs root. Without root (or without the right to mount) the file is skipped: making a
// filesystem read-only or full for a non-root user would need FUSE or a loop device, i.e. root too.

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
let mnt = '';
let skipReason = isRoot ? '' : 'not root: mounting a small tmpfs needs root';
if (!skipReason) {
  const parent = mkdtempSync(join(tmpdir(), 'parley-disk-'));
  chmodSync(parent, 0o755); // the postgres user must be able to walk down to the data folder
  mnt = join(parent, 'fs');
  mkdirSync(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=160m,mode=755', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (e) {
    skipReason = `cannot mount a tmpfs here: ${(e as { stderr?: Buffer }).stderr?.toString().trim() || e}`;
    rmSync(parent, { recursive: true, force: true });
  }
}
if (skipReason) console.warn(`disk fault tests skipped: ${skipReason}`);
const dataDir = join(mnt, 'data');
const children = new Set<ChildProcess>();

/** Stops what a failed test left running. SIGTERM: Parley stops its Postgres too (a SIGKILL would
 * leave that holding the mount and the data folder). */
async function stopAll() {
  await Promise.all(
    [...children].map(
      (c) =>
        new Promise<void>((r) => {
          const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
          c.once('exit', () => {
            clearTimeout(t);
            r();
          });
          c.kill('SIGTERM');
        }),
    ),
  );
}
afterEach(stopAll);
afterAll(async () => {
  await stopAll();
  if (!mnt) return;
  for (let i = 0; i < 50; i++) {
    try {
      execFileSync('umount', [mnt], { stdio: 'pipe' });
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 200)); // a postgres child may still be exiting
    }
  }
  rmSync(join(mnt, '..'), { recursive: true, force: true });
});

const remount = (mode: 'ro' | 'rw') => execFileSync('mount', ['-o', `remount,${mode}`, mnt]);

/** Fills the filesystem to the last block. Returns the filler's path. */
function fill(): string {
  const filler = join(mnt, 'filler');
  for (const bs of ['1M', '4k']) {
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${filler}.${bs}`, `bs=${bs}`], { stdio: 'pipe' });
    } catch {
      // "No space left on device": full, which is the point
    }
  }
  expect(statfsSync(mnt).bavail).toBe(0);
  return filler;
}
const unfill = () => {
  for (const bs of ['1M', '4k']) rmSync(join(mnt, `filler.${bs}`), { force: true });
};

interface Run {
  child: ChildProcess;
  output(): string;
  /** The URL once ready; undefined when the process exited first. */
  ready: Promise<string | undefined>;
  exit: Promise<number | null>;
}

/** `parley start` (the embedded database in dataDir, the demo org on first start). */
function start(): Run {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PARLEY_DATA_DIR: dataDir,
    PARLEY_PORT: '0',
    PARLEY_HOST: '127.0.0.1',
    PARLEY_LOG_LEVEL: 'warn',
  };
  delete env.PARLEY_DATABASE_URL; // the embedded database, in the folder under test
  delete env.PARLEY_SECRET;
  const child = spawn(process.execPath, ['bin/parley.mjs', 'start'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  const exit = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      children.delete(child);
      r(code);
    }),
  );
  const ready = new Promise<string | undefined>((resolve) => {
    const onData = (b: Buffer) => {
      out += b.toString();
      const m = /Parley is ready at (\S+)/.exec(out);
      if (m) resolve(m[1]);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exit.then(() => resolve(undefined));
  });
  return { child, output: () => out, ready, exit };
}

/** Starts Parley and expects it to refuse: a non-zero exit within a minute, never ready. */
async function expectRefusal(): Promise<string> {
  const run = start();
  const timeout = new Promise<'hung'>((r) => setTimeout(() => r('hung'), 60_000).unref());
  const url = await Promise.race([run.ready, timeout]);
  expect({ url, output: run.output() }).toMatchObject({ url: undefined });
  const code = await run.exit;
  console.info(`refused (exit ${code}): ${run.output().trim()}`);
  expect(code).not.toBe(0);
  expect(code).not.toBeNull();
  return run.output();
}

async function api(url: string, cookie: string, csrf: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { cookie, 'x-csrf-token': csrf, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function loginDemo(url: string) {
  const res = await fetch(`${url}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: DEMO_ADMIN, password: 'parley-demo' }),
  });
  expect(res.status).toBe(200);
  const cookie = res.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const csrf = ((await res.json()) as { csrfToken: string }).csrfToken;
  return (method: string, path: string, body?: unknown) => api(url, cookie, csrf, method, path, body);
}

async function stop(run: Run) {
  run.child.kill('SIGTERM');
  expect(await run.exit).toBe(0);
}

describe.skipIf(!!skipReason)('the embedded database on a read-only or full disk', () => {
  /** Leads created and answered 201, by id → last name: all must be there at the end. */
  const written = new Map<string, string>();

  it('a read-only data folder that was never used: a clear error and a non-zero exit', async () => {
    remount('ro');
    try {
      const out = await expectRefusal();
      expect(out).toMatch(/Parley could not start: .*data folder.*read-only file system/is);
      expect(out).toContain(dataDir);
    } finally {
      remount('rw');
    }
  });

  it('the disk fills up while Parley runs: writes fail with a clear error, the process stays up, and go on once there is room', async () => {
    const run = start();
    const url = await run.ready;
    expect(url, run.output()).toBeTruthy();
    const req = await loginDemo(url as string);
    const create = (name: string) => req('POST', '/api/modules/leads/records', { data: { last_name: name } });
    for (let i = 0; i < 20; i++) {
      const r = await create(`Before${i}`);
      expect(r.status).toBe(201);
      written.set(r.body.id, `Before${i}`);
    }
    fill();
    try {
      // Until the table or an index needs one more page: then every write fails, clearly.
      let failed: { status: number; body: { error: { code: string; message: string } } } | undefined;
      for (let i = 0; i < 2000 && !failed; i++) {
        const r = await create(`Full${i}`);
        if (r.status === 201) written.set(r.body.id, `Full${i}`);
        else failed = r;
      }
      expect(failed).toMatchObject({ status: 503, body: { error: { code: 'unavailable' } } });
      expect(failed?.body.error.message).toMatch(/disk|space/i);
      // Reads still work, and the process is still up.
      expect((await req('POST', '/api/modules/leads/records/count', {})).status).toBe(200);
      expect(run.child.exitCode).toBeNull();
    } finally {
      unfill();
    }
    const after = await create('AfterRoom');
    expect(after.status).toBe(201);
    written.set(after.body.id, 'AfterRoom');
    await stop(run);
  }, 180_000);

  it('a full disk at start: a clear error and a non-zero exit', async () => {
    fill();
    try {
      const out = await expectRefusal();
      expect(out).toMatch(/Parley could not start: .*no space left on device/is);
    } finally {
      unfill();
    }
  }, 120_000);

  it('data written before, then the folder turned read-only: a clear error and a non-zero exit', async () => {
    remount('ro');
    try {
      const out = await expectRefusal();
      expect(out).toMatch(/Parley could not start: .*cannot be written: .*read-only file system/is);
    } finally {
      remount('rw');
    }
  }, 120_000);

  it('writable again: Parley starts and every record written before is intact', async () => {
    const run = start();
    const url = await run.ready;
    expect(url, run.output()).toBeTruthy();
    const req = await loginDemo(url as string);
    const missing: string[] = [];
    for (const [id, name] of written) {
      const r = await req('GET', `/api/modules/leads/records/${id}`);
      if (r.status !== 200 || r.body.record.data.last_name !== name) missing.push(`${name}: ${r.status}`);
    }
    expect(missing).toEqual([]);
    // Nothing half-written either: the refused writes left no rows.
    const full = await req('POST', '/api/modules/leads/records/count', {
      criteria: { conditions: [{ field: 'last_name', op: 'starts_with', value: 'Full' }] },
    });
    expect(full.body.count).toBe([...written.values()].filter((n) => n.startsWith('Full')).length);
    expect((await req('POST', '/api/modules/leads/records', { data: { last_name: 'Later' } })).status).toBe(
      201,
    );
    await stop(run);
    recordFaults('disk: read-only and full data folder', {
      kills: 0,
      recipients: 0,
      lost: missing.length,
      duplicated: 0,
      unknown: 0,
    });
  }, 180_000);
});
