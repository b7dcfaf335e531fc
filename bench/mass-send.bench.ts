// `npm run bench:mass-send`: a mass email end to end on one machine. Issue targets: the audience of
// 100,000 recipients out of 1,000,000 contacts resolved and its trace rows written in < 10 s; then
// claim → render → DKIM RSA-2048 → SMTP to a local sink → state written at ≥ 1,400 messages/s,
// with its ratio to a naive nodemailer loop (sendMail with nodemailer's own DKIM) measured in the
// same run; peak resident memory printed (target < 300 MB). The sink is a child process, so its
// CPU is not charged to the sender, as a remote relay would not be.
// BENCH_CONTACTS / BENCH_RECIPIENTS change the sizes (recipients are every k-th contact, k = contacts /
// recipients: BENCH_CONTACTS=1000000 BENCH_RECIPIENTS=1000000 sends to a million).
import { fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { Liquid } from 'liquidjs';
import nodemailer from 'nodemailer';
import { type Actor, createOrg } from '../src/crm/index.ts';
import { addDkimKey } from '../src/sending/dkim-keys.ts';
import { createMassEmail } from '../src/sending/mass.service.ts';
import { launchDue } from '../src/sending/mass-launch.ts';
import { saveRelay } from '../src/sending/relays.ts';
import { benchDatabase, postgresCpuMs, processCpuMs, timed } from './support.ts';

const RECIPIENTS = Number(process.env.BENCH_RECIPIENTS ?? 100_000);
const CONTACTS = Number(process.env.BENCH_CONTACTS ?? RECIPIENTS * 10);
const EVERY = Math.max(1, Math.round(CONTACTS / RECIPIENTS));
const NAIVE = 1_500;

// A ~9 KB personalised newsletter with links, as marketing mail is.
const para = (i: number) =>
  `<tr><td style="padding:12px;font-family:Arial,sans-serif;font-size:15px;color:#333">
  <h2 style="color:#0a4">Section ${i}: what is new this month</h2>
  <p>Our team has been busy. Here is a long paragraph of news for {{ contact.first_name | default: "you" }}
  at {{ contact.mailing_city | default: "your city" }}, with enough words to make a realistic body of
  text that mail clients render, that spam filters read, and that DKIM has to hash in full every time.</p>
  <p><a href="https://www.example.com/news/${i}?utm_source=parley">Read more about item ${i}</a></p></td></tr>`;
const HTML = `<html><body><table width="600" align="center">
<tr><td><p>Hello {{ contact.first_name | default: "there" }} {{ contact.last_name }},</p></td></tr>
${Array.from({ length: 12 }, (_, i) => para(i)).join('\n')}
<tr><td><p>Best regards,<br>{{ owner.name }}<br>{{ org.name }}</p></td></tr></table></body></html>`;
const TEXT =
  'Hello {{ contact.first_name | default: "there" }},\n\nOur news of the month: https://www.example.com/news\n\n{{ owner.name }}';

const sinkProc = fork(
  fileURLToPath(new URL('../bin/run-ts.mjs', import.meta.url)),
  [fileURLToPath(new URL('./smtp-sink.ts', import.meta.url))],
  {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  },
);
const ask = <T>(msg: string) =>
  new Promise<T>((resolve) => {
    sinkProc.once('message', (m) => resolve(m as T));
    sinkProc.send(msg);
  });
const { port } = await new Promise<{ port: number }>((resolve) =>
  sinkProc.once('message', (m) => resolve(m as never)),
);

const b = await benchDatabase('mass_send');
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

  // ---- contacts (setup, not timed against a target) ----------------------------------------------
  const [seedMs] = await timed(async () => {
    const chunk = 50_000;
    let next = 0;
    const worker = async () => {
      while (next < CONTACTS) {
        const from = next + 1;
        const n = Math.min(chunk, CONTACTS - next);
        next += n;
        await deps.db.transaction().execute(async (trx) => {
          await sql`SET LOCAL synchronous_commit = off`.execute(trx);
          await sql`SET LOCAL gin_pending_list_limit = '256MB'`.execute(trx);
          await sql`INSERT INTO records (org_id, module_id, owner_id, data)
            SELECT ${org.id}, ${mod.id}, ${user.id}, jsonb_build_object(
              'first_name', 'First' || g, 'last_name', 'Last' || g, 'email', 'c' || g || '@rcpt' || (g % 50) || '.example',
              'lead_source', CASE WHEN g % ${EVERY} = 0 THEN 'Trade Show' ELSE 'Web Download' END)
            FROM generate_series(${from}::bigint, ${from + n - 1}::bigint) g`.execute(trx);
        });
      }
    };
    await Promise.all([worker(), worker()]);
    await sql`SELECT gin_clean_pending_list('records_data_idx'::regclass)`.execute(deps.db);
    await sql`ANALYZE records`.execute(deps.db);
  });
  console.log(`setup: ${CONTACTS} contacts in ${(seedMs / 1000).toFixed(1)} s`);

  // ---- audience: criteria → recipients and trace rows ------------------------------------------
  let createMs = 0;
  const [audienceMs, massId] = await timed(async () => {
    const [ms, id] = await timed(() =>
      createMassEmail(deps, admin, {
        module: 'contacts',
        name: 'Monthly news',
        templateId: t.id,
        from: { kind: 'user' },
        audience: {
          kind: 'criteria',
          criteria: { conditions: [{ field: 'lead_source', op: 'is', value: 'Trade Show' }] },
        },
      }),
    );
    createMs = ms;
    await launchDue(deps);
    return id;
  });
  const queued = (
    await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM messages WHERE mass_email_id = ${massId} AND status = 'queued'`.execute(
      deps.db,
    )
  ).rows[0].n;
  console.log(
    `audience: ${queued} recipients of ${CONTACTS} contacts resolved and written in ${(audienceMs / 1000).toFixed(2)} s (checked when created: ${(createMs / 1000).toFixed(2)} s; launched: ${((audienceMs - createMs) / 1000).toFixed(2)} s)`,
  );

  // ---- the send: claim → render → DKIM → SMTP → state, by a real `parley worker` process -------
  // The worker runs as in production (its own process, default loops and batch size), so its peak
  // resident memory (VmHWM) and CPU are the sender's alone. Timed from the first message reaching
  // the sink to the last state written. BENCH_CPU_PROFILE=dir writes the worker's CPU profile there.
  const sink0 = await ask<{ count: number; cpuMs: number }>('stats');
  const pg0 = await postgresCpuMs(deps);
  const worker = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_CPU_PROFILE
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROFILE}`]
        : []),
      fileURLToPath(new URL('../bin/parley.mjs', import.meta.url)),
      'worker',
    ],
    {
      env: {
        ...process.env,
        PARLEY_DATABASE_URL: b.url,
        PARLEY_SECRET: deps.config.secret as string,
        PARLEY_LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const workerExit = new Promise<void>((r) => worker.once('exit', () => r()));
  const sentCount = async () =>
    (
      await sql<{ n: number }>`SELECT count(*)::int AS n FROM messages
        WHERE mass_email_id = ${massId} AND status <> 'queued' AND status <> 'sending'`.execute(deps.db)
    ).rows[0];
  let settled = 0;
  let sinkNow = sink0;
  const deadline = Date.now() + 30 * 60_000;
  while (settled < queued) {
    if (worker.exitCode !== null) throw new Error(`the worker exited (${worker.exitCode})`);
    if (Date.now() > deadline) throw new Error(`the send did not finish in time: ${settled}/${queued}`);
    await new Promise((r) => setTimeout(r, 100));
    sinkNow = await ask<{ count: number; cpuMs: number }>('stats');
    // the database is only asked once the sink has everything (counting rows costs PostgreSQL CPU)
    if (sinkNow.count - sink0.count >= queued) settled = (await sentCount()).n;
  }
  const doneAt = Date.now();
  const status = readFileSync(`/proc/${worker.pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  const peakRss = kb('VmHWM') * 1024;
  const workerCpuMs = processCpuMs(worker.pid as number);
  const pg1 = await postgresCpuMs(deps);
  worker.kill('SIGTERM');
  await workerExit;
  const sink1 = await ask<{ count: number; bytes: number; cpuMs: number; firstAt: number }>('stats');
  const sent = sink1.count - sink0.count;
  const failed = await sql<{ status: string; n: number; why: string }>`SELECT status, count(*)::int AS n,
      min(smtp_response) AS why FROM messages WHERE mass_email_id = ${massId} AND status <> 'sent' GROUP BY status`.execute(
    deps.db,
  );
  if (failed.rows.length) throw new Error(`delivery trouble: ${JSON.stringify(failed.rows)}`);
  if (sent !== queued) throw new Error(`sink got ${sent}, expected ${queued}`);
  const sendMs = doneAt - sink1.firstAt;
  const rate = sent / (sendMs / 1000);
  console.log(
    `send: ${sent} messages in ${(sendMs / 1000).toFixed(1)} s = ${Math.round(rate)} msgs/s; ` +
      `worker CPU ${(workerCpuMs / sent).toFixed(3)} ms/msg (main thread + signing threads, startup included), ` +
      (pg0 !== null && pg1 !== null ? `PostgreSQL CPU ${((pg1 - pg0) / sent).toFixed(3)} ms/msg, ` : '') +
      `sink CPU ${((sink1.cpuMs - sink0.cpuMs) / sent).toFixed(3)} ms/msg, ` +
      `avg ${Math.round(sink1.bytes / sink1.count)} bytes/msg; worker peak RSS ${Math.round(peakRss / 1048576)} MB`,
  );

  // ---- the naive baseline: render with liquidjs, sendMail with nodemailer's DKIM ---------------
  const key = await deps.db
    .selectFrom('dkim_keys')
    .select(['private_key_enc'])
    .where('org_id', '=', org.id)
    .executeTakeFirstOrThrow();
  const { decryptSecret } = await import('../src/sending/secrets.ts');
  const { privateKeyContext } = await import('../src/sending/dkim-keys.ts');
  const privateKey = decryptSecret(deps.config, key.private_key_enc, privateKeyContext(org.id));
  const liquid = new Liquid({ strictVariables: false });
  const naive = nodemailer.createTransport({
    pool: true,
    host: '127.0.0.1',
    port,
    ignoreTLS: true,
    maxConnections: 8,
    dkim: { domainName: 'bench.example', keySelector: 'bench', privateKey },
  });
  const [naiveMs] = await timed(async () => {
    const one = async (i: number) => {
      const scope = {
        contact: { first_name: `First${i}`, last_name: `Last${i}` },
        owner: { name: 'Nora News' },
        org: { name: 'Bench Corp' },
      };
      await naive.sendMail({
        from: '"Nora News" <news@bench.example>',
        to: `c${i}@rcpt.example`,
        subject: await liquid.parseAndRender('News for {{ contact.first_name }}', scope),
        html: await liquid.parseAndRender(HTML, scope),
        text: await liquid.parseAndRender(TEXT, scope),
      });
    };
    for (let i = 0; i < NAIVE; i += 8)
      await Promise.all(Array.from({ length: Math.min(8, NAIVE - i) }, (_, k) => one(i + k)));
  });
  naive.close();
  const naiveRate = NAIVE / (naiveMs / 1000);
  console.log(
    `naive loop: ${NAIVE} messages in ${(naiveMs / 1000).toFixed(1)} s = ${Math.round(naiveRate)} msgs/s`,
  );
  console.log(
    `mass-send: ${Math.round(rate)} msgs/s, ${(rate / naiveRate).toFixed(1)}x naive, ${Math.round(peakRss / 1048576)} MB peak RSS`,
  );
} finally {
  await b.close();
  sinkProc.send('stop');
}
