// `npm run bench:render-send`: one Parley process renders personalised ~9 KB HTML messages (merge
// fields, click-tracked links, open pixel, List-Unsubscribe), DKIM-signs them (RSA-2048, worker
// threads) and delivers them over persistent pipelined SMTP connections (src/sending/fast/
// smtp-pipeline.ts) to a local sink, claiming and marking their `messages` rows in PostgreSQL in
// batches. Baseline in the same run: a naive loop of `transporter.sendMail` with nodemailer's own
// DKIM option, same content. Target ≥ 1,500 msgs/s. Also printed: the CPU cost per message of the
// SMTP step alone with nodemailer (pooled transport, bare SMTPConnection) and with the pipeline,
// the measurement behind writing our own SMTP client for this path.
//
// The SMTP sink (smtp-server, counts and discards) runs in a child process: its CPU is not counted
// as the sender's, but it runs on the same cores, so it does slow the sender down, as a real local
// relay would. Both phases deliver to the same sink.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

if (process.env.RENDER_SEND_SINK === '1') await runSink();
else await runBench();

interface SinkStats {
  count: number;
  bytes: number;
  samples: string[];
  cpuMs: number;
}

async function runSink() {
  const { SMTPServer } = await import('smtp-server');
  let count = 0;
  let bytes = 0;
  let samples: string[] = [];
  const server = new SMTPServer({
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    maxClients: 200,
    onData(stream, _session, callback) {
      const keep = samples.length < 3;
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => {
        bytes += c.length;
        if (keep) chunks.push(c);
      });
      stream.on('end', () => {
        count++;
        if (keep) samples.push(Buffer.concat(chunks).toString('base64'));
        callback();
      });
    },
  });
  server.listen(0, '127.0.0.1', () => {
    const addr = server.server.address();
    process.send?.({ port: typeof addr === 'object' && addr ? addr.port : 0 });
  });
  process.on('message', (m) => {
    if (m === 'reset') {
      count = 0;
      bytes = 0;
      samples = [];
      process.send?.('ok');
    } else if (m === 'stats') {
      const u = process.cpuUsage();
      process.send?.({ count, bytes, samples, cpuMs: (u.user + u.system) / 1000 } satisfies SinkStats);
    } else if (m === 'stop') server.close(() => process.exit(0));
  });
}

/** CPU time of this process's main thread (Linux /proc, 10 ms ticks), or null elsewhere. */
function mainThreadCpuMs(): number | null {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10; // utime + stime, in USER_HZ (100/s)
  } catch {
    return null;
  }
}

async function runBench() {
  const { sql } = await import('kysely');
  const { Liquid } = await import('liquidjs');
  const { dkimVerify } = await import('mailauth/lib/dkim/verify.js');
  const { simpleParser } = await import('mailparser');
  const nodemailer = (await import('nodemailer')).default;
  const { createOrg } = await import('../src/crm/index.ts');
  const { generateDkimKey, loadDkimKey } = await import('../src/sending/dkim.ts');
  const { buildBatch, prepareSend, signBatch } = await import('../src/sending/fast/fast-path.ts');
  const { createSmtpPipelinePool } = await import('../src/sending/fast/smtp-pipeline.ts');
  const SMTPConnection = (await import('nodemailer/lib/smtp-connection')).default;
  const { createSignPool } = await import('../src/sending/sign-pool.ts');
  const { newMessageIdHeader, verpReturnPath } = await import('../src/sending/verp.ts');
  const { trackingToken } = await import('../src/tracking/tokens.ts');
  const { benchDatabase, timed } = await import('./support.ts');

  const FAST_MESSAGES = Number(process.env.BENCH_MESSAGES ?? 24_000);
  const FAST_MAX_MS = Number(process.env.BENCH_FAST_MS ?? 20_000);
  const NAIVE_MAX_MS = Number(process.env.BENCH_NAIVE_MS ?? 6_000);
  const NAIVE_MESSAGES = 3_000;
  const WARMUP = 1_500;
  const BATCH = 400; // rows per claim/build/sign/mark
  const LOOPS = 3; // batches in flight
  const CONNECTIONS = 8;
  const SECRET = 'bench-secret-0123456789-0123456789-abcd';
  const PUBLIC_URL = 'https://crm.example.com';

  // ---- the content: a ~9 KB newsletter-style HTML email with 8 links and merge fields ----------
  const para = (i: number) =>
    `<tr><td style="padding:0 32px 16px 32px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:22px;color:#333333;">` +
    `Paragraph ${i}: teams like {{ lead.company }} in {{ lead.city | default: "your city" }} use our platform to keep every ` +
    `conversation with a customer in one place, follow up at the right time and see which emails are read. ` +
    `<a href="https://acme.example/features/${i}?utm_source=newsletter&amp;utm_medium=email" style="color:#1a73e8;text-decoration:underline;">Read more about feature ${i}</a>.</td></tr>\n`;
  const htmlTemplate =
    `<!DOCTYPE html><html><head><meta charset="utf-8"><title>News</title></head>` +
    `<body style="margin:0;padding:0;background:#f4f4f4;">\n<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f4f4;">` +
    `<tr><td align="center"><table role="presentation" width="600" cellpadding="0" cellspacing="0" style="background:#ffffff;">\n` +
    `<tr><td style="padding:32px;font-family:Helvetica,Arial,sans-serif;font-size:22px;color:#111111;">Hi {{ lead.first_name | default: "there" }},</td></tr>\n` +
    Array.from({ length: 17 }, (_, i) => para(i + 1)).join('') +
    `<tr><td style="padding:16px 32px;font-family:Helvetica,Arial,sans-serif;font-size:15px;color:#333333;">` +
    `Best regards,<br>{{ owner.name }}<br>{{ org.name }}</td></tr>\n` +
    `<tr><td style="padding:16px 32px;font-family:Helvetica,Arial,sans-serif;font-size:12px;color:#888888;">` +
    `You receive this email because {{ lead.company }} is a customer of {{ org.name }}. ` +
    `<a href="https://acme.example/preferences" style="color:#888888;">Email preferences</a></td></tr>\n` +
    `</table></td></tr></table>\n</body></html>\n`;
  const textTemplate =
    'Hi {{ lead.first_name | default: "there" }},\n\n' +
    Array.from(
      { length: 7 },
      (_, i) =>
        `Paragraph ${i + 1}: teams like {{ lead.company }} use our platform to keep every conversation in one place.\nhttps://acme.example/features/${i + 1}\n`,
    ).join('\n') +
    '\nBest regards,\n{{ owner.name }}\n{{ org.name }}\n';
  const subjectTemplate = '{{ lead.first_name | default: "Hello" }}, news for {{ lead.company }}';

  const liquidOpts = { strictVariables: true, strictFilters: true, ownPropertyOnly: true } as const;
  const engine = new Liquid(liquidOpts);
  const htmlEngine = new Liquid({ ...liquidOpts, outputEscape: 'escape' });
  const scopeOf = (i: number) => ({
    lead: {
      first_name: `Jane${i}`,
      last_name: 'Doe',
      company: `Company ${i % 997}`,
      city: i % 3 ? 'Berlin' : '',
    },
    owner: { name: 'Bob Seller' },
    org: { name: 'Acme Inc.' },
  });
  const sampleSize = Buffer.byteLength(engine.parseAndRenderSync(htmlTemplate, scopeOf(1)));

  const rsa = generateDkimKey('rsa-sha256');
  const dkimKey = loadDkimKey({ domain: 'example.com', selector: 'bench', privateKey: rsa.privateKeyPem });
  const from = { address: 'news@example.com', name: 'Acme News' };

  // ---- the SMTP sink, in a child process -------------------------------------------------------
  const child = fork(
    fileURLToPath(new URL('../bin/run-ts.mjs', import.meta.url)),
    [fileURLToPath(import.meta.url)],
    {
      env: { ...process.env, RENDER_SEND_SINK: '1' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const ask = <T>(msg: string) =>
    new Promise<T>((resolve) => {
      child.once('message', (m) => resolve(m as T));
      child.send(msg);
    });
  const { port } = await new Promise<{ port: number }>((resolve) =>
    child.once('message', (m) => resolve(m as never)),
  );

  const b = await benchDatabase('render_send');
  const pool = createSignPool();
  try {
    const { deps } = b;
    const { org } = await createOrg(deps, {
      name: 'Bench',
      adminEmail: 'bench@bench.example',
      adminName: 'Bench',
      adminPassword: 'bench-password',
    });

    // ---- messages rows: one per recipient, queued (setup, not timed) ----------------------------
    const total = WARMUP + FAST_MESSAGES + NAIVE_MESSAGES;
    const [setupMs] = await timed(async () => {
      for (let start = 0; start < total; start += 5_000) {
        const n = Math.min(5_000, total - start);
        const idx = Array.from({ length: n }, (_, k) => start + k);
        await sql`
          INSERT INTO messages (org_id, kind, from_address, from_name, to_address, to_name, subject, message_id_header, transport, expires_at)
          SELECT ${org.id}, 'mass', ${from.address}, ${from.name}, t.to_address, t.to_name, '(template)', t.mid, 'relay', now() + interval '4 days'
          FROM unnest(${idx.map((i) => `r${i}@example.org`)}::text[], ${idx.map((i) => `Jane${i} Doe`)}::text[],
                      ${idx.map(() => newMessageIdHeader('example.com'))}::text[]) AS t(to_address, to_name, mid)`.execute(
          deps.db,
        );
      }
    });
    console.log(`setup: ${total} messages rows in ${(setupMs / 1000).toFixed(1)} s`);

    type Claimed = { id: string; to_address: string; to_name: string | null; message_id_header: string };
    let claimedSoFar = 0;
    async function claim(n: number): Promise<(Claimed & { i: number })[]> {
      const { rows } = await sql<Claimed>`
        UPDATE messages SET status = 'sending', claimed_at = now(), updated_at = now()
        WHERE id IN (SELECT id FROM messages WHERE org_id = ${org.id} AND status = 'queued'
                     ORDER BY next_attempt_at LIMIT ${n} FOR UPDATE SKIP LOCKED)
        RETURNING id, to_address, to_name, message_id_header`.execute(deps.db);
      return rows.map((r) => ({ ...r, i: claimedSoFar++ }));
    }
    type Outcome = { id: string; status: 'sent' | 'failed'; code: number | null; response: string };
    async function mark(outcomes: Outcome[]) {
      if (!outcomes.length) return;
      await sql`
        UPDATE messages m SET status = u.status, attempts = m.attempts + 1, smtp_code = u.code,
          smtp_response = u.response, sent_at = CASE WHEN u.status = 'sent' THEN now() END, updated_at = now()
        FROM unnest(${outcomes.map((o) => o.id)}::uuid[], ${outcomes.map((o) => o.status)}::text[],
                    ${outcomes.map((o) => o.code)}::int[], ${outcomes.map((o) => o.response)}::text[]) AS u(id, status, code, response)
        WHERE m.id = u.id AND m.org_id = ${org.id}`.execute(deps.db);
    }
    const outcomeOf = (id: string, p: Promise<{ response?: string }>): Promise<Outcome> =>
      p.then(
        (info) => ({ id, status: 'sent', code: 250, response: String(info.response ?? '250') }),
        (e: { responseCode?: number; message: string }) => ({
          id,
          status: 'failed',
          code: e.responseCode ?? null,
          response: e.message,
        }),
      );

    // ---- the fast path -----------------------------------------------------------------------------
    const send = prepareSend({
      engine,
      htmlEngine,
      template: { subject: subjectTemplate, html: htmlTemplate, text: textTemplate },
      from,
      bounceDomain: 'bounce.example.com',
      secret: SECRET,
      publicUrl: PUBLIC_URL,
      trackOpens: true,
      trackClicks: true,
      listUnsubscribe: { oneClick: true },
      dkimKeys: [dkimKey],
    });
    const smtp = createSmtpPipelinePool({
      host: '127.0.0.1',
      port,
      connections: CONNECTIONS,
      maxMessagesPerConnection: 100_000,
    });
    async function deliver(built: ReturnType<typeof buildBatch>): Promise<Outcome[]> {
      return Promise.all(
        built.map(async (m): Promise<Outcome> => {
          if (!m.ok) return { id: m.messageId, status: 'failed', code: null, response: m.error };
          const r = await smtp.send(m.envelope, m.raw);
          return {
            id: m.messageId,
            status: r.status === 'sent' ? 'sent' : 'failed',
            code: r.code,
            response: r.response,
          };
        }),
      );
    }

    async function fastRun(limit: number, maxMs: number) {
      const t0 = performance.now();
      let done = 0;
      let failed = 0;
      const loop = async () => {
        while (done < limit && performance.now() - t0 < maxMs) {
          const rows = await claim(Math.min(BATCH, limit - done));
          if (!rows.length) return;
          done += rows.length;
          const built = buildBatch(
            send,
            rows.map((r) => ({
              messageId: r.id,
              messageIdHeader: r.message_id_header,
              to: { address: r.to_address, name: r.to_name ?? undefined },
              scope: scopeOf(r.i),
            })),
          );
          await signBatch(pool, send, built);
          const outcomes = await deliver(built);
          failed += outcomes.filter((o) => o.status !== 'sent').length;
          await mark(outcomes);
        }
      };
      const cpu0 = process.cpuUsage();
      const main0 = mainThreadCpuMs();
      await Promise.all(Array.from({ length: LOOPS }, loop));
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const main1 = mainThreadCpuMs();
      return {
        done,
        failed,
        ms,
        cpuMs: (cpu.user + cpu.system) / 1000,
        mainMs: main0 !== null && main1 !== null ? main1 - main0 : null,
      };
    }

    // Warm-up (JIT, worker start, connections), then check what arrives: DKIM passes, content right.
    await fastRun(WARMUP, 60_000);
    const warmRows = (
      await sql<Claimed>`SELECT id, to_address, to_name, message_id_header FROM messages
                         WHERE org_id = ${org.id} AND status = 'sent' LIMIT 1`.execute(deps.db)
    ).rows;
    const warm = await ask<SinkStats>('stats');
    for (const s of warm.samples) {
      const raw = Buffer.from(s, 'base64');
      const v = await dkimVerify(raw, { resolver: async () => [[rsa.dnsValue]] });
      const parsed = await simpleParser(raw);
      if (v.results[0]?.status.result !== 'pass')
        throw new Error(`DKIM did not pass: ${JSON.stringify(v.results)}`);
      if (!String(parsed.html).includes('/t/c/') || !String(parsed.html).includes('/t/o/'))
        throw new Error('tracking missing in the delivered message');
    }
    const msgSize = Buffer.from(warm.samples[0], 'base64').length;
    console.log(
      `checked: ${warm.samples.length} delivered samples pass DKIM (mailauth), tracked links and pixel present; ` +
        `HTML part ${sampleSize} bytes before tracking, message ${msgSize} bytes on the wire`,
    );

    await ask('reset');
    const sinkCpu0 = (await ask<SinkStats>('stats')).cpuMs;
    const fast = await fastRun(FAST_MESSAGES, FAST_MAX_MS);
    const sinkFast = await ask<SinkStats>('stats');
    const fastRate = fast.done / (fast.ms / 1000);
    if (sinkFast.count !== fast.done - fast.failed)
      throw new Error(`sink received ${sinkFast.count}, sender counted ${fast.done - fast.failed}`);
    console.log(
      `fast path: ${fast.done} messages in ${(fast.ms / 1000).toFixed(2)} s = ${Math.round(fastRate)} msgs/s ` +
        `(${fast.failed} failed); CPU per message: sender ${(fast.cpuMs / fast.done).toFixed(3)} ms` +
        (fast.mainMs !== null
          ? ` (main thread ${(fast.mainMs / fast.done).toFixed(3)}, signing workers ${((fast.cpuMs - fast.mainMs) / fast.done).toFixed(3)})`
          : '') +
        `, sink ${((sinkFast.cpuMs - sinkCpu0) / fast.done).toFixed(3)} ms`,
    );
    await smtp.close();

    // ---- the SMTP step alone, same signed message, 3 ways (why smtp-pipeline.ts exists) -----------
    const one = (
      await signBatch(
        pool,
        send,
        buildBatch(send, [
          {
            messageId: warmRows[0].id,
            messageIdHeader: warmRows[0].message_id_header,
            to: { address: warmRows[0].to_address },
            scope: scopeOf(0),
          },
        ]),
      )
    )[0];
    if (!one.ok) throw new Error(one.error);
    const SMTP_N = 3_000;
    async function smtpCost(name: string, sendAll: () => Promise<void>) {
      const c0 = process.cpuUsage();
      const t = performance.now();
      await sendAll();
      const c = process.cpuUsage(c0);
      return `${name} ${Math.round((c.user + c.system) / SMTP_N)} µs (${Math.round(SMTP_N / ((performance.now() - t) / 1000))}/s)`;
    }
    const inChunks = async (send1: () => Promise<unknown>) => {
      for (let i = 0; i < SMTP_N; i += 500) await Promise.all(Array.from({ length: 500 }, send1));
    };
    const nmPool = nodemailer.createTransport({
      pool: true,
      host: '127.0.0.1',
      port,
      ignoreTLS: true,
      maxConnections: CONNECTIONS,
      maxMessages: Number.POSITIVE_INFINITY,
    });
    await nmPool.sendMail({ envelope: one.envelope, raw: one.raw });
    const costPool = await smtpCost('nodemailer pooled sendMail', () =>
      inChunks(() => nmPool.sendMail({ envelope: one.envelope, raw: one.raw })),
    );
    nmPool.close();
    // SMTPConnection writes its state into the envelope object: one fresh object per send.
    const bare = await Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        const c = new SMTPConnection({ host: '127.0.0.1', port, ignoreTLS: true });
        await new Promise<void>((res, rej) => c.connect((e?: Error) => (e ? rej(e) : res())));
        return c;
      }),
    );
    const costConn = await smtpCost('nodemailer SMTPConnection', async () => {
      let next = 0;
      await Promise.all(
        bare.map(async (c) => {
          while (next++ < SMTP_N)
            await new Promise<void>((res, rej) =>
              c.send({ from: one.envelope.from, to: [...one.envelope.to] }, one.raw, (e: Error | null) =>
                e ? rej(e) : res(),
              ),
            );
        }),
      );
    });
    for (const c of bare) c.quit();
    const pipe = createSmtpPipelinePool({
      host: '127.0.0.1',
      port,
      connections: CONNECTIONS,
      maxMessagesPerConnection: 100_000,
    });
    await pipe.send(one.envelope, one.raw);
    const costPipe = await smtpCost('smtp-pipeline', () => inChunks(() => pipe.send(one.envelope, one.raw)));
    await pipe.close();
    console.log(
      `SMTP step alone, CPU per ${one.raw.length}-byte message: ${costPool}, ${costConn}, ${costPipe}`,
    );

    // ---- the naive baseline: render whole, rewrite links, sendMail with nodemailer's DKIM ----------
    const naiveTransport = nodemailer.createTransport({
      pool: true,
      host: '127.0.0.1',
      port,
      secure: false,
      ignoreTLS: true,
      maxConnections: CONNECTIONS,
      logger: false,
      dkim: { domainName: 'example.com', keySelector: 'bench', privateKey: rsa.privateKeyPem },
    });
    const parsed = {
      subject: engine.parse(subjectTemplate),
      html: htmlEngine.parse(htmlTemplate),
      text: engine.parse(textTemplate),
    };
    await ask('reset');
    const t0 = performance.now();
    let naiveDone = 0;
    while (naiveDone < NAIVE_MESSAGES && performance.now() - t0 < NAIVE_MAX_MS) {
      const rows = await claim(100);
      if (!rows.length) break;
      const outcomes: Outcome[] = [];
      for (const r of rows) {
        const scope = scopeOf(r.i);
        let link = 0;
        const html = (htmlEngine.renderSync(parsed.html, scope) as string)
          .replace(
            /(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?:\/\/[^"'\s<>]+)\2/gi,
            (_m, pre, q) => `${pre}${q}${PUBLIC_URL}/t/c/${trackingToken(SECRET, r.id, 'click', link++)}${q}`,
          )
          .replace(
            '</body>',
            `<img src="${PUBLIC_URL}/t/o/${trackingToken(SECRET, r.id, 'open')}.gif" width="1" height="1" alt=""></body>`,
          );
        outcomes.push(
          await outcomeOf(
            r.id,
            naiveTransport.sendMail({
              from,
              to: { address: r.to_address, name: r.to_name ?? '' },
              subject: engine.renderSync(parsed.subject, scope) as string,
              html,
              text: engine.renderSync(parsed.text, scope) as string,
              messageId: r.message_id_header,
              envelope: { from: verpReturnPath(r.id, 'bounce.example.com', SECRET), to: [r.to_address] },
              headers: {
                'List-Unsubscribe': `<${PUBLIC_URL}/t/u/${trackingToken(SECRET, r.id, 'unsubscribe')}>`,
                'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
              },
            }),
          ),
        );
      }
      await mark(outcomes);
      naiveDone += rows.length;
    }
    const naiveMs = performance.now() - t0;
    naiveTransport.close();
    const naiveRate = naiveDone / (naiveMs / 1000);
    const sinkNaive = await ask<SinkStats>('stats');
    const nv = await dkimVerify(Buffer.from(sinkNaive.samples[0], 'base64'), {
      resolver: async () => [[rsa.dnsValue]],
    });
    console.log(
      `naive loop: ${naiveDone} messages in ${(naiveMs / 1000).toFixed(2)} s = ${Math.round(naiveRate)} msgs/s ` +
        `(nodemailer sendMail + dkim option; its DKIM ${nv.results[0]?.status.result})`,
    );

    const states = await sql<{ status: string; n: number }>`
      SELECT status, count(*)::int AS n FROM messages WHERE org_id = ${org.id} GROUP BY status ORDER BY status`.execute(
      deps.db,
    );
    console.log(`messages rows: ${states.rows.map((r) => `${r.status} ${r.n}`).join(', ')}`);
    console.log(`render-send: ${Math.round(fastRate)} msgs/s, ${(fastRate / naiveRate).toFixed(1)}x naive`);
  } finally {
    await pool.close();
    child.send('stop');
    await b.close();
  }
}
