// `npm run bench:mass-send`: a mass email end to end on one machine. Issue targets: the audience of
// 100,000 recipients out of 1,000,000 contacts resolved and its trace rows written in < 10 s; then
// claim → render → DKIM RSA-2048 → SMTP to a local sink → state written at ≥ 1,400 messages/s,
// with its ratio to a naive nodemailer loop (sendMail with nodemailer's own DKIM) measured in the
// same run; peak resident memory printed (target < 300 MB). The sink is a child process, so its
// CPU is not charged to the sender, as a remote relay would not be.
// BENCH_CONTACTS / BENCH_RECIPIENTS change the sizes (recipients are every tenth contact).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { Liquid } from 'liquidjs';
import nodemailer from 'nodemailer';
import { type Actor, createOrg } from '../src/crm/index.ts';
import { closeSignPool, deliverDue } from '../src/sending/delivery.ts';
import { addDkimKey } from '../src/sending/dkim-keys.ts';
import { createMassEmail } from '../src/sending/mass.service.ts';
import { launchDue } from '../src/sending/mass-launch.ts';
import { saveRelay } from '../src/sending/relays.ts';
import { renderTemplateRows } from '../src/sending/render-rows.ts';
import { closeRelayTransports } from '../src/sending/transport.ts';
import { benchDatabase, postgresCpuMs, timed } from './support.ts';

const RECIPIENTS = Number(process.env.BENCH_RECIPIENTS ?? 100_000);
const CONTACTS = Number(process.env.BENCH_CONTACTS ?? RECIPIENTS * 10);
const NAIVE = 1_500;
const BATCH = Number(process.env.BENCH_BATCH ?? 500);
const LOOPS = Number(process.env.BENCH_LOOPS ?? 3); // deliverDue loops in flight, as a worker runs them

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

let peakRss = 0;
let atPeak = process.memoryUsage();
const sampler = setInterval(() => {
  const m = process.memoryUsage();
  if (m.rss > peakRss) {
    peakRss = m.rss;
    atPeak = m;
  }
}, 50);

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
              'lead_source', CASE WHEN g % 10 = 0 THEN 'Trade Show' ELSE 'Web Download' END)
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

  // ---- the send: claim → render → DKIM → SMTP → state ------------------------------------------
  // BENCH_CPU_PROFILE=file.cpuprofile profiles the main thread during the send only.
  const profiler = process.env.BENCH_CPU_PROFILE
    ? new (await import('node:inspector/promises')).Session()
    : null;
  if (profiler) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.start');
  }
  const rssBeforeSend = process.memoryUsage().rss;
  peakRss = 0; // the figure that matters: memory while sending
  const sink0 = await ask<{ count: number; cpuMs: number }>('stats');
  const cpu0 = process.cpuUsage();
  const pg0 = await postgresCpuMs(deps);
  const [sendMs, sent] = await timed(async () => {
    let total = 0;
    const loop = async () => {
      for (;;) {
        const c = await deliverDue(deps, { limit: BATCH, render: renderTemplateRows });
        total += c.sent;
        if (c.claimed === 0) return;
        if (c.failed || c.deferred || c.unknown) {
          const why = await sql<{ smtp_response: string }>`SELECT smtp_response FROM messages
            WHERE mass_email_id = ${massId} AND status <> 'sent' AND smtp_response IS NOT NULL LIMIT 1`.execute(
            deps.db,
          );
          throw new Error(`delivery trouble: ${JSON.stringify(c)}: ${why.rows[0]?.smtp_response}`);
        }
      }
    };
    await Promise.all(Array.from({ length: LOOPS }, loop));
    return total;
  });
  const cpu = process.cpuUsage(cpu0);
  const pg1 = await postgresCpuMs(deps);
  const sendPeakRss = peakRss;
  const mb = (n: number) => Math.round(n / 1048576);
  console.log(
    `memory at the peak: heap ${mb(atPeak.heapUsed)}/${mb(atPeak.heapTotal)} MB, external ${mb(atPeak.external)} MB (array buffers ${mb(atPeak.arrayBuffers)} MB), the rest (code, threads, allocator) ${mb(atPeak.rss - atPeak.heapTotal - atPeak.external)} MB`,
  );
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    (await import('node:fs')).writeFileSync(process.env.BENCH_CPU_PROFILE as string, JSON.stringify(profile));
  }
  const sink1 = await ask<{ count: number; bytes: number; cpuMs: number }>('stats');
  if (sink1.count - sink0.count !== sent)
    throw new Error(`sink got ${sink1.count - sink0.count}, sender counted ${sent}`);
  const rate = sent / (sendMs / 1000);
  console.log(
    `send: ${sent} messages in ${(sendMs / 1000).toFixed(1)} s = ${Math.round(rate)} msgs/s; ` +
      `sender CPU ${((cpu.user + cpu.system) / 1000 / sent).toFixed(3)} ms/msg (main thread + signing threads), ` +
      (pg0 !== null && pg1 !== null ? `PostgreSQL CPU ${((pg1 - pg0) / sent).toFixed(3)} ms/msg, ` : '') +
      `sink CPU ${((sink1.cpuMs - sink0.cpuMs) / sent).toFixed(3)} ms/msg, ` +
      `avg ${Math.round((sink1.bytes - 0) / sink1.count)} bytes/msg; RSS ${Math.round(rssBeforeSend / 1048576)} MB before, ${Math.round(sendPeakRss / 1048576)} MB peak while sending`,
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
  clearInterval(sampler);
  console.log(
    `mass-send: ${Math.round(rate)} msgs/s, ${(rate / naiveRate).toFixed(1)}x naive, ${Math.round(sendPeakRss / 1048576)} MB peak RSS`,
  );
} finally {
  clearInterval(sampler);
  closeRelayTransports(b.deps);
  await closeSignPool(b.deps);
  await b.close();
  sinkProc.send('stop');
}
