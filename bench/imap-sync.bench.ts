// `npm run bench:imap-sync`: the initial sync of a 20,000-message mailbox from a local Dovecot
// (issue 6 targets: ≥ 300 messages/s, peak resident memory < 300 MB), then an incremental sync
// with nothing new (target < 200 ms). Everything is set up here: a throwaway embedded PostgreSQL
// (or a new database on PARLEY_DATABASE_URL), a private Dovecot (Debian's, run as root) whose
// maildir is written directly, an org and an IMAP account. Dovecot indexes the folder before the
// clock starts, as a live server has. BENCH_MESSAGES changes the size. Last line:
// `imap-sync: <N> msgs/s, <M> MB peak RSS`.
import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import pino from 'pino';
import { type Actor, createOrg } from '../src/crm/index.ts';
import { createAccount } from '../src/mailbox/accounts.service.ts';
import { openImap } from '../src/mailbox/sync/connect.ts';
import { syncImap } from '../src/mailbox/sync/imap.ts';
import { syncAccountOnce } from '../src/mailbox/sync/worker.ts';
import { startDovecot, writeMaildirFiles } from '../test/support/dovecot.ts';
import { benchDatabase, postgresCpuMs, processCpuMs, timed } from './support.ts';

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 20_000);
const LIMIT_MS = 10 * 60_000;
const USER = 'bench@test.local';

const watchdog = setTimeout(() => {
  console.error(`imap-sync: gave up after ${LIMIT_MS / 1000} s`);
  process.exit(2);
}, LIMIT_MS);
watchdog.unref();

const words = 'proposal pricing meeting contract renewal discount quarter invoice schedule demo'.split(' ');
const sentence = (i: number, n: number) =>
  Array.from({ length: n }, (_, k) => words[(i * 7 + k * 3) % words.length]).join(' ');

/** A mix of what an inbox holds: plain text, text + HTML alternatives, and mail with an attachment. */
function message(i: number): string {
  const date = new Date(Date.now() - (MESSAGES - i) * 60_000).toUTCString();
  const from = i % 10 === 0 ? USER : `customer${i % 500}@client${i % 50}.example`;
  const to = i % 10 === 0 ? `customer${i % 500}@client${i % 50}.example` : USER;
  const head = [
    `From: ${from}`,
    `To: ${to}`,
    ...(i % 4 === 0 ? [`Cc: colleague${i % 7}@test.local`] : []),
    `Subject: ${i % 3 === 0 ? 'Re: ' : ''}Deal ${i % 900} ${sentence(i, 4)}`,
    `Date: ${date}`,
    `Message-ID: <bench.${i}@client.example>`,
    ...(i % 3 === 0
      ? [`In-Reply-To: <bench.${i - 1}@client.example>`, `References: <bench.${i - 1}@client.example>`]
      : []),
    'MIME-Version: 1.0',
  ];
  const text = `Hello,\r\n\r\n${sentence(i, 60)}\r\n\r\n${sentence(i + 1, 80)}\r\n\r\nRegards`;
  if (i % 5 === 0) {
    const b = `b${i}`;
    return [
      ...head,
      `Content-Type: multipart/mixed; boundary="${b}"`,
      '',
      `--${b}`,
      'Content-Type: text/plain; charset=utf-8',
      '',
      text,
      `--${b}`,
      'Content-Type: application/pdf; name="quote.pdf"',
      'Content-Disposition: attachment; filename="quote.pdf"',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.alloc(24_000, i % 251)
        .toString('base64')
        .replace(/.{76}/g, '$&\r\n'),
      `--${b}--`,
      '',
    ].join('\r\n');
  }
  if (i % 2 === 0) {
    const b = `a${i}`;
    return [
      ...head,
      `Content-Type: multipart/alternative; boundary="${b}"`,
      '',
      `--${b}`,
      'Content-Type: text/plain; charset=utf-8',
      '',
      text,
      `--${b}`,
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      `<html><body><p>Hello,</p><p style=3D"color:#333">${sentence(i, 60)}</p><p>${sentence(i + 1, 80)}</p></body></html>`,
      `--${b}--`,
      '',
    ].join('\r\n');
  }
  return [...head, 'Content-Type: text/plain; charset=utf-8', '', text, ''].join('\r\n');
}

// The mailbox is written by a child process: its memory is setup, not the sync's.
if (process.env.BENCH_MAILDIR) {
  for (let i = 0; i < MESSAGES; i += 1000)
    writeMaildirFiles(
      process.env.BENCH_MAILDIR,
      USER,
      'INBOX',
      Array.from({ length: Math.min(1000, MESSAGES - i) }, (_, k) => message(i + k)),
    );
  process.exit(0);
}

const db = await benchDatabase('imapsync');
const dov = await startDovecot({ users: [{ user: USER, password: 'bench-password' }] });
try {
  // BENCH_DEBUG=1: the sync's own timings (per folder) on stderr.
  const deps = process.env.BENCH_DEBUG
    ? { ...db.deps, log: pino({ level: 'debug' }, pino.destination(2)) }
    : db.deps;
  const org = await createOrg(deps, {
    name: 'Bench',
    adminEmail: 'admin@bench.example',
    adminName: 'Admin',
    adminPassword: 'bench-password-123',
  });
  const actor: Actor = {
    orgId: org.org.id,
    userId: org.admin.id,
    isAdmin: true,
    permissions: {} as Actor['permissions'],
    timeZone: 'UTC',
    locale: 'en',
  };
  const [writeMs] = await timed(
    () =>
      new Promise<void>((resolve, reject) => {
        const self = [
          fileURLToPath(new URL('../bin/run-ts.mjs', import.meta.url)),
          fileURLToPath(import.meta.url),
        ];
        const child = spawn(process.execPath, self, {
          env: { ...process.env, BENCH_MAILDIR: dov.dir },
          stdio: 'inherit',
        });
        child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer exited ${code}`))));
      }),
  );
  const [indexMs] = await timed(async () => {
    dov.doveadm(['mailbox', 'status', '-u', USER, 'messages', 'INBOX']);
  });
  console.log(
    `mailbox: ${MESSAGES} messages written in ${Math.round(writeMs)} ms, indexed by Dovecot in ${Math.round(indexMs)} ms`,
  );
  const account = await createAccount(deps, actor, {
    protocol: 'imap',
    host: '127.0.0.1',
    port: dov.imapPort,
    security: 'none',
    username: USER,
    secret: 'bench-password',
    emailAddress: USER,
    backfillDays: 365,
  });

  const rssBefore = process.memoryUsage().rss;
  let peakRss = rssBefore;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 50);
  const cpu0 = { me: processCpuMs(process.pid), pg: await postgresCpuMs(deps) };
  const BATCH = process.env.BENCH_BATCH ? Number(process.env.BENCH_BATCH) : undefined;
  const [initialMs, initial] = await timed(() => syncAccountOnce(deps, account.id, { batchSize: BATCH }));
  const cpu1 = { me: processCpuMs(process.pid), pg: await postgresCpuMs(deps) };
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  if (!initial || initial.fetched !== MESSAGES)
    throw new Error(`the initial sync fetched ${initial?.fetched ?? 'nothing'} of ${MESSAGES}`);
  const stored = (
    await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM mail_locations WHERE account_id = ${account.id}`.execute(deps.db)
  ).rows[0].n;
  if (stored !== MESSAGES) throw new Error(`${stored} of ${MESSAGES} copies stored`);
  const rate = MESSAGES / (initialMs / 1000);

  // Incremental with nothing new: a fresh connection (login, LIST, two SELECTs) as a poll does,
  // and on a held connection as IDLE does.
  const polls: number[] = [];
  let flagsRead = 0;
  for (let k = 0; k < 5; k++) {
    const [ms, s] = await timed(() => syncAccountOnce(deps, account.id));
    if (s?.fetched !== 0) throw new Error('the incremental sync fetched something');
    flagsRead += s.flagsRead;
    polls.push(ms);
  }
  const client = await openImap({
    protocol: 'imap',
    host: '127.0.0.1',
    port: dov.imapPort,
    security: 'none',
    username: USER,
    auth: 'password',
    secret: 'bench-password',
  });
  const row = await deps.db
    .selectFrom('mailbox_accounts')
    .selectAll()
    .where('id', '=', account.id)
    .executeTakeFirstOrThrow();
  const held: number[] = [];
  for (let k = 0; k < 5; k++) {
    const [ms, s] = await timed(() => syncImap(deps, row, client));
    flagsRead += s.flagsRead;
    held.push(ms);
  }
  await client.logout();
  clearInterval(sampler);
  const best = (xs: number[]) => Math.round(Math.min(...xs));
  const median = (xs: number[]) => Math.round([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]);
  const peakMb = Math.round(Math.max(peakRss, process.resourceUsage().maxRSS * 1024) / 1048576);
  console.log(
    `initial sync: ${MESSAGES} messages in ${(initialMs / 1000).toFixed(1)} s = ${Math.round(rate)} msgs/s` +
      ` (CPU: this process ${Math.round(((cpu1.me - cpu0.me) * 1000) / MESSAGES)} µs/msg,` +
      ` PostgreSQL ${cpu0.pg === null || cpu1.pg === null ? '?' : Math.round(((cpu1.pg - cpu0.pg) * 1000) / MESSAGES)} µs/msg;` +
      ` RSS ${Math.round(rssBefore / 1048576)} MB before it)`,
  );
  console.log(
    `incremental, nothing new: ${median(polls)} ms median (best ${best(polls)}) with a new connection;` +
      ` ${median(held)} ms median on a held connection (flags read again: ${flagsRead})`,
  );
  console.log(
    `conditions: ${cpus().length} cores, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}, Dovecot and PostgreSQL on the same machine`,
  );
  console.log(`imap-sync: ${Math.round(rate)} msgs/s, ${peakMb} MB peak RSS`);
} finally {
  await dov.stop();
  await db.close();
  clearTimeout(watchdog);
}
