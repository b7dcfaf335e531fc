import type autocannon from 'autocannon';
import { type RawBuilder, sql } from 'kysely';
import { afterAll, expect, it } from 'vitest';
import { messageTrackingTokens } from '../../src/tracking/tokens.ts';
import { createTestOrg, ownDatabase } from '../support/app.ts';
import { FULL, scaled } from '../support/mode.ts';
import { type ParleyProcess, startParley } from '../support/processes.ts';
import { steadyLoad } from './drive.ts';

// Issue 8, "Load": the open pixel and click redirects of a real `parley serve` under the insights
// benchmark's load (bench/tracking.bench.ts: autocannon, 64 connections each sending as soon as it is
// answered, one request in five a click, every URL a different message), so at the rate that
// benchmark measures, for 60 s in full mode (10 s quick). Every hit the server answered must be in
// tracking_hits once its recorder has flushed, and in the per-message totals once the clicks are
// judged: zero lost, none counted twice. The p99 is printed.

const SECONDS = Number(process.env.LOAD_SECONDS ?? scaled(10, 60));
const CONNECTIONS = 64;
const MESSAGES = 20_000; // one URL each
const CLICK_SHARE = 0.2;
const LINKS = [
  'https://example.com/pricing',
  'https://example.com/docs?x=1',
  'https://blog.example.org/post',
];
const UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36';

// `serve` judges every org's waiting clicks: this file gets a database of its own.
const own = await ownDatabase();
const deps = own.deps;
let serve: ParleyProcess | undefined;
afterAll(async () => {
  await serve?.stop();
  await deps.close();
});

const count = async (q: RawBuilder<{ n: number }>) => (await q.execute(deps.db)).rows[0].n;

it(`records every hit of a ${SECONDS} s load at the benchmark's rate, and reports its p99`, {
  timeout: (SECONDS + 150) * 1000,
}, async () => {
  const org = await createTestOrg(deps);
  const html = `<p>Hello</p>${LINKS.map((l) => `<a href="${l}">x</a>`).join(' ')}`;
  // Sent a day ago: no click is "too soon after delivery", so people's clicks stay human.
  const ids = (
    await sql<{ id: string }>`
      INSERT INTO messages (org_id, kind, from_address, to_address, subject, html, text, message_id_header,
        transport, status, tracked, sent_at, expires_at)
      SELECT ${org.orgId}, 'individual', 'sales@load.example', 'r' || g || '@remote.example', 'Hello',
        ${html}, 'Hello', '<load.' || g || '.' || ${org.orgId} || '@load.example>', 'outbox', 'sent', true,
        now() - interval '1 day', now() + interval '1 day'
      FROM generate_series(1, ${MESSAGES}) g RETURNING id`.execute(deps.db)
  ).rows.map((r) => r.id);
  const secret = deps.config.secret as string;
  const requests: autocannon.Request[] = [];
  for (let i = 0; i < ids.length; i++) {
    const tok = messageTrackingTokens(secret, ids[i], LINKS.length);
    const click = (i * 0.618033988749895) % 1 < CLICK_SHARE;
    requests.push({
      method: 'GET',
      path: click ? `/t/c/${tok.clicks[i % LINKS.length]}` : `/t/o/${tok.open}.gif`,
    });
  }
  serve = await startParley('serve', { databaseUrl: own.url, secret });

  // Each request's serial number rides in Referer, one of the headers kept with a hit.
  const r = await steadyLoad({
    url: serve.url as string,
    requests,
    seconds: SECONDS,
    connections: CONNECTIONS,
    headers: { 'user-agent': UA },
    serialHeader: 'referer',
  });

  // The recorder writes within a second; wait until every answered hit is there (bounded)…
  const serials = async () =>
    (
      await sql<{ s: string }>`
        SELECT headers->>'referer' AS s FROM tracking_hits WHERE org_id = ${org.orgId}`.execute(deps.db)
    ).rows.map((x) => Number(x.s.slice('load-'.length)));
  const missing = (stored: number[]) => {
    const have = new Set(stored);
    return [...r.answered].filter((n) => !have.has(n)).length;
  };
  const t0 = Date.now();
  while (missing(await serials()) > 0 && Date.now() - t0 < 30_000)
    await new Promise((ok) => setTimeout(ok, 250));
  const settledMs = Date.now() - t0;
  // …and until the clicks are judged, once their burst window has closed (≈ 12 s): then the
  // per-message totals must count every hit once, each an open (a click is an open too).
  const waiting = sql<{ n: number }>`
    SELECT count(*)::int AS n FROM tracking_hits WHERE org_id = ${org.orgId} AND verdict IS NULL`;
  for (const t1 = Date.now(); (await count(waiting)) > 0; ) {
    if (Date.now() - t1 > 60_000) throw new Error('clicks still waiting for their verdict after 60 s');
    await new Promise((ok) => setTimeout(ok, 500));
  }
  const stored = await serials();
  const lost = missing(stored);
  const duplicated = stored.length - new Set(stored).size;
  console.log(
    `tracking load${FULL ? '' : ' (quick)'}: ${r.sent} requests in ${r.seconds} s (${Math.round(r.rate)} req/s, ` +
      `${CONNECTIONS} connections), p50 ${r.p50} ms, p99 ${r.p99} ms, max ${r.max} ms; ` +
      `${r.answered.size} answered, ${stored.length} recorded (the answered within ${settledMs} ms), ` +
      `${lost} lost, ${duplicated} duplicated; ${r.failed} 4xx/5xx, ${r.errors} errors`,
  );
  expect(r.failed).toBe(0);
  expect(r.errors).toBe(0);
  expect(r.s3xx).toBeGreaterThan(0); // the clicks were redirected, not answered as pixels
  expect(lost).toBe(0);
  expect(duplicated).toBe(0);
  // Beyond the answered ones, only requests still in flight when the run stopped (one a connection).
  expect(stored.every((n) => n >= 1 && n <= r.sent)).toBe(true);
  expect(stored.length - r.answered.size).toBeLessThanOrEqual(CONNECTIONS);

  const totals = (
    await sql<{ opens: number; clicks: number }>`
      SELECT coalesce(sum(open_count + machine_open_count), 0)::int AS opens,
        coalesce(sum(click_count + machine_click_count), 0)::int AS clicks
      FROM messages WHERE org_id = ${org.orgId}`.execute(deps.db)
  ).rows[0];
  const clicks = await count(
    sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM tracking_hits WHERE org_id = ${org.orgId} AND kind = 'click'`,
  );
  expect(totals).toEqual({ opens: stored.length, clicks });
  expect(clicks).toBeGreaterThanOrEqual(r.s3xx);
});
