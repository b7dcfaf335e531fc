import { type ChildProcess, spawn } from 'node:child_process';
import { sql } from 'kysely';
import { afterAll, expect, it } from 'vitest';
import { messageTrackingTokens } from '../src/tracking/tokens.ts';
import { createTestOrg, ownDatabase } from './support/app.ts';

// Durability of tracking hits (issue 5): a real `parley serve` answers pixel requests while hits
// are buffered in memory; it is killed with SIGKILL mid-load. Every hit answered more than a second
// before the kill must be in the database; what is lost is bounded by the hits of that last second,
// and the test prints how many were lost.

// The server judges every org's waiting clicks: this file gets a database of its own.
const own = await ownDatabase();
const deps = own.deps;
afterAll(async () => {
  await deps.close();
});

const LOSS_WINDOW_MS = 1_000;

function startServe(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['bin/parley.mjs', 'serve'], {
    env: {
      ...process.env,
      PARLEY_DATABASE_URL: own.url,
      PARLEY_SECRET: deps.config.secret,
      PARLEY_PORT: '0',
      PARLEY_LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((ok, fail) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready at http:\/\/[^:/]+:(\d+)/.exec(out);
      if (m) ok({ child, url: `http://127.0.0.1:${m[1]}` });
    });
    child.once('exit', (code) => fail(new Error(`parley serve exited with ${code}: ${out}`)));
  });
}

it('SIGKILL loses at most the hits of the last second; earlier ones are all recorded', async () => {
  const org = await createTestOrg(deps);
  const ids = (
    await sql<{ id: string }>`
      INSERT INTO messages (org_id, kind, from_address, to_address, subject, html, text, message_id_header,
        transport, status, tracked, sent_at, expires_at)
      SELECT ${org.orgId}, 'individual', 'sales@crash.example', 'r' || g || '@remote.example', 'Hello',
        '<p>Hello</p>', 'Hello', '<crash.' || g || '.' || ${org.orgId} || '@crash.example>', 'outbox', 'sent', true,
        now() - interval '1 hour', now() + interval '1 day'
      FROM generate_series(1, 20000) g RETURNING id`.execute(deps.db)
  ).rows.map((r) => r.id);
  const secret = deps.config.secret as string;
  const { child, url } = await startServe();
  const exited = new Promise<void>((r) => child.once('exit', () => r()));

  // One message per hit, so each answered hit can be looked for by itself.
  const answered: { id: string; at: number }[] = [];
  let next = 0;
  let killed = false;
  const fire = async () => {
    while (!killed && next < ids.length) {
      const id = ids[next++];
      try {
        const r = await fetch(`${url}/t/o/${messageTrackingTokens(secret, id, 0).open}.gif`, {
          headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0' },
        });
        await r.arrayBuffer();
        if (r.status === 200 && !killed) answered.push({ id, at: Date.now() });
      } catch {
        // the server is gone
      }
    }
  };
  const loops = Array.from({ length: 16 }, fire);
  // Kill once hits have flowed for a while (several flushes) and are still flowing.
  const t0 = Date.now();
  while (Date.now() - t0 < 2_500 || answered.length < 500) {
    if (Date.now() - t0 > 30_000) throw new Error(`only ${answered.length} hits answered in 30 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const killAt = Date.now();
  killed = true;
  child.kill('SIGKILL');
  await exited;
  await Promise.all(loops);

  const stored = new Set(
    (
      await sql<{
        message_id: string;
      }>`SELECT message_id FROM tracking_hits WHERE org_id = ${org.orgId}`.execute(deps.db)
    ).rows.map((r) => r.message_id),
  );
  const lost = answered.filter((a) => !stored.has(a.id));
  const lastSecond = answered.filter((a) => a.at > killAt - LOSS_WINDOW_MS).length;
  console.log(
    `tracking crash: ${answered.length} hits answered, ${stored.size} recorded, ${lost.length} lost ` +
      `(${lastSecond} answered in the last ${LOSS_WINDOW_MS} ms before SIGKILL)`,
  );
  expect(answered.length).toBeGreaterThan(0);
  // Every lost hit was answered in the last second before the kill…
  expect(lost.filter((a) => a.at <= killAt - LOSS_WINDOW_MS)).toEqual([]);
  // …and nothing was recorded twice or made up.
  const rows = (
    await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM tracking_hits WHERE org_id = ${org.orgId}`.execute(deps.db)
  ).rows[0].n;
  expect(rows).toBe(stored.size);
  const sent = new Set(ids.slice(0, next));
  expect([...stored].filter((id) => !sent.has(id))).toEqual([]);
  // Totals match the recorded hits (written in the same transaction).
  const opened = (
    await sql<{
      n: number;
    }>`SELECT coalesce(sum(open_count), 0)::int AS n FROM messages WHERE org_id = ${org.orgId}`.execute(
      deps.db,
    )
  ).rows[0].n;
  expect(opened).toBe(rows);
});
