// `npm run bench:scale-workers`: messages/s of one mass email sent by 1, 2 and 3 `parley worker`
// processes on one PostgreSQL (issue 8), and each figure's ratio to one worker. Each run sends
// BENCH_MESSAGES (default 20,000) personalised, DKIM-signed messages to a counting SMTP sink (a child
// process, so its CPU is not charged to the senders, as a remote relay's would not be), timed from
// the first message at the sink to the last state written. BENCH_WORKERS=1,2,3 chooses the runs.
//
// Projection to more cores. A message costs CPU in the worker (render, DKIM, SMTP client, state
// writes; c_w ms) and in PostgreSQL (claim, state, report rollups; c_pg ms); both are printed per
// message. Workers share nothing but the database (claims use SKIP LOCKED), so with W workers each on
// its own core the senders give W / c_w messages per ms, and PostgreSQL, on its own P cores, caps
// the total at P / c_pg. On this 2-core machine the workers, PostgreSQL and the sink share two cores,
// so the second and third worker mostly compete for the same CPU: the ratio here shows that the
// processes do not get in each other's way (no lock waits, no duplicate work), not the gain on a
// bigger machine. The gain there is min(W / c_w, P / c_pg), printed at the end for 8 and 16 cores
// split between workers and PostgreSQL in proportion to their measured costs (those of the run with
// the most workers, which are higher than one worker's).
import { fork, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { type Actor, createOrg } from '../src/crm/index.ts';
import { addDkimKey } from '../src/sending/dkim-keys.ts';
import { createMassEmail } from '../src/sending/mass.service.ts';
import { launchDue } from '../src/sending/mass-launch.ts';
import { saveRelay } from '../src/sending/relays.ts';
import { benchDatabase, postgresCpuMs, processCpuMs } from './support.ts';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 20_000);
const RUNS = (process.env.BENCH_WORKERS ?? '1,2,3').split(',').map(Number);

// A ~4 KB personalised newsletter with links (the mass-send bench's is ~9 KB).
const para = (i: number) =>
  `<tr><td style="padding:12px;font-family:Arial,sans-serif;font-size:15px;color:#333">
  <h2 style="color:#0a4">Section ${i}: what is new this month</h2>
  <p>Here is the news for {{ contact.first_name | default: "you" }} at {{ contact.mailing_city | default: "your city" }},
  with enough words to make a realistic body of text that DKIM has to hash in full every time.</p>
  <p><a href="https://www.example.com/news/${i}?utm_source=parley">Read more about item ${i}</a></p></td></tr>`;
const HTML = `<html><body><table width="600" align="center">
<tr><td><p>Hello {{ contact.first_name | default: "there" }} {{ contact.last_name }},</p></td></tr>
${Array.from({ length: 6 }, (_, i) => para(i)).join('\n')}
<tr><td><p>Best regards,<br>{{ owner.name }}<br>{{ org.name }}</p></td></tr></table></body></html>`;
const TEXT = 'Hello {{ contact.first_name | default: "there" }},\n\nOur news: https://www.example.com/news';

const sinkProc = fork(
  fileURLToPath(new URL('../bin/run-ts.mjs', import.meta.url)),
  [fileURLToPath(new URL('./smtp-sink.ts', import.meta.url))],
  { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
);
type SinkStats = { count: number; bytes: number; cpuMs: number; firstAt: number };
const ask = <T>(msg: string) =>
  new Promise<T>((resolve) => {
    sinkProc.once('message', (m) => resolve(m as T));
    sinkProc.send(msg);
  });
const { port } = await new Promise<{ port: number }>((resolve) =>
  sinkProc.once('message', (m) => resolve(m as never)),
);

const b = await benchDatabase('scale_workers');
try {
  const { deps } = b;
  const { org, admin: user } = await createOrg(deps, {
    name: 'Bench Corp',
    edition: 'ultimate',
    adminEmail: 'news@bench.example',
    adminName: 'Nora News',
    adminPassword: 'bench-password',
  });
  const admin: Actor = {
    orgId: org.id,
    userId: user.id,
    isAdmin: true,
    permissions: {},
    timeZone: 'UTC',
    locale: 'en-US',
  };
  await deps.db
    .updateTable('edition_limits')
    .set({ mass_addon_max: 10_000_000 })
    .where('edition', '=', 'ultimate')
    .execute();
  await deps.db.updateTable('orgs').set({ mass_email_addon: 10_000_000 }).where('id', '=', org.id).execute();
  await saveRelay(deps, admin, {
    host: '127.0.0.1',
    port,
    security: 'none',
    maxConnections: 8,
    maxPerSecond: 100_000,
    sendingDomain: 'bench.example',
  });
  await addDkimKey(deps, admin, { domain: 'bench.example', selector: 'bench', algorithm: 'rsa-sha256' });
  const mod = await deps.db
    .selectFrom('modules')
    .select('id')
    .where('org_id', '=', org.id)
    .where('api_name', '=', 'contacts')
    .executeTakeFirstOrThrow();
  const t = await deps.db
    .insertInto('templates')
    .values({ org_id: org.id, module_id: mod.id, name: 'Newsletter', created_by: user.id })
    .returning('id')
    .executeTakeFirstOrThrow();
  await deps.db
    .insertInto('template_versions')
    .values({
      org_id: org.id,
      template_id: t.id,
      version: 1,
      subject: 'News for {{ contact.first_name | default: "you" }}',
      html_source: HTML,
      html: HTML,
      text: TEXT,
      author_id: user.id,
    })
    .execute();
  await sql`INSERT INTO records (org_id, module_id, owner_id, data)
    SELECT ${org.id}, ${mod.id}, ${user.id}, jsonb_build_object('first_name', 'First' || g, 'last_name', 'Last' || g,
      'email', 'c' || g || '@rcpt' || (g % 50) || '.example')
    FROM generate_series(1, ${MESSAGES}) g`.execute(deps.db);
  await sql`ANALYZE records`.execute(deps.db);

  const startWorker = () =>
    new Promise<ReturnType<typeof spawn>>((resolve, reject) => {
      const w = spawn(
        process.execPath,
        [fileURLToPath(new URL('../bin/parley.mjs', import.meta.url)), 'worker'],
        {
          env: {
            ...process.env,
            PARLEY_DATABASE_URL: b.url,
            PARLEY_SECRET: deps.config.secret as string,
            PARLEY_LOG_LEVEL: 'error',
          },
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      w.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('Parley worker running')) resolve(w);
      });
      w.once('exit', (code) => reject(new Error(`a worker exited (${code}) before it was ready`)));
    });

  const results: { workers: number; rate: number; workerMs: number; pgMs: number }[] = [];
  for (const [run, k] of RUNS.entries()) {
    // Every worker is up and idle before the send is launched, so all start together.
    const workers = [];
    for (let i = 0; i < k; i++) workers.push(await startWorker());
    const sink0 = await ask<SinkStats>('stats');
    const pg0 = await postgresCpuMs(deps);
    const cpu0 = workers.map((w) => processCpuMs(w.pid as number));
    const massId = await (async () => {
      const id = await createMassEmail(deps, admin, {
        module: 'contacts',
        name: `Run ${run + 1}: ${k} worker(s)`,
        templateId: t.id,
        from: { kind: 'user' },
        audience: {
          kind: 'criteria',
          criteria: { conditions: [{ field: 'last_name', op: 'starts_with', value: 'Last' }] },
        },
      });
      await launchDue(deps); // or a worker's scheduler got it first: either way it is launched once
      return id;
    })();
    const settled = async () =>
      (
        await sql<{ n: number }>`SELECT count(*)::int AS n FROM messages
          WHERE mass_email_id = ${massId} AND status NOT IN ('queued', 'sending')`.execute(deps.db)
      ).rows[0].n;
    const deadline = Date.now() + 30 * 60_000;
    let sink = sink0;
    let firstAt = 0; // when this run's first message reached the sink (polled every 10 ms until then)
    for (;;) {
      if (Date.now() > deadline) throw new Error(`run with ${k} worker(s) did not finish in time`);
      await new Promise((r) => setTimeout(r, firstAt ? 100 : 10));
      sink = await ask<SinkStats>('stats');
      if (!firstAt && sink.count > sink0.count) firstAt = Date.now();
      // the database is only asked once the sink has everything (counting rows costs PostgreSQL CPU)
      if (sink.count - sink0.count >= MESSAGES && (await settled()) >= MESSAGES) break;
    }
    const doneAt = Date.now();
    const workerMs = workers.reduce((s, w, i) => s + processCpuMs(w.pid as number) - cpu0[i], 0);
    const pg1 = await postgresCpuMs(deps);
    await Promise.all(
      workers.map((w) => {
        const exited = new Promise((r) => w.once('exit', r));
        w.kill('SIGTERM');
        return exited;
      }),
    );
    const bad = await sql<{ status: string; n: number }>`SELECT status, count(*)::int AS n FROM messages
      WHERE mass_email_id = ${massId} AND status <> 'sent' GROUP BY status`.execute(deps.db);
    if (bad.rows.length) throw new Error(`delivery trouble: ${JSON.stringify(bad.rows)}`);
    const sent = sink.count - sink0.count;
    if (sent !== MESSAGES) throw new Error(`sink got ${sent}, expected ${MESSAGES}`);
    const rate = sent / ((doneAt - firstAt) / 1000);
    const r = {
      workers: k,
      rate,
      workerMs: workerMs / sent,
      pgMs: pg0 !== null && pg1 !== null ? (pg1 - pg0) / sent : Number.NaN,
    };
    results.push(r);
    console.log(
      `${k} worker(s): ${sent} messages in ${((doneAt - firstAt) / 1000).toFixed(1)} s = ${Math.round(rate)} msgs/s ` +
        `(${(rate / results[0].rate).toFixed(2)}x 1 worker); worker CPU ${r.workerMs.toFixed(3)} ms/msg (all workers), ` +
        `PostgreSQL CPU ${r.pgMs.toFixed(3)} ms/msg`,
    );
  }
  // The projection (see the top): cores split between workers and PostgreSQL by measured cost, at
  // the CPU per message of the run with the most workers (several workers cost more per message
  // than one: claims step over rows the others hold, and each runs its own scheduler loops).
  const one = results[0];
  const most = results[results.length - 1];
  const perMsg = most.workerMs + most.pgMs;
  const projection = [8, 16]
    .map((cores) => `${cores} cores ≈ ${Math.round((cores / perMsg) * 1000)} msgs/s`)
    .join(', ');
  console.log(
    `scale-workers: ${results.map((r) => `${r.workers}w ${Math.round(r.rate)} msgs/s (${(r.rate / one.rate).toFixed(2)}x)`).join(', ')}; ` +
      `projection if CPU-bound (${most.workers} workers: ${most.workerMs.toFixed(3)} + PostgreSQL ${most.pgMs.toFixed(3)} ms/msg): ${projection}`,
  );
} finally {
  await b.close();
  sinkProc.send('stop');
}
